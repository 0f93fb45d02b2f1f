"""The runbook's team-member finding (issue 17) on both backends, through `services.runbook` as
the CLI and the console use it: a member who joined by invitation and whose identity user was then
deleted, or re-pointed at another tenant, is named `member_mismatch` by diagnose, fails `verify`'s
check of that member, and is found by the weekly audit however old the purchase; a re-pointed
identity user is repaired toward the member's users record, unless another tenant holds it; a
missing one is made whole by removing and inviting again; and a repair never takes back an
ownership handed on."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from lifecycle_support import Subscriber, payfast, services, subscriber
from tenancy.bootstrap import Services
from tenancy.domain.members import Role
from tenancy.domain.model import UserRecord, UserStatus
from tenancy.runbook.audit import run_audit
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding, Store
from tenancy.runbook.verify import member_check_name

from aws_support import Backend

__all__ = ["payfast", "services", "subscriber"]  # the fixtures this suite uses, from lifecycle_support

MEMBER = "designer@example.com"
_TOKEN = re.compile(r"inv_[a-z0-9]{20}\.[A-Za-z0-9_-]{43}")


def join(services: Services, subscriber: Subscriber, email: str = MEMBER) -> UserRecord:
    """Invited by the owner, accepted with a password of the member's own: as the account page does it."""
    tenant = services.tenants.get(subscriber.tenant_id)
    assert tenant is not None
    invited = services.team.invite(tenant, email, Role.EDITOR, by=subscriber.email)
    token = _TOKEN.search(invited.link)
    assert token is not None, invited.link
    return services.team.accept(token.group(0), "Member-Passw0rd!")


def failing_checks(services: Services, selector: Selector) -> list[str]:
    return [check.name for check in services.runbook.verify(selector).checks if check.passed is False]


def test_a_whole_team_is_healthy_and_verify_checks_every_member(services: Services, subscriber: Subscriber) -> None:
    join(services, subscriber)
    join(services, subscriber, "client@example.com")
    selector = Selector(tenant_id=subscriber.tenant_id)

    report = services.runbook.verify(selector)

    assert services.runbook.diagnose(selector).finding is Finding.HEALTHY
    assert report.passed
    members = {check.name: check.detail for check in report.checks if check.name.startswith("member ")}
    assert set(members) == {member_check_name(MEMBER), member_check_name("client@example.com")}
    assert members[member_check_name(MEMBER)] == (
        f"editor, enabled, custom:tenant_id={subscriber.tenant_id}, users record -> {subscriber.tenant_id}"
    )


def test_a_member_whose_identity_user_was_deleted_is_named_failed_by_verify_and_found_by_the_audit(
    backend: Backend, services: Services, subscriber: Subscriber
) -> None:
    join(services, subscriber)
    services.identity.delete_user(MEMBER)  # by hand, in the console
    selector = Selector(tenant_id=subscriber.tenant_id)

    diagnosis = services.runbook.diagnose(selector)
    result = services.runbook.repair(selector, operator="alice")

    assert diagnosis.finding is Finding.MEMBER_MISMATCH
    [evidence] = [item for item in diagnosis.evidence if item.fields.get("email") == MEMBER]
    assert (evidence.store, evidence.fields["identity_user"]) == (Store.IDENTITY, None)
    # Their own password went with the identity user: they are invited again, not repaired.
    assert not diagnosis.repairable
    assert result.outcome == "not_repairable"
    assert services.identity.get_user(MEMBER) is None
    assert failing_checks(services, selector) == [member_check_name(MEMBER)]
    # A week on, the purchase is long out of a day's window: the member brings it into the audit.
    backend.clock.advance(seconds=timedelta(days=8).total_seconds())
    now = backend.clock.now()
    report = run_audit(services.evidence_stores, since=now - timedelta(days=1), now=now)
    assert [(case.diagnosis.transaction_id, case.finding) for case in report.cases] == [
        (subscriber.transaction_id, Finding.MEMBER_MISMATCH)
    ]


