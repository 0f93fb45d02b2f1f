"""The runbook never contradicts itself: verify and diagnose agree on the welcome email, an
operator is not a tenant, no `None` reaches a reader, the provider's mail counts say whose they
are, mail that was only stored says so, and a tenant written by hand is found by its owner."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tenancy.advice import next_action
from tenancy.bootstrap import Services, build
from tenancy.runbook.audit import run_audit
from tenancy.runbook.diagnose import classify
from tenancy.runbook.evidence import STORED_NOT_DELIVERED, Selector
from tenancy.runbook.findings import ESCALATION, Finding
from tenancy.runbook.verify import TENANT_ACCOUNT_CHECK, WELCOME_CHECK, verify

from helpers import make_settings, pay, work
from runbook_cases import hand_written_tenant, operator_account, texts_for_people
from servers import MailCatcher

OPERATOR = "ops-lead@example.com"
WEEK = timedelta(days=7)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_max_attempts=2))
    yield built
    built.close()


def healthy_tenant(services: Services, email: str = "owner@example.com") -> str:
    transaction_id = pay(services, email)
    work(services)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).healthy
    return transaction_id


def drop_outbox(services: Services) -> None:
    """The welcome email's row is lost (tests only: no code path deletes mail)."""
    assert services.database is not None
    with services.database.transaction() as connection:
        connection.execute("DELETE FROM outbox")


def welcome_check(services: Services, selector: Selector) -> tuple[bool | None, str]:
    [check] = [check for check in services.runbook.verify(selector).checks if check.name == WELCOME_CHECK]
    return check.passed, check.detail


# --- Verify and diagnose agree on the welcome email (RB-001 4.4) -------------------------------


def test_a_4_4_purchase_fails_verification_on_its_welcome_email(services: Services) -> None:
    selector = Selector(transaction_id=healthy_tenant(services))
    drop_outbox(services)

    diagnosis = services.runbook.diagnose(selector)
    report = services.runbook.verify(selector)

    assert diagnosis.finding is Finding.WELCOME_EMAIL_MISSING
    assert not report.passed
    assert welcome_check(services, selector) == (False, "none was sent")
    # Every other RB-001 section 5 check still passes: the welcome email is what fails.
    assert [check.name for check in report.checks if check.passed is False] == [WELCOME_CHECK]


def test_an_expired_welcome_fails_verification_as_it_fails_diagnosis(services: Services) -> None:
    selector = Selector(transaction_id=healthy_tenant(services))
    case = services.runbook.case(selector)
    later = services.clock.now() + timedelta(days=8)

    report = verify(case, accounts=services.accounts, identity=services.identity, now=later, password_ttl=WEEK)

    assert classify(case, later, password_ttl=WEEK).finding is Finding.WELCOME_EMAIL_MISSING
    assert not report.passed
    assert [check.detail for check in report.checks if check.name == WELCOME_CHECK] == [
        "its temporary password has expired"
    ]


def test_an_owner_who_chose_a_password_needs_no_welcome_and_verifies(services: Services) -> None:
    selector = Selector(transaction_id=healthy_tenant(services))
    services.identity.set_password("owner@example.com", "Owner-Chosen-Passw0rd!", permanent=True)
    drop_outbox(services)

    assert services.runbook.diagnose(selector).healthy
    assert services.runbook.verify(selector).passed
    assert welcome_check(services, selector) == (True, "not needed: the owner has chosen a password of their own")


