"""The findings `diagnose` names: one per failure scenario of RB-001, with where to escalate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tenancy.runbook.evidence import Selector

__all__ = ["ESCALATION", "Advise", "Diagnosis", "Evidence", "Finding", "NextStep", "Store"]


class Finding(StrEnum):
    HEALTHY = "healthy"
    PAYMENT_NOT_FOUND = "payment_not_found"
    PAYMENT_NOT_COMPLETE = "payment_not_complete"
    PROVISIONING_FAILED = "provisioning_failed"
    IDENTITY_USER_MISSING = "identity_user_missing"
    TENANT_RECORD_MISSING = "tenant_record_missing"
    WELCOME_EMAIL_MISSING = "welcome_email_missing"
    TENANT_ID_MISMATCH = "tenant_id_mismatch"
    IN_PROGRESS = "in_progress"
    NEEDS_REVIEW = "needs_review"
    NOT_A_TENANT = "not_a_tenant"
    RENEWAL_UNAPPLIED = "renewal_unapplied"
    UNKNOWN_SUBSCRIPTION = "unknown_subscription"
    SUBSCRIPTION_OUT_OF_SYNC = "subscription_out_of_sync"
    TENANT_DELETED = "tenant_deleted"
    TENANT_HELD = "tenant_held"
    LIFECYCLE_OVERDUE = "lifecycle_overdue"
    ACCESS_MISMATCH = "access_mismatch"
    EVENT_UNDELIVERED = "event_undelivered"
    USAGE_OVER_LIMIT = "usage_over_limit"
    MEMBER_MISMATCH = "member_mismatch"

    @property
    def runbook_section(self) -> str | None:
        return _SECTIONS.get(self)

    @property
    def label(self) -> str:
        """What the finding means, in a few words for a page or a table."""
        return _LABELS[self]

    @property
    def repairable(self) -> bool:
        return self in _REPAIRABLE

    @property
    def is_failure(self) -> bool:
        """Whether an operator has something to look at: not healthy, not still in progress, and
        not a tenant that left and was deleted as it should be."""
        return self not in _NOT_FAILURES


# The RB-001 section each finding is resolved by (its number; `runbook_doc` knows the titles).
# Purchases not (yet) provisioned are looked into with 3.2's quick diagnosis; an operator's account
# is no tenant and has no section.
_SECTIONS = {
    Finding.HEALTHY: "5",
    Finding.PAYMENT_NOT_FOUND: "3.2",
    Finding.PAYMENT_NOT_COMPLETE: "3.2",
    Finding.IN_PROGRESS: "3.2",
    Finding.PROVISIONING_FAILED: "4.1",
    Finding.IDENTITY_USER_MISSING: "4.2",
    Finding.TENANT_RECORD_MISSING: "4.3",
    Finding.WELCOME_EMAIL_MISSING: "4.4",
    Finding.TENANT_ID_MISMATCH: "4.5",
    Finding.RENEWAL_UNAPPLIED: "4.7",
    Finding.SUBSCRIPTION_OUT_OF_SYNC: "4.7",
    Finding.UNKNOWN_SUBSCRIPTION: "4.7",
    Finding.TENANT_HELD: "4.8",
    Finding.TENANT_DELETED: "4.8",
    Finding.LIFECYCLE_OVERDUE: "4.8",
    Finding.ACCESS_MISMATCH: "4.8",
    Finding.EVENT_UNDELIVERED: "4.8",
    Finding.USAGE_OVER_LIMIT: "4.9",
    Finding.MEMBER_MISMATCH: "4.10",
    Finding.NEEDS_REVIEW: "6",
}
_LABELS = {
    Finding.HEALTHY: "provisioned; the owner can sign in",
    Finding.PAYMENT_NOT_FOUND: "no payment, job, tenant or account found",
    Finding.PAYMENT_NOT_COMPLETE: "the payment is not complete or was rejected",
    Finding.PROVISIONING_FAILED: "paid, but no tenant",
    Finding.IDENTITY_USER_MISSING: "the tenant has no identity user or users record",
    Finding.TENANT_RECORD_MISSING: "the identity user has no tenant record",
    Finding.WELCOME_EMAIL_MISSING: "the owner has no usable welcome email",
    Finding.TENANT_ID_MISMATCH: "the stores disagree about the tenant",
    Finding.IN_PROGRESS: "provisioning is still running",
    Finding.NEEDS_REVIEW: "stopped for a human decision",
    # An operator runs the console and owns no tenant: nothing about it is a provisioning failure.
    Finding.NOT_A_TENANT: "an operator account, not a tenant",
    Finding.RENEWAL_UNAPPLIED: "a subscription payment was accepted but not applied",
    Finding.UNKNOWN_SUBSCRIPTION: "a PayFast subscription no checkout of ours started",
    Finding.SUBSCRIPTION_OUT_OF_SYNC: "PayFast's view of the subscription disagrees with ours",
    Finding.TENANT_DELETED: "the tenant left and was deleted; its tombstone and billing remain",
    Finding.TENANT_HELD: "suspended or cancelled by its subscription's lifecycle: billing only, until paid",
    Finding.LIFECYCLE_OVERDUE: "a lifecycle move is due and was not applied",
    Finding.ACCESS_MISMATCH: "who can sign in disagrees with the tenant's state",
    Finding.EVENT_UNDELIVERED: "a lifecycle event never reached the Site Builder application",
    Finding.USAGE_OVER_LIMIT: "uses more than its plan allows: new usage of it is refused",
    Finding.MEMBER_MISMATCH: "a team member has no identity user, or one that names another tenant",
}
# Usage above a limit is no provisioning failure either: the service API refuses more of it, and
# the owner, not an operator, brings it down (no escalation, not counted among the audit's failures).
_NOT_FAILURES = frozenset(
    {Finding.HEALTHY, Finding.IN_PROGRESS, Finding.TENANT_DELETED, Finding.TENANT_HELD, Finding.USAGE_OVER_LIMIT}
)
# NOT_A_TENANT is never repairable: every repair would turn the operator into a tenant's owner.
_REPAIRABLE = {
    Finding.PROVISIONING_FAILED,
    Finding.IDENTITY_USER_MISSING,
    Finding.TENANT_RECORD_MISSING,
    Finding.WELCOME_EMAIL_MISSING,
    Finding.TENANT_ID_MISMATCH,
    Finding.RENEWAL_UNAPPLIED,
    Finding.SUBSCRIPTION_OUT_OF_SYNC,
    Finding.LIFECYCLE_OVERDUE,
    Finding.ACCESS_MISMATCH,
    Finding.EVENT_UNDELIVERED,
    Finding.MEMBER_MISMATCH,
}

# RB-001 section 6.
ESCALATION = {
    "engineering": "Engineering Lead (Slack #platform-alerts)",
    "finance": "Finance Team (finance@company.com)",
    "security": "Security Team (security@company.com)",
    "on_call": "On-call Manager (PagerDuty)",
}


class Store(StrEnum):
    """Where a piece of evidence was read, in the order an operator checks them."""

    LEDGER = "ledger"
    JOURNAL = "journal"
    QUEUE = "queue"
    TENANTS = "tenants"
    IDENTITY = "identity"
    USERS = "users"
    MAIL = "mail"
    SUBSCRIPTIONS = "subscriptions"
    PAYFAST = "payfast"  # PayFast's own view (its subscription API), asked only about one purchase
    LIFECYCLE = "lifecycle"  # the tenant's moves and the notices they owe


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact a store holds about the purchase: the store, the record's values that matter
    (JSON-friendly: text, numbers, booleans, None and lists of them) and what it says, for people.
    A fact about the purchase as a whole (its owner's other purchases) has no store."""

    store: Store | None
    fields: Mapping[str, object]
    text: str

    @property
    def line(self) -> str:
        """`store: text`, as the CLI prints it and the JSON documents and the repair trail keep it."""
        return f"{self.store.value}: {self.text}" if self.store is not None else self.text

    def as_document(self) -> dict[str, Any]:
        return {"store": self.store.value if self.store else None, "fields": dict(self.fields), "text": self.text}


