"""Each dependency failing the way RB-001 says it can: the identity provider, the tenant and user
stores, the mailer and the queue, wrapped around the real embedded adapters.

A transient fault is retried with growing delays and the job succeeds. A permanent one, or
transient ones past the last attempt, park the job in the DLQ; `diagnose` then names the RB-001
scenario the stores show, `repair` (the dependency healthy again) fixes it and `verify` passes.
A queue fault is never the job's fault: the worker loop survives it and the message comes back.

Retry delays pass on a ManualClock; a worker loop running in its own thread runs on the system
clock, as a server's does.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, SystemClock, build
from tenancy.domain.model import JobStatus, Step
from tenancy.errors import PermanentError, TransientError
from tenancy.ports import Clock
from tenancy.provisioning.worker import JobOutcome, NextAction, ProvisioningWorker
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding

from fleet import EXACTLY_ONCE, PaymentFootprint, itn_body, new_payment, payment_footprint
from helpers import ManualClock, make_settings, wait_until

MAX_ATTEMPTS = 3


class Faulty:
    """A real adapter with one method failing: `times` calls raise `error`, later calls go through.
    Every other attribute is the real adapter's, so the port's contract is otherwise intact."""

    def __init__(self, real: Any, method: str, error: type[Exception], times: int = 1_000_000) -> None:
        self._real = real
        self._method = method
        self._error = error
        self._remaining = times
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name != self._method:
            return attribute

        def failing(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self._remaining > 0:
                self._remaining -= 1
                raise self._error(f"injected fault in {name}")
            return attribute(*args, **kwargs)

        return failing


@pytest.fixture
def clock() -> Clock:
    """Stands still until a test moves it on (see deliver_until_empty)."""
    return ManualClock()


# For a test whose worker loop runs in a thread of its own and waits on real time, as a server's does.
on_the_system_clock = pytest.mark.parametrize("clock", [SystemClock()], ids=["system-clock"])


@pytest.fixture
def services(tmp_path: Path, clock: Clock) -> Iterator[Services]:
    built = build(
        make_settings(
            tmp_path / "home",
            payfast_mode="offline",
            retry_base_seconds=0.02,
            retry_factor=2,
            retry_max_attempts=MAX_ATTEMPTS,
            visibility_timeout_seconds=0.3,
        ),
        clock=clock,
    )
    yield built
    built.close()


def pay(services: Services) -> tuple[str, str]:
    """A signed COMPLETE ITN through the real intake; returns (transaction id, email)."""
    transaction_id, email = new_payment("dep")
    services.intake.receive(itn_body(transaction_id, email), "197.97.145.145")
    return transaction_id, email


def with_fault(services: Services, port: str, method: str, error: type[Exception], times: int = 1_000_000) -> Services:
    return dataclasses.replace(services, **{port: Faulty(getattr(services, port), method, error, times)})


def deliver_until_empty(services: Services, worker: ProvisioningWorker, deadline: float = 10) -> list[JobOutcome]:
    """Hands each message to the worker as it becomes visible until none is left, moving the
    clock on 5 ms whenever none is (a retry's delay), for up to `deadline` seconds of clock time."""
    clock = services.clock
    assert isinstance(clock, ManualClock)
    outcomes: list[JobOutcome] = []
    while services.queue.depth()[0] > 0:
        assert clock.advanced_seconds < deadline, outcomes
        messages = services.queue.receive(1, 30)
        if not messages:
            clock.advance(0.005)
            continue
        outcome = worker.handle(messages[0])
        assert outcome is not None
        outcomes.append(outcome)
    return outcomes


def footprint(services: Services, transaction_id: str, email: str) -> PaymentFootprint:
    return payment_footprint(services, transaction_id, email, failed_sends=False)


def newest_temporary_password(services: Services, email: str) -> str:
    match = re.search(r"Temporary password: (\S+)", services.mailer.outbox(email)[0].text)
    assert match
    return match.group(1)


# (port, method, the step that calls it): one transient fault per dependency the saga writes to.
TRANSIENT = [
    ("identity", "create_user", Step.IDENTITY_USER),
    ("tenants", "create", Step.TENANT_RECORD),
    ("users", "create", Step.USERS_RECORD),
    ("mailer", "send", Step.WELCOME_EMAIL),
]


@pytest.mark.parametrize(("port", "method", "step"), TRANSIENT, ids=lambda value: str(value))
def test_a_transient_fault_is_retried_with_growing_delays_and_the_job_succeeds(
    services: Services, port: str, method: str, step: Step
) -> None:
    transaction_id, email = pay(services)
    faulty = with_fault(services, port, method, TransientError, times=2)

    outcomes = deliver_until_empty(faulty, faulty.worker)

    assert [outcome.action for outcome in outcomes] == [NextAction.RETRY, NextAction.RETRY, NextAction.FINISHED]
    first, second = (outcome.delay_seconds for outcome in outcomes[:2])
    assert 0.01 <= first <= 0.02 < second <= 0.04  # equal jitter around a doubling ceiling
    assert f"injected fault in {method}" in (outcomes[0].job.last_error or "")
    assert all(outcome.job.completed_steps == tuple(Step)[: list(Step).index(step)] for outcome in outcomes[:2])
    job = services.journal.get(transaction_id)
    assert job is not None
    assert (job.status, job.attempts, job.last_error) == (JobStatus.SUCCEEDED, 3, None)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).finding is Finding.HEALTHY
    assert footprint(services, transaction_id, email) == EXACTLY_ONCE


