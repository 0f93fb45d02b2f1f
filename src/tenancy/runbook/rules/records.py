"""The rules about the records provisioning writes: the tenant, the identity user, the users
record and the links between them (RB-001 4.1 to 4.3)."""

from __future__ import annotations

from tenancy.domain.model import JobStatus, TenantStatus
from tenancy.domain.plurals import plural
from tenancy.runbook.evidence import CaseFile, shown
from tenancy.runbook.findings import Finding, NextStep
from tenancy.runbook.rules.base import IN_FLIGHT, Context, Found, rule, users_of_tenant

__all__ = ["identity_user_missing", "provisioning_failed", "tenant_id_mismatch", "tenant_record_missing"]


@rule("REC001", Finding.TENANT_RECORD_MISSING)
def tenant_record_missing(case: CaseFile, context: Context) -> Found | None:
    """RB-001 4.3: the identity user exists but the tenant record does not (deleted, or never
    written by hand). The repair rebuilds the tenant from the payment, under the id the identity
    user's custom:tenant_id names if it names one."""
    user = case.identity_user
    if case.tenant is not None or user is None:
        return None
    named = user.tenant_id or case.tenant_id
    missing = f"tenant record {named} is missing" if named else "it has no tenant record"
    return Found(
        f"Identity user {user.username} exists but {missing}.",
        NextStep("creates the tenant record from the payment and links the identity user"),
    )


@rule("REC002", Finding.TENANT_ID_MISMATCH)
def tenant_id_mismatch(case: CaseFile, context: Context) -> Found | None:
    """The tenant, the identity user and the users records all exist but disagree: the identity
    user's custom:tenant_id is another tenant's, the owner's users records all belong to other
    tenants, or the tenant's owner is another identity user. The tenant record is the one trusted:
    the repair points the others at it."""
    tenant, user = case.tenant, case.identity_user
    if tenant is None or user is None:
        return None
    if not (
        user.tenant_id != tenant.tenant_id
        or (case.users and not users_of_tenant(case))
        # An owner link handed on to another tenant admin is the tenant's choice, not a mismatch.
        or (tenant.owner_user_id and tenant.owner_user_id != user.sub and not case.ownership_handed_on)
    ):
        return None
    others = ", ".join(sorted({record.tenant_id for record in case.users})) or "no tenant"
    return Found(
        f"Stores disagree: tenant {tenant.tenant_id} (owner {shown(tenant.owner_user_id)}), identity "
        f"custom:tenant_id={shown(user.tenant_id)} (sub {shown(user.sub)}), users records for {others}.",
        NextStep(f"points the identity user, users record and owner at tenant {tenant.tenant_id}"),
    )


@rule("REC003", Finding.IDENTITY_USER_MISSING)
def identity_user_missing(case: CaseFile, context: Context) -> Found | None:
    """RB-001 4.2: the tenant exists but its owner cannot sign in to it: the identity user is
    missing, or (the stores otherwise agreeing) the owner has no users record for the tenant or
    the tenant names no owner. The repair creates what is missing and, for a new identity user,
    sends a new temporary password."""
    tenant, user = case.tenant, case.identity_user
    if tenant is None:
        return None
    if user is None:
        return Found(
            f"Tenant {tenant.tenant_id} exists but identity user {case.email or '(unknown email)'} does not.",
            NextStep("creates the identity user and users record, sends a new temporary password"),
        )
    if users_of_tenant(case) and tenant.owner_user_id:
        return None
    return Found(
        f"Tenant {tenant.tenant_id} has no users record (or owner link) for {user.username}.",
        NextStep("creates the users record and links the owner"),
    )


@rule("REC004", Finding.PROVISIONING_FAILED)
def provisioning_failed(case: CaseFile, context: Context) -> Found | None:
    """RB-001 4.1: paid, but provisioning never finished: there is no tenant record and no
    identity user (the job was dead-lettered, lost, or never enqueued), or the tenant is still
    `provisioning` though nothing else is missing. The repair re-runs provisioning from the
    first step not really done."""
    tenant = case.tenant
    if tenant is None and case.identity_user is None:
        return Found(f"Paid, but no tenant record: {_why_not_provisioned(case)}.", _RERUN)
    if tenant is not None and tenant.status is TenantStatus.PROVISIONING:
        return Found(f"Tenant {tenant.tenant_id} is still 'provisioning': {_why_not_provisioned(case)}.", _RERUN)
    return None


_RERUN = NextStep("re-runs provisioning from the failed step")


def _why_not_provisioned(case: CaseFile) -> str:
    job = case.job
    if job is None:
        return "no provisioning job was ever created (never enqueued)"
    if job.status is JobStatus.DEAD_LETTERED:
        error = job.last_error or "no error recorded"
        return f"the job was dead-lettered after {plural(job.attempts, 'attempt')} ({error})"
    if any(message.dead_lettered for message in case.messages):
        return "its message is in the dead-letter queue"
    if job.status in IN_FLIGHT:
        return f"the job is {job.status.value} but no worker has it queued (lost)"
    return f"the job is {job.status.value} ({job.last_error or 'no error recorded'})"
