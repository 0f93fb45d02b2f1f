"""What every rule is made of: the rule itself (a code, the finding it names, the check), what
it is judged at (Context) and what it answers when its finding applies (Found)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenancy.domain.model import JobStatus, UserRecord
from tenancy.lifecycle.due import LifecyclePeriods
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.findings import Evidence, Finding, NextStep

__all__ = [
    "DEFAULT_PASSWORD_TTL",
    "DEFAULT_PERIODS",
    "IN_FLIGHT",
    "Check",
    "Context",
    "Found",
    "Rule",
    "owner_linked",
    "rule",
    "users_of_tenant",
]

# TENANCY_TEMPORARY_PASSWORD_TTL_DAYS's default; the runbook passes the configured one.
DEFAULT_PASSWORD_TTL = timedelta(days=7)
# TENANCY_GRACE_DAYS and the other periods' defaults; the runbook passes the configured ones.
DEFAULT_PERIODS = LifecyclePeriods()
IN_FLIGHT = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING})

MailStatistics = tuple[tuple[str, int], ...]


def _no_mail_statistics() -> MailStatistics:
    return ()


@dataclass(frozen=True, slots=True)
class Context:
    """What a case is judged at: the time, the temporary password's lifetime, the mail
    provider's counts (RB-001 4.4 step 1), read only by a rule that cites them, since counting a
    provider's whole history is not free, and the lifecycle's periods."""

    now: datetime
    password_ttl: timedelta = DEFAULT_PASSWORD_TTL
    mail_statistics: Callable[[], MailStatistics] = _no_mail_statistics
    periods: LifecyclePeriods = DEFAULT_PERIODS  # the lifecycle's grace, suspended and retention days


@dataclass(frozen=True, slots=True)
class Found:
    """A rule's answer when its finding applies: the summary, the next step, an escalation the
    finding itself calls for (RB-001 section 6; the hour's escalation is the engine's) and the
    evidence the rule adds to what every store holds (`describe`)."""

    summary: str
    next_step: NextStep
    escalate_to: str | None = None
    evidence: tuple[Evidence, ...] = ()


Check = Callable[[CaseFile, Context], Found | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """One finding of RB-001 as a rule: `check` answers Found when the finding applies to the case
    (the rules before it in the registry having found nothing), else None. Its docstring says what
    it finds and why."""

    code: str
    finding: Finding
    check: Check

    @property
    def name(self) -> str:
        return self.check.__name__

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.check) or ""

    def __call__(self, case: CaseFile, context: Context) -> Found | None:
        return self.check(case, context)


def rule(code: str, finding: Finding) -> Callable[[Check], Rule]:
    """Makes the decorated check a Rule with this code, naming this finding."""

    def make(check: Check) -> Rule:
        return Rule(code, finding, check)

    return make


def users_of_tenant(case: CaseFile) -> list[UserRecord]:
    """The owner's users records that belong to the case's tenant."""
    tenant = case.tenant
    return [user for user in case.users if tenant is not None and user.tenant_id == tenant.tenant_id]


def owner_linked(case: CaseFile) -> bool:
    """Whether the tenant, its owner's identity user and users record all name each other: the
    identity user's custom:tenant_id is the tenant, a users record of the owner is the tenant's,
    and the tenant's owner is the identity user."""
    tenant, user = case.tenant, case.identity_user
    return (
        tenant is not None
        and user is not None
        and user.tenant_id == tenant.tenant_id
        and bool(tenant.owner_user_id)
        and (tenant.owner_user_id == user.sub or case.ownership_handed_on)
        and any(record.tenant_id == tenant.tenant_id for record in case.users)
    )