def test_a_member_without_an_identity_user_is_whole_again_once_removed_and_invited_again(
    services: Services, subscriber: Subscriber
) -> None:
    record = join(services, subscriber)
    services.identity.delete_user(MEMBER)
    selector = Selector(tenant_id=subscriber.tenant_id)
    tenant = services.tenants.get(subscriber.tenant_id)
    assert tenant is not None

    advice = services.runbook.diagnose(selector).next_step.advice
    services.team.remove(tenant, record.user_id, by="alice")  # what the advice says, by hand
    join(services, subscriber)

    assert f"tenancy members remove {subscriber.tenant_id} EMAIL" in advice
    assert services.runbook.diagnose(selector).finding is Finding.HEALTHY
    assert services.runbook.verify(selector).passed


def test_a_member_re_pointed_at_another_tenant_is_repaired_toward_its_users_record(
    services: Services, subscriber: Subscriber
) -> None:
    join(services, subscriber)
    services.identity.update_attributes(MEMBER, {"custom:tenant_id": "ten_elsewhere"})
    selector = Selector(tenant_id=subscriber.tenant_id)

    diagnosis = services.runbook.diagnose(selector)
    result = services.runbook.repair(selector, operator="alice")

    assert (diagnosis.finding, diagnosis.repairable) == (Finding.MEMBER_MISMATCH, True)
    assert result.outcome == "repaired"
    repaired = services.identity.get_user(MEMBER)
    assert repaired is not None
    assert (repaired.tenant_id, repaired.attributes["custom:roles"]) == (subscriber.tenant_id, "editor")
    assert result.after.finding is Finding.HEALTHY
    assert result.verification.passed
    [entry] = [entry for entry in services.trail.entries() if entry.finding == Finding.MEMBER_MISMATCH.value]
    assert (entry.operator, entry.outcome) == ("alice", "repaired")


def test_an_identity_user_another_tenant_holds_is_never_taken_from_it(
    services: Services, subscriber: Subscriber
) -> None:
    record = join(services, subscriber)
    # The same person is an active member elsewhere too (one tenant per identity: who keeps them
    # is the customers' call, never the repair's).
    services.users.put(
        UserRecord("sub-elsewhere", "ten_elsewhere", MEMBER, "viewer", UserStatus.ACTIVE, record.created_at)
    )
    services.identity.update_attributes(MEMBER, {"custom:tenant_id": "ten_elsewhere"})
    selector = Selector(tenant_id=subscriber.tenant_id)

    result = services.runbook.repair(selector, operator="alice")

    assert result.outcome == "failed"
    kept = services.identity.get_user(MEMBER)
    assert kept is not None
    assert kept.tenant_id == "ten_elsewhere"
    assert result.after.finding is Finding.MEMBER_MISMATCH


@pytest.mark.parametrize("then", ["stays an admin", "is made an editor", "leaves the team"])
def test_an_ownership_handed_on_is_healthy_whatever_became_of_the_buyer(
    backend: Backend, services: Services, subscriber: Subscriber, then: str
) -> None:
    record = join(services, subscriber)
    tenant = services.tenants.get(subscriber.tenant_id)
    assert tenant is not None
    services.team.set_role(tenant, record.user_id, Role.TENANT_ADMIN, by=subscriber.email)
    tenant = services.team.transfer_ownership(tenant, record.user_id, by=subscriber.email)
    [buyer] = [user for user in services.users.find_by_email(subscriber.email) if user.tenant_id == tenant.tenant_id]
    if then == "is made an editor":
        services.team.set_role(tenant, buyer.user_id, Role.EDITOR, by=MEMBER)
    elif then == "leaves the team":
        services.team.remove(tenant, buyer.user_id, by=MEMBER)
    selector = Selector(transaction_id=subscriber.transaction_id)

    diagnosis = services.runbook.diagnose(selector)
    report = services.runbook.verify(selector)

    assert diagnosis.finding is Finding.HEALTHY, diagnosis.summary
    assert report.passed, failing_checks(services, selector)
    [owner_check] = [check for check in report.checks if check.name == "tenant owner is the identity user"]
    assert owner_check.detail == f"ownership handed on to tenant admin {MEMBER}"
    # The audit judges it as diagnose does, from its batched look-ups.
    backend.clock.advance(seconds=60)
    now = backend.clock.now()
    audit = run_audit(services.evidence_stores, since=now - timedelta(days=1), now=now)
    assert [case.finding for case in audit.cases] == []
    kept = services.tenants.get(subscriber.tenant_id)
    assert kept is not None
    assert kept.owner_user_id == record.user_id
