"""The rule about a tenant's team members (issue 17): each member other than the owner is a users
record and an identity user whose custom:tenant_id names the same tenant."""

from __future__ import annotations

from tenancy.domain.plurals import plural
from tenancy.runbook.evidence import CaseFile, shown
from tenancy.runbook.findings import Evidence, Finding, NextStep, Store
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = ["member_mismatch"]


@rule("MEM001", Finding.MEMBER_MISMATCH)
def member_mismatch(case: CaseFile, context: Context) -> Found | None:
    """A member of the tenant (an active users record other than the owner's) cannot sign in to it:
    its identity user is missing (deleted by hand, or lost half-way through a removal), or its
    custom:tenant_id names another tenant than its users record. The owner's own records come
    first (RB-001 4.1 to 4.3 name them): a tenant whose owner is broken is broken whatever its
    members. The users record is the one trusted, as the tenant record is for the owner: the repair
    points the identity user at the users record's tenant. A missing identity user is not made
    again by the repair (its member chose their own password when they joined): the member is
    removed and invited again, which emails them a new link."""
    broken = [member for member in case.members if member.disagreement is not None]
    if case.tenant is None or not broken:
        return None
    evidence = tuple(
        Evidence(
            Store.IDENTITY if member.identity_user is None else Store.USERS,
            {
                "email": member.record.email,
                "user_id": member.record.user_id,
                "role": member.record.role,
                "users_record_tenant_id": member.record.tenant_id,
                "identity_user": member.identity_user.username if member.identity_user else None,
                "identity_tenant_id": member.identity_user.tenant_id if member.identity_user else None,
            },
            member.disagreement or "",
        )
        for member in broken
    )
    tenant_id = case.tenant.tenant_id
    missing = [member.record.email for member in broken if member.identity_user is None]
    repointed = len(missing) < len(broken)
    advice = "points each member's identity user at the tenant its users record names" if repointed else ""
    if missing:
        by_hand = (
            f"a member with no identity user ({', '.join(missing)}) is removed and invited again: "
            f"`tenancy members remove {tenant_id} EMAIL`, then `tenancy members add {tenant_id} EMAIL ROLE`"
        )
        advice = f"{advice}; by hand, {by_hand}" if repointed else f"Nothing to repair: {by_hand}."
    return Found(
        f"Tenant {tenant_id}: {plural(len(broken), 'member')} of {len(case.members)} cannot sign in to it "
        f"({', '.join(shown(member.record.email) for member in broken)}).",
        # Nothing for `repair` to do when every member it names lacks an identity user.
        NextStep(advice, repairable=repointed),
        evidence=evidence,
    )
