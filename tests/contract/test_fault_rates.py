"""TENANCY_FAULTS' `rate:` rules on both backends, as `bootstrap.build` wires them: each fault is
the error the real component raises, injected before anything is written or sent, so the
adapters turn it into the transient error the product retries; each injection is one
`fault_injected` line in the log files, which `count_injected` counts. At rate 1.0 every call
meets the fault, so the outcomes are certain."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.model import JobStatus, OutgoingEmail
from tenancy.errors import TransientError
from tenancy.faults import count_injected

from aws_support import AwsContext, Backend, moto_cognito
from helpers import ManualClock, journal_job, pay, work

STALLED_AFTER_SECONDS = 30


@pytest.fixture
def faults() -> str:
    """The TENANCY_FAULTS of the test's backend; each test names its own by parametrizing this."""
    return ""


@pytest.fixture
def backend_settings(faults: str) -> dict[str, Any]:
    return {"faults": faults, "stalled_after_seconds": STALLED_AFTER_SECONDS}


def without_faults(services: Services, clock: ManualClock) -> Services:
    """The same stores, wired anew with no faults: another process, or the same after the fault passed."""
    return build(services.settings.model_copy(update={"faults": ""}), clock=clock)


@pytest.mark.parametrize("faults", ["rate:store_throttled:1.0"])
def test_a_throttled_store_refuses_the_write_with_a_transient_error_and_counts_it(
    backend: Backend, log_dir: Path
) -> None:
    services = backend.services

    with pytest.raises(TransientError):
        journal_job(services, "TXN-THROTTLE1", "throttled@example.com")

    clean = without_faults(services, backend.clock)
    try:
        assert clean.journal.get("TXN-THROTTLE1") is None  # nothing was written
    finally:
        clean.close()
    where = "dynamodb.PutItem" if backend.on_moto else "sqlite.begin"
    assert count_injected(log_dir) == {"store_throttled": 1}
    [line] = [line for line in (log_dir / "app.log").read_text().splitlines() if "fault_injected" in line]
    assert f'"at": "{where}"' in line


@pytest.mark.parametrize("faults", ["rate:identity_throttled:1.0,rate:queue_send_failed:1.0"])
def test_the_embedded_backend_accepts_the_aws_only_faults_and_injects_nothing(
    local_backend: Backend, log_dir: Path
) -> None:
    services = local_backend.services

    transaction_id = pay(services)
    work(services)

    assert services.journal.get(transaction_id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    assert count_injected(log_dir) == {}


@pytest.fixture
def throttled_cognito(aws: AwsContext, clock: ManualClock) -> Iterator[Services]:
    """The AWS backend with Cognito throttling every call. Its own identity adapter, not the
    `backend` fixture's (that one is moto's pool on a session the faults never hooked)."""
    services = build(aws.settings.model_copy(update={"faults": "rate:identity_throttled:1.0"}), clock=clock)
    yield services
    services.close()


def test_throttled_cognito_fails_the_call_with_a_transient_error_and_creates_no_user(
    aws: AwsContext, throttled_cognito: Services, log_dir: Path
) -> None:
    with pytest.raises(TransientError, match="TooManyRequestsException"):
        throttled_cognito.identity.create_user("owner@example.com", {"custom:tenant_id": "ten_1"}, "Tmp!Passw0rd-1")

    assert moto_cognito(aws).get_user("owner@example.com") is None
    assert count_injected(log_dir) == {"identity_throttled": 1}


@pytest.mark.parametrize("faults", ["rate:queue_send_failed:1.0"])
def test_a_queue_send_failed_after_the_ledger_commit_is_healed_by_the_sweep(
    aws_backend: Backend, log_dir: Path
) -> None:
    services, clock = aws_backend.services, aws_backend.clock

    transaction_id = pay(services)  # the ITN is accepted: the failed send is logged, not raised

    [payment] = services.ledger.find(transaction_id=transaction_id)
    assert payment.verdict.value == "accepted"
    assert services.journal.get(transaction_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert services.queue.depth() == (0, 0)  # no message: no worker will ever hear of it
    assert count_injected(log_dir) == {"queue_send_failed": 1}

    # The fault has passed (a rate below 1.0 lets the next send through): the sweep, on its short
    # stall time, gives the job the message it never had, and a worker provisions it.
    healer = without_faults(services, clock)
    try:
        # Moto's pool has no JWKS URL: its keys given, as the `backend` fixture gives them.
        healer = replace(healer, identity=moto_cognito(aws_backend.moto))
        clock.advance(STALLED_AFTER_SECONDS - 1)
        assert healer.sweeper.sweep().requeued == []
        clock.advance(2)
        assert healer.sweeper.sweep().requeued == [transaction_id]
        assert healer.queue.depth() == (1, 0)
        work(healer)
        assert healer.journal.get(transaction_id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    finally:
        healer.close()


@pytest.mark.parametrize(
    ("faults", "complaint"),
    [("rate:mail_refused:1.0", "Throttling"), ("rate:mail_timeout:1.0", "ReadTimeoutError")],
)
def test_a_refused_or_timed_out_ses_send_fails_transiently_and_sends_nothing(
    aws_backend: Backend, log_dir: Path, faults: str, complaint: str
) -> None:
    services = aws_backend.services
    email = OutgoingEmail(to="owner@example.com", subject="Welcome", text="Hello", sender=services.settings.email_from)

    with pytest.raises(TransientError, match=complaint):
        services.mailer.send(email)

    assert services.mailer.delivery_statistics()["delivery_attempts"] == 0
    assert [kept.status for kept in services.mailer.outbox("owner@example.com")] == ["failed"]
    assert count_injected(log_dir) == {faults.split(":")[1]: 1}
