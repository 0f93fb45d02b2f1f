"""RB-001 as code: break a healthy tenant the way the runbook describes, then diagnose names it,
repair fixes it, verify passes, and a second repair changes nothing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import (
    AuthChallenge,
    JobStatus,
    OutboxMessage,
    OutgoingEmail,
    PaymentVerdict,
    TenantStatus,
)
from tenancy.errors import PermanentError, TransientError
from tenancy.ports import Mailer
from tenancy.runbook.diagnose import classify
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import ESCALATION, Finding

from helpers import BrokenTenantStore, make_settings, pay, work


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    # Offline PayFast mode: the ITNs below need no validate endpoint; signature and amount still count.
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_max_attempts=2))
    yield built
    built.close()


class FailingMailer:
    """Every send fails with `error` (the email step's dependency is down)."""

    def __init__(self, real: Mailer, error: type[Exception]) -> None:
        self._real = real
        self._error = error

    def send(self, email: OutgoingEmail) -> str:
        raise self._error("550 5.1.1 mailbox unavailable")

    def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
        return self._real.outbox(to, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def healthy_tenant(services: Services, email: str = "owner@example.com") -> str:
    transaction_id = pay(services, email)
    work(services)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).finding is Finding.HEALTHY
    return transaction_id


def temporary_password(services: Services, email: str) -> str:
    match = re.search(r"Temporary password: (\S+)", services.mailer.outbox(email)[0].text)
    assert match
    return match.group(1)


def assert_repaired_once(services: Services, selector: Selector, finding: Finding) -> None:
    """Repair fixes it and verify passes; running it again changes nothing and records nothing."""
    runbook = services.runbook
    assert runbook.diagnose(selector).finding is finding

    result = runbook.repair(selector, operator="ops-test")

    assert result.outcome == "repaired"
    assert result.after.finding is Finding.HEALTHY
    assert result.verification.passed
    entries = services.trail.entries(transaction_id=result.plan.diagnosis.transaction_id)
    assert [(entry.operator, entry.finding, entry.outcome) for entry in entries] == [
        ("ops-test", finding.value, "repaired")
    ]
    assert entries[0].after["finding"] == "healthy"
    emails = len(services.mailer.outbox(limit=1000))

    again = runbook.repair(selector, operator="ops-test")

    assert again.outcome == "nothing_to_do"
    assert len(services.trail.entries(transaction_id=result.plan.diagnosis.transaction_id)) == 1
    assert len(services.mailer.outbox(limit=1000)) == emails
    assert services.queue.depth() == (0, 0)


def test_a_provisioned_tenant_is_diagnosed_healthy_and_verifies(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    selector = Selector(email="Owner@Example.com")

    diagnosis = services.runbook.diagnose(selector)

    assert diagnosis.finding is Finding.HEALTHY
    assert diagnosis.as_record()["runbook_section"] == "5"
    assert diagnosis.transaction_id == transaction_id
    assert any(line.startswith("tenants: ten_") for line in diagnosis.evidence_lines)
    assert not any(line.startswith("mail: the mail provider") for line in diagnosis.evidence_lines)
    report = services.runbook.verify(selector, password=temporary_password(services, "owner@example.com"))
    assert report.passed
    assert [check.passed for check in report.checks][-2:] == [True, None]  # token waits for the first sign-in


def test_verify_signs_in_and_checks_the_token_claims(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    challenge = services.accounts.login("owner@example.com", temporary_password(services, "owner@example.com"))
    assert isinstance(challenge, AuthChallenge)
    services.accounts.complete_new_password("owner@example.com", challenge.session, "Chosen-Passw0rd!")

    report = services.runbook.verify(Selector(transaction_id=transaction_id), password="Chosen-Passw0rd!")
    wrong = services.runbook.verify(Selector(transaction_id=transaction_id), password="Wrong-Passw0rd!")

    assert report.passed
    assert report.checks[-1].name == "token claims carry the tenant id"
    assert report.checks[-1].passed is True
    assert not wrong.passed


def test_unknown_email_is_payment_not_found_and_not_repairable(services: Services) -> None:
    selector = Selector(email="stranger@example.com")

    diagnosis = services.runbook.diagnose(selector)
    result = services.runbook.repair(selector, operator="ops")

    assert diagnosis.finding is Finding.PAYMENT_NOT_FOUND
    assert result.outcome == "not_repairable"
    assert services.trail.entries() == []


def test_failed_payment_is_payment_not_complete(services: Services) -> None:
    transaction_id = pay(services, status="FAILED")

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert diagnosis.finding is Finding.PAYMENT_NOT_COMPLETE
    assert "FAILED" in diagnosis.summary


@pytest.mark.parametrize(
    ("change", "reason", "escalation"),
    [
        ({"passphrase": "forged"}, "signature", ESCALATION["security"]),
        ({"amount": "1.00"}, "amount", ESCALATION["finance"]),
    ],
)
def test_rejected_itn_is_payment_not_complete_naming_the_check(
    services: Services, change: dict[str, str], reason: str, escalation: str
) -> None:
    transaction_id = pay(services, **change)

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert diagnosis.finding is Finding.PAYMENT_NOT_COMPLETE
    assert reason in diagnosis.summary
    assert diagnosis.escalate_to == escalation


def test_job_dead_lettered_before_the_tenant_record_is_diagnosed_as_4_1_and_repaired(services: Services) -> None:
    failing = dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants))
    transaction_id = pay(services)
    work(failing)
    assert services.queue.depth() == (0, 1)
    selector = Selector(transaction_id=transaction_id)

    diagnosis = services.runbook.diagnose(selector)

    assert diagnosis.finding is Finding.PROVISIONING_FAILED
    assert diagnosis.as_record()["runbook_section"] == "4.1"
    assert "dead-lettered" in diagnosis.summary
    assert any("dead-letter queue" in line for line in diagnosis.evidence_lines)
    assert_repaired_once(services, selector, Finding.PROVISIONING_FAILED)


def test_paid_but_never_enqueued_is_diagnosed_as_4_1_and_repaired_from_the_payment(services: Services) -> None:
    transaction_id = pay(services, email="lost@example.com")
    services.queue.purge(transaction_id)
    assert services.database is not None
    with services.database.transaction() as connection:
        connection.execute("DELETE FROM provisioning WHERE transaction_id = ?", (transaction_id,))
    selector = Selector(email="lost@example.com")

    diagnosis = services.runbook.diagnose(selector)

    assert diagnosis.finding is Finding.PROVISIONING_FAILED
    assert "never enqueued" in diagnosis.summary
    assert_repaired_once(services, selector, Finding.PROVISIONING_FAILED)
    tenant = services.tenants.find_by_transaction(transaction_id)
    assert tenant is not None
    assert tenant.plan == "professional"


def test_missing_identity_user_is_diagnosed_as_4_2_and_repaired(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    services.identity.delete_user("owner@example.com")
    selector = Selector(transaction_id=transaction_id)

    assert_repaired_once(services, selector, Finding.IDENTITY_USER_MISSING)

    user = services.identity.get_user("owner@example.com")
    tenant = services.tenants.find_by_transaction(transaction_id)
    assert user is not None
    assert tenant is not None
    assert user.attributes["custom:tenant_id"] == tenant.tenant_id
    assert user.attributes["custom:roles"] == "tenant_admin"
    assert tenant.owner_user_id == user.sub
    newest = temporary_password(services, "owner@example.com")
    assert isinstance(services.accounts.login("owner@example.com", newest), AuthChallenge)


def test_missing_tenant_record_is_diagnosed_as_4_3_and_recreated_from_the_payment(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    original = services.tenants.find_by_transaction(transaction_id)
    assert original is not None
    services.tenants.delete(original.tenant_id)
    selector = Selector(email="owner@example.com")

    assert services.runbook.diagnose(selector).as_record()["runbook_section"] == "4.3"
    assert_repaired_once(services, selector, Finding.TENANT_RECORD_MISSING)

    rebuilt = services.tenants.get(original.tenant_id)
    assert rebuilt is not None
    assert (rebuilt.status, rebuilt.plan, rebuilt.owner_user_id) == (TenantStatus.ACTIVE, "professional",
                                                                     original.owner_user_id)  # fmt: skip
    assert rebuilt.limits == original.limits
    assert rebuilt.billing == original.billing


def test_a_hand_written_tenant_id_on_the_identity_user_is_honoured_by_4_3(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    original = services.tenants.find_by_transaction(transaction_id)
    assert original is not None
    services.tenants.delete(original.tenant_id)
    services.identity.update_attributes("owner@example.com", {"custom:tenant_id": "ten_NEWID"})

    result = services.runbook.repair(Selector(email="owner@example.com"), operator="ops")

    assert result.plan.diagnosis.finding is Finding.TENANT_RECORD_MISSING
    assert result.after.finding is Finding.HEALTHY
    rebuilt = services.tenants.get("ten_NEWID")
    assert rebuilt is not None
    assert rebuilt.storage_prefix == "tenants/ten_NEWID"
    assert rebuilt.billing.transaction_id == transaction_id


def test_welcome_email_that_failed_until_dead_lettered_is_diagnosed_as_4_4_and_resent(services: Services) -> None:
    transaction_id = pay(services)
    work(dataclasses.replace(services, mailer=FailingMailer(services.mailer, PermanentError)))
    selector = Selector(transaction_id=transaction_id)
    assert services.journal.get(transaction_id).status is JobStatus.DEAD_LETTERED  # type: ignore[union-attr]

    diagnosis = services.runbook.diagnose(selector)

    assert diagnosis.finding is Finding.WELCOME_EMAIL_MISSING
    assert diagnosis.as_record()["runbook_section"] == "4.4"
    assert_repaired_once(services, selector, Finding.WELCOME_EMAIL_MISSING)
    email = services.mailer.outbox(diagnosis.email)[0]
    assert email.subject == "Welcome to Site Builder"
    assert isinstance(services.accounts.login(email.to, temporary_password(services, email.to)), AuthChallenge)


def test_dropped_welcome_email_is_diagnosed_as_4_4(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    assert services.database is not None
    with services.database.transaction() as connection:
        connection.execute("DELETE FROM outbox")

    assert_repaired_once(services, Selector(transaction_id=transaction_id), Finding.WELCOME_EMAIL_MISSING)
    assert len(services.mailer.outbox("owner@example.com")) == 1


def test_identity_user_pointing_at_another_tenant_is_a_mismatch_fixed_toward_the_tenant(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    services.identity.update_attributes("owner@example.com", {"custom:tenant_id": "ten_somewhereelse"})
    selector = Selector(transaction_id=transaction_id)

    assert_repaired_once(services, selector, Finding.TENANT_ID_MISMATCH)

    tenant = services.tenants.find_by_transaction(transaction_id)
    user = services.identity.get_user("owner@example.com")
    assert tenant is not None
    assert user is not None
    assert user.tenant_id == tenant.tenant_id


def test_job_waiting_for_a_retry_is_in_progress_with_the_next_attempt_time(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path / "slow", payfast_mode="offline", retry_base_seconds=600))
    transaction_id = pay(services)
    work(dataclasses.replace(services, mailer=FailingMailer(services.mailer, TransientError)), rounds=1)

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert diagnosis.finding is Finding.IN_PROGRESS
    assert "next attempt at" in diagnosis.summary
    assert services.runbook.repair(Selector(transaction_id=transaction_id), operator="ops").outcome == (
        "not_repairable"
    )
    services.close()


def test_second_purchase_by_an_owner_needs_review_and_is_escalated_to_finance(services: Services) -> None:
    healthy_tenant(services)
    second = pay(services, "owner@example.com", plan="enterprise")
    work(services)

    diagnosis = services.runbook.diagnose(Selector(email="owner@example.com"))

    assert diagnosis.finding is Finding.NEEDS_REVIEW
    assert diagnosis.transaction_id == second
    assert diagnosis.escalate_to == ESCALATION["finance"]
    assert services.runbook.repair(Selector(transaction_id=second), operator="ops").outcome == "not_repairable"


def test_a_failure_older_than_an_hour_is_escalated_to_on_call(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    services.identity.delete_user("owner@example.com")
    case = services.runbook.case(Selector(transaction_id=transaction_id))

    now = services.clock.now()
    assert classify(case, now).escalate_to is None
    assert classify(case, now + timedelta(hours=2)).escalate_to == ESCALATION["on_call"]


def test_dry_run_prints_the_plan_and_changes_nothing(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    services.identity.delete_user("owner@example.com")

    result = services.runbook.repair(Selector(transaction_id=transaction_id), operator="ops", dry_run=True)

    assert result.outcome == "dry_run"
    assert any("create identity user owner@example.com" in action for action in result.plan.actions)
    assert services.identity.get_user("owner@example.com") is None
    assert services.trail.entries() == []


def test_redriven_dead_letter_is_provisioned_by_the_worker(services: Services) -> None:
    transaction_id = pay(services)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    (message,) = services.runbook.dead_letters()
    assert message.transaction_id == transaction_id

    assert services.runbook.redrive(message.message_id)
    assert not services.runbook.redrive(message.message_id)
    work(services)

    assert services.queue.depth() == (0, 0)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).finding is Finding.HEALTHY


class EagerWorkerQueue:
    """A queue whose redriven message a worker receives at once, before redrive returns."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def redrive(self, message_id: str) -> bool:
        moved = self._services.queue.redrive(message_id)
        work(self._services)
        return moved

    def __getattr__(self, name: str) -> Any:
        return getattr(self._services.queue, name)


def test_a_worker_that_receives_a_redriven_message_at_once_provisions_the_job(services: Services) -> None:
    transaction_id = pay(services)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    (message,) = services.runbook.dead_letters()
    eager = dataclasses.replace(services, queue=EagerWorkerQueue(services))

    assert eager.runbook.redrive(message.message_id)

    assert services.queue.depth() == (0, 0)  # not parked again
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).finding is Finding.HEALTHY


def test_selector_needs_exactly_one_key() -> None:
    from tenancy.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        Selector()
    with pytest.raises(InvalidInputError):
        Selector(email="a@example.com", transaction_id="TXN-1")


def test_ledger_keeps_the_rejected_itn_the_diagnosis_cites(services: Services) -> None:
    transaction_id = pay(services, merchant_id="999")
    (entry,) = services.ledger.find(transaction_id=transaction_id)
    assert entry.verdict is PaymentVerdict.REJECTED
    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))
    assert "merchant" in diagnosis.summary


def test_a_welcome_whose_temporary_password_expired_is_not_a_welcome(services: Services) -> None:
    transaction_id = healthy_tenant(services)
    case = services.runbook.case(Selector(transaction_id=transaction_id))

    eight_days_on = classify(case, services.clock.now() + timedelta(days=8), password_ttl=timedelta(days=7))

    assert eight_days_on.finding is Finding.WELCOME_EMAIL_MISSING
    assert "expired" in eight_days_on.summary


def test_a_welcome_email_the_mail_server_refused_is_4_4_with_the_providers_statistics(tmp_path: Path) -> None:
    # The mail server is down for good (nothing listens): the email step fails until parked.
    services = build(make_settings(tmp_path / "smtp-down", payfast_mode="offline", retry_max_attempts=1,
                                   smtp_url="smtp://127.0.0.1:9"))  # fmt: skip
    transaction_id = pay(services)
    work(services)

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert diagnosis.finding is Finding.WELCOME_EMAIL_MISSING
    # RB-001 4.4 step 1: the provider's send statistics, read for this finding only, and said to
    # be the provider's counts for everyone, not this owner's.
    assert "mail: the mail provider, for all recipients: failed=1" in diagnosis.evidence_lines
    services.close()


def test_the_manual_trigger_leaves_a_job_a_worker_has_in_hand_and_runs_a_stalled_one(services: Services) -> None:

    transaction_id = pay(services, "waiting@example.com")  # queued: a worker will get to it

    class Later:
        def __init__(self, minutes: int) -> None:
            self.minutes = minutes

        def now(self) -> Any:
            return services.clock.now() + timedelta(minutes=self.minutes)

    def trigger(minutes: int) -> JobStatus:
        later = dataclasses.replace(services, clock=Later(minutes))
        outcome = later.provision_now(transaction_id, "waiting@example.com", "professional")
        return outcome.job.status

    assert trigger(0) is JobStatus.QUEUED
    assert services.tenants.find_by_transaction(transaction_id) is None
    assert services.queue.depth() == (1, 0)  # the worker's message is left alone
    assert trigger(16) is JobStatus.SUCCEEDED  # stalled for longer than a worker holds a job
    assert services.queue.depth() == (0, 0)


def test_a_repair_takes_the_job_from_a_run_that_went_quiet(services: Services) -> None:
    transaction_id = pay(services)
    services.queue.purge(transaction_id)  # a run started by hand (RB-001 4.1): no message
    quiet = format_timestamp(services.clock.now() - timedelta(minutes=20))
    job = services.journal.get(transaction_id)
    assert job is not None
    services.journal.save(job.with_changes(status=JobStatus.RUNNING, attempts=1, claim="quiet-run", updated_at=quiet))

    result = services.runbook.repair(Selector(transaction_id=transaction_id), operator="ops-test")

    assert result.outcome == "repaired"
    repaired = services.journal.get(transaction_id)
    assert repaired is not None
    assert repaired.status is JobStatus.SUCCEEDED
    # Were the quiet run to wake up, its next write would be refused: it no longer holds the job.
    assert not services.journal.save_claimed(repaired.with_changes(last_error="late"), expected_claim="quiet-run")