# (port, method, error, the finding and RB-001 section the stores show once the job is parked).
PARKED = [
    # Fails before the tenant record (the owner check reads the identity provider first):
    # paid, no tenant record, which is 4.1 "Provisioning Lambda failed".
    ("identity", "get_user", PermanentError, Finding.PROVISIONING_FAILED, "4.1"),
    # The tenant record exists, the identity user does not: 4.2 "Cognito user creation failed".
    ("identity", "create_user", PermanentError, Finding.IDENTITY_USER_MISSING, "4.2"),
    ("identity", "create_user", TransientError, Finding.IDENTITY_USER_MISSING, "4.2"),
    # The tenant write is the first write: nothing else exists, so 4.1 (4.3's "Cognito user exists
    # but tenant record missing" cannot arise from this saga's order: the tenant comes first).
    ("tenants", "create", TransientError, Finding.PROVISIONING_FAILED, "4.1"),
    ("tenants", "create", PermanentError, Finding.PROVISIONING_FAILED, "4.1"),
    # Identity user made, owner not linked, no users record: 4.2's resolution (the users record).
    ("tenants", "set_owner", PermanentError, Finding.IDENTITY_USER_MISSING, "4.2"),
    ("users", "create", TransientError, Finding.IDENTITY_USER_MISSING, "4.2"),
    # Everything written but the activation: the tenant is stuck in 'provisioning', 4.1.
    # (The activation is the lifecycle's commit: provisioning -> active, with its event.)
    ("lifecycle", "commit", PermanentError, Finding.PROVISIONING_FAILED, "4.1"),
    # Provisioned, no welcome email: 4.4 "Welcome email not received".
    ("mailer", "send", PermanentError, Finding.WELCOME_EMAIL_MISSING, "4.4"),
    ("mailer", "send", TransientError, Finding.WELCOME_EMAIL_MISSING, "4.4"),
]


@pytest.mark.parametrize(
    ("port", "method", "error", "finding", "section"),
    PARKED,
    ids=[f"{port}.{method}-{error.__name__}" for port, method, error, _, _ in PARKED],
)
def test_a_permanent_or_exhausted_fault_parks_the_job_and_the_runbook_names_repairs_and_verifies_it(
    services: Services, port: str, method: str, error: type[Exception], finding: Finding, section: str
) -> None:
    transaction_id, email = pay(services)
    faulty = with_fault(services, port, method, error)

    outcomes = deliver_until_empty(faulty, faulty.worker)

    attempts = 1 if error is PermanentError else MAX_ATTEMPTS
    assert [outcome.action for outcome in outcomes] == [NextAction.RETRY] * (attempts - 1) + [NextAction.DEAD_LETTER]
    assert services.queue.depth() == (0, 1)
    job = services.journal.get(transaction_id)
    assert job is not None
    assert (job.status, job.attempts) == (JobStatus.DEAD_LETTERED, attempts)
    selector = Selector(transaction_id=transaction_id)
    diagnosis = services.runbook.diagnose(selector)
    assert (diagnosis.finding, diagnosis.finding.runbook_section) == (finding, section), diagnosis.summary
    assert any("dead-letter queue" in line for line in diagnosis.evidence_lines)

    result = services.runbook.repair(selector, operator="ops-test")  # the dependency is healthy again

    assert (result.outcome, result.after.finding) == ("repaired", Finding.HEALTHY)
    assert result.verification.passed
    assert services.runbook.verify(selector, password=newest_temporary_password(services, email)).passed
    assert footprint(services, transaction_id, email) == EXACTLY_ONCE


