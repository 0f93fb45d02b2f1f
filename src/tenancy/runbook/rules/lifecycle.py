"""The rules about a tenant's lifecycle (shared/design/tenant-lifecycle.md): a deleted tenant (no
failure, unless people outlived it), a move time made due that was not applied, who can sign in
disagreeing with the tenant's state, and a lifecycle event that died undelivered."""

from __future__ import annotations

from datetime import timedelta

from tenancy.domain.model import TenantStatus
from tenancy.domain.plurals import plural
from tenancy.lifecycle.due import due_move
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.findings import ESCALATION, Evidence, Finding, NextStep, Store
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = ["access_mismatch", "event_undelivered", "lifecycle_overdue", "tenant_deleted", "tenant_held"]

# The sweep runs every few minutes: a move due for less than this is the sweep's, not a finding.
SWEEP_SLACK = timedelta(hours=1)


def _people_left(case: CaseFile) -> list[str]:
    """Who can still sign in as one of the tenant's people."""
    left = [f"identity user {case.identity_user.username}"] if case.identity_user is not None else []
    left += [f"users record {user.user_id}" for user in case.users if user.tenant_id == case.tenant_id]
    return left


@rule("LIF001", Finding.ACCESS_MISMATCH)
def access_mismatch(case: CaseFile, context: Context) -> Found | None:
    """Who can sign in disagrees with the tenant's state: a deleted tenant whose people are still
    there (its deletion was interrupted after the tombstone was written: the repair finishes it),
    or a tenant its people may use whose owner's identity user is disabled (no sign-in at all,
    which nothing in Tenancy does: someone disabled it by hand). It comes before the rules about
    missing records, which would otherwise rebuild a deleted tenant's people."""
    tenant, user = case.tenant, case.identity_user
    if tenant is None:
        return None
    if tenant.status is TenantStatus.DELETED:
        left = _people_left(case)
        if not left:
            return None
        evidence = Evidence(
            Store.LIFECYCLE,
            {"status": tenant.status.value, "left": left},
            f"tenant {tenant.tenant_id} is deleted, but still there: {', '.join(left)}",
        )
        return Found(
            f"Tenant {tenant.tenant_id} was deleted, but {', '.join(left)} can still sign in.",
            NextStep("finishes the deletion: removes the identity users and users records left"),
            evidence=(evidence,),
        )
    if tenant.status.has_access and user is not None and not user.enabled and user.tenant_id == tenant.tenant_id:
        evidence = Evidence(
            Store.IDENTITY,
            {"status": tenant.status.value, "enabled": False},
            f"tenant {tenant.tenant_id} is {tenant.status.value}, but identity user {user.username} is disabled",
        )
        return Found(
            f"Tenant {tenant.tenant_id} is {tenant.status.value}, but its owner {user.username} cannot sign in: "
            "the identity user is disabled.",
            NextStep(
                "Enable the identity user (Cognito: `aws cognito-idp admin-enable-user`), after finding out who "
                "disabled it and why: Tenancy never disables a tenant's people.",
                repairable=False,
            ),
            ESCALATION["security"],
            (evidence,),
        )
    return None


@rule("LIF002", Finding.TENANT_DELETED)
def tenant_deleted(case: CaseFile, context: Context) -> Found | None:
    """The tenant left and was deleted after its retention period (or on request): its people are
    gone, its tombstone and billing history remain, and its owner is told "Account not found".
    Nothing is wrong and nothing is repaired; buying again makes a new tenant."""
    tenant = case.tenant
    if tenant is None or tenant.status is not TenantStatus.DELETED:
        return None
    return Found(
        f"Tenant {tenant.tenant_id} was deleted on {tenant.updated_at}: {Finding.TENANT_DELETED.label}.",
        NextStep("Nothing to repair. A customer who wants back in buys again: that makes a new tenant."),
        evidence=(Evidence(Store.TENANTS, {"status": "deleted"}, f"tenant {tenant.tenant_id} is a tombstone"),),
    )