def test_a_welcome_sent_to_an_identity_user_since_recreated_does_not_count(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    tenant = services.tenants.find_by_transaction(transaction_id)
    assert tenant is not None
    # RB-001 4.2 by hand: the user deleted and made again (a new sub, the runbook's own password),
    # the owner pointed at it. The welcome email's password went with the old user.
    services.identity.delete_user("owner@example.com")
    attributes = {"email": "owner@example.com", "custom:tenant_id": tenant.tenant_id, "custom:roles": "tenant_admin"}
    user = services.identity.create_user("owner@example.com", attributes, "TempPass123!")
    services.tenants.set_owner(tenant.tenant_id, user.sub, tenant.updated_at)
    [record] = services.users.find_by_email("owner@example.com")
    services.users.put(dataclasses.replace(record, user_id=user.sub))
    services.users.delete(record.user_id)
    selector = Selector(transaction_id=transaction_id)

    diagnosis = services.runbook.diagnose(selector)

    assert diagnosis.finding is Finding.WELCOME_EMAIL_MISSING
    assert "went to an identity user since replaced" in diagnosis.summary
    assert any("to an earlier identity user" in line for line in diagnosis.evidence_lines)
    assert not services.runbook.verify(selector).passed
    result = services.runbook.repair(selector, operator="ops-test")
    assert (result.after.finding, result.verification.passed) == (Finding.HEALTHY, True)


# --- An operator is not a tenant ---------------------------------------------------------------


def test_an_operator_account_is_diagnosed_as_not_a_tenant_and_never_repaired(services: Services) -> None:
    operator_account(services, OPERATOR)
    selector = Selector(email=OPERATOR)

    diagnosis = services.runbook.diagnose(selector)
    plan = services.runbook.plan(selector)
    result = services.runbook.repair(selector, operator="ops-test")

    assert diagnosis.finding is Finding.NOT_A_TENANT
    assert diagnosis.finding.runbook_section is None
    assert not diagnosis.finding.repairable
    assert "an operator account, not a tenant" in diagnosis.summary
    assert "tenant record" not in diagnosis.summary
    assert diagnosis.escalate_to is None
    assert any("custom:roles=operator" in line for line in diagnosis.evidence_lines)
    assert plan.actions == ()
    first = services.runbook.verify(selector).checks[0]
    assert (first.name, first.passed) == (TENANT_ACCOUNT_CHECK, False)
    assert first.detail == "an operator account, not a tenant"
    assert result.outcome == "not_repairable"
    assert services.trail.entries() == []
    user = services.identity.get_user(OPERATOR)
    assert user is not None
    assert (user.tenant_id, user.attributes["custom:roles"]) == (None, "operator")
    assert services.tenants.find_by_transaction("anything") is None


def test_a_purchase_made_with_an_operator_s_email_is_not_a_tenant_in_diagnose_and_the_audit(
    services: Services,
) -> None:
    operator_account(services, OPERATOR)
    transaction_id = pay(services, OPERATOR)
    work(services)  # the saga refuses to make an operator a tenant's owner
    now = services.clock.now()

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))
    report = run_audit(services.evidence_stores, since=now - WEEK, now=now)

    assert diagnosis.finding is Finding.NOT_A_TENANT
    assert f"purchase {transaction_id} by this email cannot be provisioned" in diagnosis.summary
    assert diagnosis.escalate_to == ESCALATION["finance"]
    [case] = report.cases
    assert case.diagnosis == diagnosis
    assert "an operator account, not a tenant" in case.diagnosis.summary
    assert services.runbook.repair(Selector(transaction_id=transaction_id), operator="ops").outcome == (
        "not_repairable"
    )


# --- No `None` for people ----------------------------------------------------------------------


def test_no_text_for_people_says_none_for_any_finding(services: Services) -> None:
    operator_account(services, OPERATOR)
    healthy = healthy_tenant(services, "healthy@example.com")
    unowned = healthy_tenant(services, "unowned@example.com")
    tenant = services.tenants.find_by_transaction(unowned)
    assert tenant is not None
    services.tenants.set_owner(tenant.tenant_id, "", tenant.updated_at)  # the owner link wiped
    orphan = healthy_tenant(services, "orphan@example.com")
    services.identity.update_attributes("orphan@example.com", {"custom:tenant_id": ""})
    orphan_tenant = services.tenants.find_by_transaction(orphan)
    assert orphan_tenant is not None
    services.tenants.delete(orphan_tenant.tenant_id)
    hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")
    services.identity.delete_user("hand@example.com")  # its owner's subject now names nobody
    # RB-001 4.2's admin-create-user without its custom:tenant_id: no tenant is named anywhere.
    services.identity.create_user("bare@example.com", {"email": "bare@example.com"}, "TempPass123!")
    selectors = [
        Selector(email=OPERATOR),
        Selector(transaction_id=healthy),
        Selector(transaction_id=unowned),
        Selector(email="orphan@example.com"),
        Selector(tenant_id="ten_NEWID"),
        Selector(email="bare@example.com"),
        Selector(email="nobody@example.com"),
        Selector(tenant_id="ten_NOSUCH"),
    ]

    texts = {selector.describe(): texts_for_people(services, selector) for selector in selectors}

    for described, lines in texts.items():
        assert not [line for line in lines if "None" in line], (described, lines)
    assert "tenant owner is the identity user: owner (none), sub" in " ".join(texts[f"transaction {unowned}"])
    assert any(line.startswith("custom:tenant_id matches the tenant: custom:tenant_id=(none), tenant ten_")
               for line in texts["email orphan@example.com"])  # fmt: skip
    bare = services.runbook.diagnose(Selector(email="bare@example.com"))
    assert (bare.finding, bare.summary) == (
        Finding.TENANT_RECORD_MISSING,
        "Identity user bare@example.com exists but it has no tenant record.",
    )
    assert "identity: no user with the tenant owner's subject" in " ".join(texts["tenant ten_NEWID"])


# --- Whose mail numbers, and mail that was only stored -----------------------------------------