def test_a_failing_password_reset_on_a_later_run_parks_the_job_as_4_4(services: Services) -> None:
    """The run that creates the identity user emails the password it created it with; a later
    run (here a retry after the mail server said "later") sets a fresh one first, and that
    reset failing for good parks the job as RB-001 4.4."""
    transaction_id, email = pay(services)
    [first] = [with_fault(services, "mailer", "send", TransientError).worker.handle(message)
               for message in services.queue.receive(1, 30)]  # fmt: skip
    assert first is not None
    assert first.action is NextAction.RETRY
    faulty = with_fault(services, "identity", "set_password", PermanentError)

    outcomes = deliver_until_empty(faulty, faulty.worker)

    assert [outcome.action for outcome in outcomes] == [NextAction.DEAD_LETTER]
    selector = Selector(transaction_id=transaction_id)
    diagnosis = services.runbook.diagnose(selector)
    assert (diagnosis.finding, diagnosis.finding.runbook_section) == (Finding.WELCOME_EMAIL_MISSING, "4.4")
    result = services.runbook.repair(selector, operator="ops-test")
    assert (result.outcome, result.after.finding) == ("repaired", Finding.HEALTHY)
    assert services.runbook.verify(selector, password=newest_temporary_password(services, email)).passed
    assert footprint(services, transaction_id, email) == EXACTLY_ONCE


def run_worker_loop(services: Services, until: Any, timeout: float = 10) -> threading.Thread:
    """Runs `services.worker.run_until` in a thread until `until()` is true; returns the thread,
    stopped, so a test can tell whether the loop survived or died on its own."""
    stop = threading.Event()
    thread = threading.Thread(target=services.worker.run_until, args=(stop, 0.01), daemon=True)
    thread.start()
    try:
        wait_until(lambda: until() or not thread.is_alive(), timeout, "the worker loop to get there", every=0.01)
        assert thread.is_alive(), "the worker loop died"
    finally:
        stop.set()
        thread.join(timeout=5)
    return thread


def succeeded(services: Services, transaction_id: str) -> bool:
    job = services.journal.get(transaction_id)
    return job is not None and job.status is JobStatus.SUCCEEDED and services.queue.depth() == (0, 0)


@on_the_system_clock
@pytest.mark.parametrize("error", [TransientError, PermanentError, RuntimeError])
def test_a_queue_that_fails_to_receive_does_not_end_the_worker_loop(services: Services, error: type[Exception]) -> None:
    """Found by this test: anything but a TransientError from the queue used to end the loop,
    leaving a server that accepts payments and provisions none."""
    transaction_id, email = pay(services)
    faulty = with_fault(services, "queue", "receive", error, times=3)

    run_worker_loop(faulty, lambda: succeeded(services, transaction_id))

    assert footprint(services, transaction_id, email) == EXACTLY_ONCE


@on_the_system_clock
def test_a_queue_that_fails_to_delete_a_finished_message_redelivers_it_and_nothing_runs_twice(
    services: Services,
) -> None:
    transaction_id, email = pay(services)
    faulty = with_fault(services, "queue", "delete", TransientError, times=1)

    run_worker_loop(faulty, lambda: succeeded(services, transaction_id))

    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.attempts == 1  # the redelivered message found the job finished and was only deleted
    assert footprint(services, transaction_id, email) == EXACTLY_ONCE


@on_the_system_clock
def test_a_queue_that_fails_to_delay_a_retry_redelivers_the_message_and_the_job_succeeds(
    services: Services,
) -> None:
    transaction_id, email = pay(services)
    faulty = with_fault(with_fault(services, "mailer", "send", TransientError, times=1), "queue", "retry_later",
                        TransientError, times=1)  # fmt: skip

    run_worker_loop(faulty, lambda: succeeded(services, transaction_id))

    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.attempts == 2
    assert footprint(services, transaction_id, email) == EXACTLY_ONCE


@on_the_system_clock
def test_a_queue_that_fails_to_dead_letter_still_ends_with_the_message_in_the_dlq(services: Services) -> None:
    """Found by this test: the redelivered message of a job the journal already calls dead-lettered
    used to be deleted, so the job vanished from `tenancy dlq list`. It is dead-lettered again now."""
    transaction_id, email = pay(services)
    faulty = with_fault(with_fault(services, "mailer", "send", PermanentError), "queue", "dead_letter",
                        TransientError, times=1)  # fmt: skip

    run_worker_loop(faulty, lambda: services.queue.depth() == (0, 1))

    job = services.journal.get(transaction_id)
    assert job is not None
    assert (job.status, job.attempts) == (JobStatus.DEAD_LETTERED, 1)
    [parked] = services.runbook.dead_letters()
    assert parked.transaction_id == transaction_id
    selector = Selector(transaction_id=transaction_id)
    assert services.runbook.diagnose(selector).finding is Finding.WELCOME_EMAIL_MISSING
    result = services.runbook.repair(selector, operator="ops-test")
    assert (result.outcome, result.after.finding, result.verification.passed) == ("repaired", Finding.HEALTHY, True)
    assert footprint(services, transaction_id, email) == EXACTLY_ONCE
