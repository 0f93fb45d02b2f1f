"""The runbook's team-member finding (issue 17) on both backends, through `services.runbook` as
the CLI and the console use it: a member who joined by invitation and whose identity user was then
deleted, re-pointed at another tenant, or whose users record was deleted, is named
`member_mismatch` by diagnose, fails `verify`'s check of that member, and is found by the weekly
audit however old the purchase. The repairs are RB-001 4.2's for a member: a new identity user and
a temporary password emailed (the member signs in with it), the users record made again from the
identity user and its invitation, a re-pointed identity user pointed back at the member's users
record unless another tenant holds it; and a repair never takes back an ownership handed on."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from lifecycle_support import Subscriber, payfast, services, subscriber
from tenancy.bootstrap import Services
from tenancy.domain.members import Role
from tenancy.domain.model import AuthChallenge, OutgoingEmail, Tokens, UserRecord, UserStatus
from tenancy.errors import InvalidTokenError, TransientError
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

    assert diagnosis.finding is Finding.MEMBER_MISMATCH
    [evidence] = [item for item in diagnosis.evidence if item.fields.get("email") == MEMBER]
    assert (evidence.store, evidence.fields["identity_user"]) == (Store.IDENTITY, None)
    assert diagnosis.repairable
    assert f"create identity user {MEMBER}" in diagnosis.next_step.advice
    assert failing_checks(services, selector) == [member_check_name(MEMBER)]
    # A week on, the purchase is long out of a day's window: the member brings it into the audit.
    backend.clock.advance(seconds=timedelta(days=8).total_seconds())
    now = backend.clock.now()
    report = run_audit(services.evidence_stores, since=now - timedelta(days=1), now=now)
    assert [(case.diagnosis.transaction_id, case.finding) for case in report.cases] == [
        (subscriber.transaction_id, Finding.MEMBER_MISMATCH)
    ]


def test_a_member_whose_identity_user_was_deleted_is_emailed_a_temporary_password_and_signs_in_again(
    backend: Backend, services: Services, subscriber: Subscriber
) -> None:
    record = join(services, subscriber)
    services.identity.delete_user(MEMBER)
    selector = Selector(tenant_id=subscriber.tenant_id)

    result = services.runbook.repair(selector, operator="alice")

    assert result.outcome == "repaired"
    assert result.after.finding is Finding.HEALTHY
    assert result.verification.passed
    restored = services.identity.get_user(MEMBER)
    assert restored is not None
    assert (restored.tenant_id, restored.attributes["custom:roles"]) == (subscriber.tenant_id, "editor")
    password = emailed_password(backend, MEMBER)
    # RB-001 4.2's first sign-in: the temporary password, then one of the member's own.
    challenge = services.accounts.login(MEMBER, password)
    assert isinstance(challenge, AuthChallenge)
    tokens = services.accounts.complete_new_password(MEMBER, challenge.session, "Member-Chosen-Passw0rd!")
    tenant, member = services.accounts.member_for_token(tokens.id_token)
    assert (tenant.tenant_id, member.user_id, member.role) == (subscriber.tenant_id, record.user_id, "editor")
    [entry] = [entry for entry in services.trail.entries() if entry.finding == Finding.MEMBER_MISMATCH.value]
    assert (entry.operator, entry.outcome) == ("alice", "repaired")


def test_a_restoring_email_that_cannot_be_sent_leaves_the_member_to_repair_again(
    backend: Backend, services: Services, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    join(services, subscriber)
    services.identity.delete_user(MEMBER)
    selector = Selector(tenant_id=subscriber.tenant_id)
    send = services.mailer.send

    def unreachable(email: OutgoingEmail) -> str:
        raise TransientError("the mail server is unreachable")

    monkeypatch.setattr(services.mailer, "send", unreachable)
    with pytest.raises(TransientError):
        services.runbook.repair(selector, operator="alice")
    # The email goes first: no identity user was made with a password nobody was told.
    assert services.identity.get_user(MEMBER) is None
    assert services.runbook.diagnose(selector).finding is Finding.MEMBER_MISMATCH
    monkeypatch.setattr(services.mailer, "send", send)

    result = services.runbook.repair(selector, operator="alice")

    assert (result.outcome, result.after.finding) == ("repaired", Finding.HEALTHY)
    assert isinstance(services.accounts.login(MEMBER, emailed_password(backend, MEMBER)), AuthChallenge)


def test_a_member_whose_users_record_was_deleted_is_found_and_the_record_made_again(
    backend: Backend, services: Services, subscriber: Subscriber
) -> None:
    record = join(services, subscriber)
    tokens = services.accounts.login(MEMBER, "Member-Passw0rd!")
    assert isinstance(tokens, Tokens)
    services.users.delete(record.user_id)  # by hand: the identity user still names the tenant
    selector = Selector(tenant_id=subscriber.tenant_id)

    diagnosis = services.runbook.diagnose(selector)
    refused = _refused(services, tokens.id_token)
    backend.clock.advance(seconds=60)
    now = backend.clock.now()
    # A window that starts after the purchase: only the audit's pass over the invitations brings it in.
    report = run_audit(services.evidence_stores, since=now - timedelta(seconds=30), now=now)
    result = services.runbook.repair(selector, operator="alice")

    assert refused  # the API reads the users record: without it the member may use nothing
    assert diagnosis.finding is Finding.MEMBER_MISMATCH
    [evidence] = [item for item in diagnosis.evidence if item.fields.get("email") == MEMBER]
    assert (evidence.store, evidence.fields["user_id"], evidence.fields["role"]) == (Store.USERS, None, "editor")
    assert evidence.fields["invitation"] is not None
    # The audit's pass over the accepted invitations brings the old purchase in.
    assert [(case.diagnosis.transaction_id, case.finding) for case in report.cases] == [
        (subscriber.transaction_id, Finding.MEMBER_MISMATCH)
    ]
    assert (result.outcome, result.after.finding) == ("repaired", Finding.HEALTHY)
    assert result.verification.passed
    remade = services.users.get(record.user_id)
    assert remade is not None
    assert (remade.tenant_id, remade.email, remade.role, remade.status) == (
        subscriber.tenant_id, MEMBER, "editor", UserStatus.ACTIVE
    )  # fmt: skip
    tenant, member = services.accounts.member_for_token(tokens.id_token)
    assert (tenant.tenant_id, member.user_id) == (subscriber.tenant_id, record.user_id)
    # The seats the record held were never given back: the count is still the team's.
    assert services.team_store.seats_used(subscriber.tenant_id) == 2


def test_verify_names_a_member_with_no_users_record(services: Services, subscriber: Subscriber) -> None:
    record = join(services, subscriber)
    services.users.delete(record.user_id)
    selector = Selector(tenant_id=subscriber.tenant_id)

    checks = {check.name: check for check in services.runbook.verify(selector).checks}

    check = checks[member_check_name(MEMBER)]
    assert check.passed is False
    assert check.detail == f"editor, enabled, custom:tenant_id={subscriber.tenant_id}, no users record"


def test_a_removed_member_is_not_taken_for_one_whose_record_is_missing(
    backend: Backend, services: Services, subscriber: Subscriber
) -> None:
    record = join(services, subscriber)
    tenant = services.tenants.get(subscriber.tenant_id)
    assert tenant is not None
    services.team.remove(tenant, record.user_id, by=subscriber.email)
    selector = Selector(tenant_id=subscriber.tenant_id)

    backend.clock.advance(seconds=60)
    now = backend.clock.now()
    report = run_audit(services.evidence_stores, since=now - timedelta(seconds=30), now=now)

    assert services.runbook.diagnose(selector).finding is Finding.HEALTHY
    assert report.cases == ()


def emailed_password(backend: Backend, email: str) -> str:
    """The temporary password of the newest access-restored email: the embedded outbox keeps it
    whole; on AWS the mail log keeps it redacted, and moto's SES what was sent."""
    [kept] = [mail for mail in backend.services.mailer.outbox(email) if mail.tags.get("kind") == "access_restored"]
    text = kept.text
    if backend.on_moto:
        assert backend.aws is not None
        sent = ses_backends[DEFAULT_ACCOUNT_ID][backend.aws.settings.aws_region].sent_messages
        [text] = [message.body for message in sent if message.id == kept.message_id]
    found = re.search(r"Temporary password: ([^<\s]+)", text)
    assert found is not None, text
    return found.group(1)


def _refused(services: Services, id_token: str) -> bool:
    try:
        services.accounts.member_for_token(id_token)
    except InvalidTokenError:
        return True
    return False


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
