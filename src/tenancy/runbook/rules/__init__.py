"""RB-001's findings as rules, after ruff's rule registry: each finding is one small named rule
(a code, the finding, a docstring saying what it finds and why) in one ordered registry. The
engine walks the registry and the first rule that finds something names the finding. Adding a
finding is adding one rule here, and its test.

The order is RB-001's: the payment first (nothing to look at without one; a subscription's ITN
no checkout here started is Finance's), then the account (an operator's is never repaired as a
tenant), a deleted tenant (whose missing people are no failure, unless some are left), work a
worker still has and purchases waiting for a person, then the missing or disagreeing records
(4.3, the mismatch, 4.2, 4.1), a team member whose identity user is missing or names another
tenant (its owner's records come first), a subscription payment accepted but not applied, PayFast's view
of the subscription disagreeing with ours (asked only when one purchase is diagnosed), a
lifecycle move due and not applied, a lifecycle notice undelivered, a tenant its lifecycle holds
(suspended or cancelled: no failure), the welcome email (4.4), usage above the plan's limits (no
failure: it never hides one), and healthy (section 5) last, for whatever the others did not name.
A rule may count on the ones before it having found nothing: each docstring says what it finds on
that footing."""

from __future__ import annotations

from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.rules.accounts import is_operator_account, not_a_tenant
from tenancy.runbook.rules.base import DEFAULT_PASSWORD_TTL, DEFAULT_PERIODS, Context, Found, Rule
from tenancy.runbook.rules.jobs import in_progress, needs_review
from tenancy.runbook.rules.lifecycle import (
    access_mismatch,
    event_undelivered,
    lifecycle_overdue,
    tenant_deleted,
    tenant_held,
)
from tenancy.runbook.rules.members import member_mismatch
from tenancy.runbook.rules.payment import payment_not_complete, payment_not_found
from tenancy.runbook.rules.records import (
    identity_user_missing,
    provisioning_failed,
    tenant_id_mismatch,
    tenant_record_missing,
)
from tenancy.runbook.rules.subscriptions import renewal_unapplied, subscription_out_of_sync, unknown_subscription
from tenancy.runbook.rules.usage import usage_over_limit
from tenancy.runbook.rules.welcome import Welcome, healthy, welcome_email_missing, welcome_of

__all__ = [
    "DEFAULT_PASSWORD_TTL",
    "DEFAULT_PERIODS",
    "RULES",
    "Context",
    "Found",
    "Rule",
    "Welcome",
    "first_match",
    "is_operator_account",
    "welcome_of",
]

RULES: tuple[Rule, ...] = (
    payment_not_found,
    unknown_subscription,
    payment_not_complete,
    not_a_tenant,
    access_mismatch,
    tenant_deleted,
    in_progress,
    needs_review,
    tenant_record_missing,
    tenant_id_mismatch,
    identity_user_missing,
    provisioning_failed,
    member_mismatch,
    renewal_unapplied,
    subscription_out_of_sync,
    lifecycle_overdue,
    event_undelivered,
    tenant_held,
    welcome_email_missing,
    usage_over_limit,
    healthy,
)


def first_match(case: CaseFile, context: Context) -> tuple[Rule, Found]:
    """The first rule of the registry that finds something in the case, and what it found."""
    for candidate in RULES:
        found = candidate.check(case, context)
        if found is not None:
            return candidate, found
    # `healthy` names every case the others leave: reaching here means the registry lost it.
    raise LookupError(f"no rule names a finding for {case.selector.describe()}")
