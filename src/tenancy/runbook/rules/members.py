"""The rule about a tenant's team members (issue 17): each member other than the owner is a users
record and an identity user whose custom:tenant_id names the same tenant."""

from __future__ import annotations

from tenancy.domain.plurals import plural
from tenancy.runbook.evidence import CaseFile, Member, shown
from tenancy.runbook.findings import Evidence, Finding, NextStep, Store
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = ["member_mismatch", "member_repair_words"]


@rule("MEM001", Finding.MEMBER_MISMATCH)
def member_mismatch(case: CaseFile, context: Context) -> Found | None:
    """A member of the tenant (other than its owner) cannot use it: its identity user is missing
    (deleted by hand, or lost half-way through a removal), its users record is missing while its
    identity user still names the tenant (the API, which reads the record, refuses it everything),
    or its custom:tenant_id names another tenant than its users record. The owner's own records
    come first (RB-001 4.1 to 4.3 name them): a tenant whose owner is broken is broken whatever its
    members. The repairs are RB-001 4.2's for a member: a new identity user with a temporary
    password emailed to the member, the users record made again from the identity user and its
    invitation, the identity user pointed at its users record's tenant."""
    broken = [member for member in case.members if member.disagreement is not None]
    if case.tenant is None or not broken:
        return None
    evidence = tuple(
        Evidence(
            Store.IDENTITY if member.identity_user is None else Store.USERS,
            {
                "email": member.email,
                "user_id": member.record.user_id if member.record else None,
                "role": member.role,
                "users_record_tenant_id": member.record.tenant_id if member.record else None,
                "identity_user": member.identity_user.username if member.identity_user else None,
                "identity_tenant_id": member.identity_user.tenant_id if member.identity_user else None,
                "invitation": member.joined.invitation_id if member.joined else None,
            },
            member.disagreement or "",
        )
        for member in broken
    )
    tenant_id = case.tenant.tenant_id
    return Found(
        f"Tenant {tenant_id}: {plural(len(broken), 'member')} of {len(case.members)} cannot sign in to it "
        f"({', '.join(shown(member.email) for member in broken)}).",
        NextStep("; ".join(dict.fromkeys(member_repair_words(member) for member in broken))),
        evidence=evidence,
    )


def member_repair_words(member: Member) -> str:
    """What the repair does for the member, as an instruction (the rule's next step, the repair's plan)."""
    if member.identity_user is None:
        return (
            f"create identity user {member.email} for its users record (custom:tenant_id={member.tenant_id}, "
            f"custom:roles={member.role}) and email the member a temporary password"
        )
    if member.record is None:
        return (
            f"make the users record of {member.email} again ({member.role} of {member.tenant_id}) "
            f"from its identity user and its invitation {member.joined.invitation_id if member.joined else ''}".rstrip()
        )
    return (
        f"set custom:tenant_id={member.tenant_id} and custom:roles={member.role} on identity user {member.email}, "
        f"unless it is an operator's or an active member of {member.identity_user.tenant_id}"
    )