@rule("LIF005", Finding.TENANT_HELD)
def tenant_held(case: CaseFile, context: Context) -> Found | None:
    """The tenant's subscription lifecycle suspended it (payment overdue) or cancelled it (the
    subscription ended): its people sign in to billing only, until it is paid for again. Nothing
    is wrong and nothing is repaired. It comes after the rules of the tenant's records and its
    subscription's payments, which a held tenant may still fail, and after a lifecycle move due
    and not applied (a suspended tenant overdue for cancellation)."""
    tenant, subscription = case.tenant, case.subscription
    held = {TenantStatus.SUSPENDED, TenantStatus.CANCELLED}
    if tenant is None or tenant.status not in held or subscription is None:
        return None
    if subscription.tenant_id != tenant.tenant_id:
        return None
    why = "payment overdue" if tenant.status is TenantStatus.SUSPENDED else "subscription ended"
    return Found(
        f"Tenant {tenant.tenant_id} is {tenant.status.value} ({why}): {Finding.TENANT_HELD.label}.",
        NextStep(
            "Nothing to repair. The owner pays from the account page (Pay now or Subscribe again); "
            "`tenancy lifecycle history` shows how it got here."
        ),
        evidence=(
            Evidence(
                Store.LIFECYCLE,
                {"status": tenant.status.value, "paid_through": subscription.paid_through.isoformat()},
                f"{tenant.status.value}: {why}; paid through {subscription.paid_through.isoformat()}",
            ),
        ),
    )


@rule("LIF003", Finding.LIFECYCLE_OVERDUE)
def lifecycle_overdue(case: CaseFile, context: Context) -> Found | None:
    """Time made a move of the tenant's due (past due, suspended, cancelled) and it was not
    applied: the sweep is not running, or kept failing for it (PayFast out of reach). The repair
    applies it as the sweep would, confirming a missed renewal with PayFast first."""
    tenant, subscription = case.tenant, case.subscription
    if tenant is None or subscription is None or subscription.tenant_id != tenant.tenant_id:
        return None
    due = due_move(tenant, subscription, (context.now - SWEEP_SLACK).date(), context.periods)
    if due is None:
        return None
    evidence = Evidence(
        Store.LIFECYCLE,
        {
            "status": tenant.status.value,
            "due": due.to.value,
            "paid_through": subscription.paid_through.isoformat(),
            "reason": due.reason,
        },
        f"{tenant.status.value}, due to be {due.to.value}: {due.reason}",
    )
    return Found(
        f"Tenant {tenant.tenant_id} is {tenant.status.value} but should be {due.to.value}: {due.reason}.",
        NextStep(f"applies the lifecycle moves due now ({tenant.status.value} -> {due.to.value}), as the sweep does"),
        ESCALATION["engineering"],
        (evidence,),
    )


@rule("LIF004", Finding.EVENT_UNDELIVERED)
def event_undelivered(case: CaseFile, context: Context) -> Found | None:
    """A notice one of the tenant's moves owed (a lifecycle event for the Site Builder
    application, or an owner email) was retried for a day and never delivered: the application
    does not know the tenant's state. The repair delivers it again."""
    dead = case.undelivered
    if not dead:
        return None
    names = ", ".join(
        f"{notice.body.get('type') or notice.body.get('subject')} ({notice.notice_id})" for notice in dead
    )
    evidence = Evidence(
        Store.LIFECYCLE,
        {
            "undelivered": [notice.notice_id for notice in dead],
            "last_errors": [notice.last_error for notice in dead],
        },
        f"undelivered after {plural(max(notice.attempts for notice in dead), 'attempt')}: {names}; "
        f"last error: {dead[-1].last_error or '(none)'}",
    )
    return Found(
        f"{plural(len(dead), 'lifecycle notice')} of tenant {case.tenant_id} never delivered: {names}.",
        NextStep("delivers the undelivered notices again, now"),
        ESCALATION["engineering"],
        (evidence,),
    )
