"""MEM001 `member_mismatch` (issue 17) on cases built in memory: a member other than the owner
whose identity user is missing, whose users record is missing, or whose identity names another
tenant, is named with its evidence and the repair's plan; a removed
member, the owner's own records and a whole team are not; the owner's own failures come first."""

from __future__ import annotations

import dataclasses
from typing import Any

from test_runbook_rules import EMAIL, NOW, TENANT, diagnosed, found_by, healthy_case, identity_user, users_record

from tenancy.domain.members import Invitation, InvitationStatus, Role
from tenancy.domain.model import IdentityUser, UserRecord, UserStatus
from tenancy.runbook.evidence import Member, is_member_record
from tenancy.runbook.findings import Finding, Store
from tenancy.runbook.repair import plan_repair
from tenancy.runbook.rules.members import member_mismatch
from tenancy.runbook.rules.records import identity_user_missing

MEMBER_EMAIL = "designer@example.com"


def member_record(**changes: Any) -> UserRecord:
    return dataclasses.replace(users_record(user_id="sub-designer", email=MEMBER_EMAIL, role="editor"), **changes)


def member_identity(tenant_id: str = TENANT) -> IdentityUser:
    user = identity_user(roles="editor", tenant_id=tenant_id, username=MEMBER_EMAIL, sub="sub-designer")
    return dataclasses.replace(user, attributes={**user.attributes, "email": MEMBER_EMAIL})


def test_a_team_whose_members_can_all_sign_in_is_healthy() -> None:
    case = healthy_case(members=(Member(member_record(), member_identity()),))

    assert not found_by(member_mismatch, case)
    assert diagnosed(case).finding is Finding.HEALTHY


def test_a_member_without_an_identity_user_is_named_with_its_evidence_and_given_a_new_one() -> None:
    case = healthy_case(members=(Member(member_record(), None), Member(member_record(email="b@example.com"), None)))

    diagnosis = diagnosed(case)

    assert diagnosis.finding is Finding.MEMBER_MISMATCH
    assert diagnosis.summary == (
        f"Tenant {TENANT}: 2 members of 2 cannot sign in to it ({MEMBER_EMAIL}, b@example.com)."
    )
    [first, _] = [item for item in diagnosis.evidence if item.fields.get("email") in {MEMBER_EMAIL, "b@example.com"}]
    assert first.store is Store.IDENTITY
    assert first.fields["identity_user"] is None
    assert first.text == f"member {MEMBER_EMAIL} (editor) has no identity user"
    # RB-001 4.2 for a member: a new identity user, its temporary password emailed.
    assert diagnosis.repairable
    assert plan_repair(diagnosis, case).actions == tuple(
        f"create identity user {email} for its users record (custom:tenant_id={TENANT}, custom:roles=editor) "
        "and email the member a temporary password"
        for email in (MEMBER_EMAIL, "b@example.com")
    )


def test_a_member_without_a_users_record_is_named_and_its_record_made_again() -> None:
    invitation = Invitation(
        "inv_aaaaaaaaaaaaaaaaaaaa", TENANT, MEMBER_EMAIL, Role.VIEWER, "hash", InvitationStatus.ACCEPTED,
        EMAIL, NOW, NOW, NOW, "sub-designer",
    )  # fmt: skip
    case = healthy_case(members=(Member(None, member_identity(), invitation),))

    diagnosis = diagnosed(case)

    assert diagnosis.finding is Finding.MEMBER_MISMATCH
    [evidence] = [item for item in diagnosis.evidence if item.fields.get("email") == MEMBER_EMAIL]
    assert evidence.store is Store.USERS
    # The role its tokens carry (custom:roles), not the invitation's: what the member had become.
    assert (evidence.fields["user_id"], evidence.fields["role"], evidence.fields["invitation"]) == (
        None, "editor", invitation.invitation_id
    )  # fmt: skip
    assert evidence.text == f"member {MEMBER_EMAIL} (editor) has an identity user of the tenant but no users record"
    assert plan_repair(diagnosis, case).actions == (
        f"make the users record of {MEMBER_EMAIL} again (editor of {TENANT}) from its identity user and its "
        f"invitation {invitation.invitation_id}",
    )


def test_a_member_whose_identity_names_another_tenant_is_repaired_toward_its_users_record() -> None:
    case = healthy_case(members=(Member(member_record(), member_identity("ten_elsewhere")),))

    diagnosis = diagnosed(case)

    assert diagnosis.finding is Finding.MEMBER_MISMATCH
    [evidence] = [item for item in diagnosis.evidence if item.fields.get("email") == MEMBER_EMAIL]
    assert evidence.store is Store.USERS
    assert (evidence.fields["identity_tenant_id"], evidence.fields["users_record_tenant_id"]) == (
        "ten_elsewhere",
        TENANT,
    )
    assert diagnosis.repairable
    assert plan_repair(diagnosis, case).actions == (
        f"set custom:tenant_id={TENANT} and custom:roles=editor on identity user {MEMBER_EMAIL}, "
        "unless it is an operator's or an active member of ten_elsewhere",
    )


def test_the_owner_s_missing_identity_user_comes_before_its_members() -> None:
    case = healthy_case(identity_user=None, members=(Member(member_record(), None),))

    assert found_by(member_mismatch, case)
    assert diagnosed(case, NOW).finding is Finding.IDENTITY_USER_MISSING
    assert found_by(identity_user_missing, case)


def test_only_active_records_other_than_the_owner_s_are_members() -> None:
    tenant = healthy_case().tenant
    assert tenant is not None

    assert is_member_record(member_record(), tenant, EMAIL)
    # A removed member's record is disabled, and its identity user deleted: no finding.
    assert not is_member_record(member_record(status=UserStatus.DISABLED), tenant, EMAIL)
    # The owner, by the tenant's owner link or by the purchase's email: the owner rules judge it.
    assert not is_member_record(member_record(user_id=tenant.owner_user_id), tenant, EMAIL)
    assert not is_member_record(member_record(email=EMAIL.upper()), tenant, EMAIL)
    assert not is_member_record(member_record(tenant_id="ten_other"), tenant, EMAIL)