@dataclass(frozen=True, slots=True)
class NextStep:
    """What the operator does next, as data. `advice` is RB-001's instruction in words, never a
    command: for a repairable finding, what its repair does. The commands that carry a step out
    (`repair` for a repairable finding, and the ones these fields name) are the CLI's and the
    console's to write, from the diagnosis and these fields."""

    advice: str
    stale_dead_letters: tuple[str, ...] = ()  # message ids left in the DLQ from before the purchase healed
    mail_kept_for: str | None = None  # the owner whose welcome email only the outbox holds (no SMTP)
    operator_accounts: bool = False  # the selector is an operator's account: operators are listed elsewhere
    # False when this case of a repairable finding holds nothing a repair can change (a
    # subscription paused at PayFast, which Tenancy keeps no state for): no repair is offered.
    repairable: bool = True
    usage_over_limit_of: str | None = None  # the tenant whose usage is above its limits: its usage commands

    def as_document(self) -> dict[str, Any]:
        return {
            "advice": self.advice,
            "stale_dead_letters": list(self.stale_dead_letters),
            "mail_kept_for": self.mail_kept_for,
            "operator_accounts": self.operator_accounts,
            "repairable": self.repairable,
            "usage_over_limit_of": self.usage_over_limit_of,
        }


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One purchase's finding, with the evidence of every store and the next step. `selector` is
    what was asked about; `transaction_id`, `tenant_id` and `email` are what the stores agree on."""

    finding: Finding
    summary: str
    evidence: tuple[Evidence, ...]
    next_step: NextStep
    selector: Selector
    escalate_to: str | None = None
    transaction_id: str | None = None
    tenant_id: str | None = None
    email: str | None = None
    rule: str = ""  # the code of the rule that named the finding

    @property
    def healthy(self) -> bool:
        return self.finding is Finding.HEALTHY

    @property
    def repairable(self) -> bool:
        """Whether `tenancy repair` (and the console's Repair) has something to do here."""
        return self.finding.repairable and self.next_step.repairable

    @property
    def evidence_lines(self) -> tuple[str, ...]:
        return tuple(item.line for item in self.evidence)

    @property
    def steadiest_selector(self) -> Selector:
        """The selector that finds this purchase again, whatever it was asked by: its transaction
        id, else its tenant id, else its email, else (the stores know nothing) what was asked."""
        if self.transaction_id:
            return Selector(transaction_id=self.transaction_id)
        if self.tenant_id:
            return Selector(tenant_id=self.tenant_id)
        if self.email:
            return Selector(email=self.email)
        return self.selector

    def as_record(self) -> dict[str, Any]:
        """The diagnosis as data, for the repair trail: the next step as its fields."""
        return self._document(self.next_step.as_document())

    def as_document(self, advise: Advise) -> dict[str, Any]:
        """The diagnosis for people (`--json`): `advise` words the next step, commands included."""
        return self._document(advise(self))

    def _document(self, next_action: object) -> dict[str, Any]:
        return {
            "finding": self.finding.value,
            "runbook_section": self.finding.runbook_section,
            "summary": self.summary,
            "evidence": list(self.evidence_lines),
            "next_action": next_action,
            "escalate_to": self.escalate_to,
            "transaction_id": self.transaction_id,
            "tenant_id": self.tenant_id,
            "email": self.email,
        }


Advise = Callable[[Diagnosis], str]
"""Words a diagnosis's next step for people, with the commands that carry it out: the edge's own."""