def test_the_providers_counts_say_they_are_for_all_recipients(services: Services) -> None:
    healthy_tenant(services, "someone-else@example.com")
    selector = Selector(transaction_id=healthy_tenant(services))
    drop_outbox(services)
    healthy_tenant(services, "a-third@example.com")

    evidence = services.runbook.diagnose(selector).evidence_lines

    assert "mail: the mail provider, for all recipients: stored=1" in evidence
    assert "mail: no welcome email to owner@example.com" in evidence


def test_a_welcome_only_stored_without_smtp_is_healthy_but_says_it_was_not_delivered(services: Services) -> None:
    selector = Selector(transaction_id=healthy_tenant(services))

    diagnosis = services.runbook.diagnose(selector)
    passed, detail = welcome_check(services, selector)

    assert diagnosis.healthy
    assert [line for line in diagnosis.evidence_lines if line.startswith("mail: ")] == [
        f"mail: welcome email {STORED_NOT_DELIVERED} at {services.mailer.outbox('owner@example.com')[0].created_at}"
    ]
    assert f"Its welcome email was {STORED_NOT_DELIVERED}: the owner has not received it." in diagnosis.summary
    assert diagnosis.next_step.mail_kept_for == "owner@example.com"
    assert "TENANCY_SMTP_URL" in next_action(diagnosis)
    assert "`tenancy mail list --to owner@example.com`" in next_action(diagnosis)
    assert passed is True
    assert detail.startswith(f"{STORED_NOT_DELIVERED} at ")


def test_a_welcome_delivered_over_smtp_says_delivered(tmp_path: Path, smtp_server: tuple[MailCatcher, int]) -> None:
    catcher, port = smtp_server
    services = build(make_settings(tmp_path / "smtp", payfast_mode="offline", smtp_url=f"smtp://127.0.0.1:{port}"))
    try:
        selector = Selector(transaction_id=healthy_tenant(services, "delivered@example.com"))
        diagnosis = services.runbook.diagnose(selector)
        passed, detail = welcome_check(services, selector)
    finally:
        services.close()

    assert catcher.to("delivered@example.com")
    assert diagnosis.healthy
    assert any(line.startswith("mail: welcome email delivered at ") for line in diagnosis.evidence_lines)
    assert "stored" not in diagnosis.summary + next_action(diagnosis)
    assert (passed, detail.startswith("delivered at ")) == (True, True)


# --- A tenant written by hand is found from its own record -------------------------------------


def test_a_hand_written_tenant_is_found_by_tenant_id_as_by_email_and_verifies_after_its_repair(
    services: Services,
) -> None:
    sub = hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")
    by_tenant, by_email = Selector(tenant_id="ten_NEWID"), Selector(email="hand@example.com")

    before = services.runbook.verify(by_tenant)
    diagnosis = services.runbook.diagnose(by_tenant)

    assert before == services.runbook.verify(by_email)
    # The same diagnosis, next step included; only what was asked differs.
    assert diagnosis == dataclasses.replace(services.runbook.diagnose(by_email), selector=by_tenant)
    checks = {check.name: (check.passed, check.detail) for check in before.checks}
    assert checks["identity user exists"] == (True, "hand@example.com")
    assert checks["tenant owner is the identity user"] == (True, f"owner {sub}, sub {sub}")
    assert checks["users record matches"] == (True, "user_newid -> ten_NEWID")
    # Written by hand, it never got the project's welcome email: the one thing left to do.
    assert checks[WELCOME_CHECK] == (False, "none was sent")
    assert (diagnosis.finding, diagnosis.email, diagnosis.transaction_id) == (
        Finding.WELCOME_EMAIL_MISSING, "hand@example.com", "TXN-123456"
    )  # fmt: skip

    result = services.runbook.repair(by_tenant, operator="ops-test")

    assert (result.outcome, result.after.finding) == ("repaired", Finding.HEALTHY)
    assert services.runbook.verify(by_tenant).passed
    assert services.runbook.diagnose(by_tenant).healthy
    tenant = services.tenants.get("ten_NEWID")
    assert tenant is not None
    assert (tenant.name, tenant.owner_user_id) == ("User Tenant", sub)  # kept as written


def test_the_audit_finds_a_hand_written_tenant_s_owner_as_diagnose_does(services: Services) -> None:
    hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")
    now = services.clock.now()

    # RB-001's timestamps are January 2026: a window reaching back before them takes the tenant in.
    report = run_audit(services.evidence_stores, since=now - timedelta(days=3650), now=now)

    [case] = report.cases
    assert case.diagnosis == services.runbook.diagnose(Selector(transaction_id="TXN-123456"))
    assert (case.finding, case.diagnosis.email) == (Finding.WELCOME_EMAIL_MISSING, "hand@example.com")
