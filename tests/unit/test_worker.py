"""The provisioning worker on the real embedded services: queue in, journal kept true, and
retries, dead letters, redelivery after a dead worker, and several workers at once."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.model import JobStatus, OutboxMessage, OutgoingEmail, ProvisioningJob, Step
from tenancy.errors import PermanentError, TransientError
from tenancy.ports import Mailer
from tenancy.provisioning.retry import RetryPolicy
from tenancy.provisioning.worker import JobOutcome, NextAction, ProvisioningWorker

from helpers import ManualClock, journal_job, make_settings, wait_until

EMAIL = "owner@example.com"


class FlakyMailer:
    """Fails the first `failures` sends with `error`, then delegates to the real mailer."""

    def __init__(self, real: Mailer, failures: int, error: type[Exception] = TransientError) -> None:
        self._real = real
        self._remaining = failures
        self._error = error
        self.calls = 0

    def send(self, email: OutgoingEmail) -> str:
        self.calls += 1
        if self._remaining > 0:
            self._remaining -= 1
            raise self._error("451 4.3.0 mail server busy")
        return self._real.send(email)

    def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
        return self._real.outbox(to, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class WorkerDiedError(BaseException):
    """Not an Exception: like a SIGKILL, nothing in the worker gets to handle it."""


@pytest.fixture
def make_services(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    """Embedded services on a clock of their own that stands still until the test moves it on."""
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        services = build(make_settings(tmp_path / f"home{len(built)}", **overrides), clock=ManualClock())
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def _enqueue(
    services: Services,
    transaction_id: str = "TXN-500001",
    email: str = EMAIL,
    plan: str = "professional",
) -> ProvisioningJob:
    job = journal_job(services, transaction_id, email, plan)
    services.queue.send(transaction_id)
    return job


def _clock(services: Services) -> ManualClock:
    assert isinstance(services.clock, ManualClock)
    return services.clock


def _handle_until_empty(
    services: Services, worker: ProvisioningWorker, visibility: float = 30, deadline: float = 10
) -> list[JobOutcome | None]:
    """Delivers messages to `worker.handle` until the queue is empty, moving the clock on a
    second whenever nothing is visible (a retry's delay)."""
    outcomes: list[JobOutcome | None] = []
    give_up = time.monotonic() + deadline
    while services.queue.depth()[0] > 0:
        assert time.monotonic() < give_up, f"queue not drained: {outcomes}"
        messages = services.queue.receive(1, visibility)
        if not messages:
            _clock(services).advance(1)
            continue
        outcomes.append(worker.handle(messages[0]))
    return outcomes


def _hooked_worker(
    services: Services, after_step: Callable[[Step, ProvisioningJob], None], *, visibility_timeout: float
) -> ProvisioningWorker:
    """A worker whose saga calls `after_step` after each recorded step (a crash, a takeover)."""
    return ProvisioningWorker(
        queue=services.queue,
        journal=services.journal,
        saga=services.saga.with_after_step(after_step),
        retry=RetryPolicy(base_seconds=0),
        clock=services.clock,
        visibility_timeout=visibility_timeout,
    )


def _count(services: Services, table: str) -> int:
    assert services.database is not None
    return int(services.database.read(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])  # noqa: S608 - fixed names


def _with_mailer(services: Services, mailer: FlakyMailer) -> Services:
    return dataclasses.replace(services, mailer=mailer)


def test_a_valid_job_flows_from_queue_to_succeeded_and_the_message_is_deleted(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(retry_base_seconds=0, retry_max_attempts=3)
    job = _enqueue(services)
    assert services.queue.depth() == (1, 0)

    assert services.worker.poll_once() == 1

    assert services.queue.depth() == (0, 0)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.attempts == 1
    assert stored.completed_steps == tuple(Step)
    assert stored.last_error is None
    tenant = services.tenants.get(job.tenant_id)
    assert tenant is not None
    assert tenant.status.value == "active"
    assert [message.subject for message in services.mailer.outbox(to=EMAIL)] == ["Welcome to Site Builder"]
    assert services.worker.poll_once() == 0


def test_transient_failures_are_retried_with_growing_delays_then_succeed(
    make_services: Callable[..., Services],
) -> None:
    base = make_services(retry_base_seconds=0.01, retry_factor=4, retry_max_attempts=5)
    mailer = FlakyMailer(base.mailer, failures=2)
    services = _with_mailer(base, mailer)
    worker = services.worker
    job = _enqueue(services)

    [message] = services.queue.receive(1, 30)
    first = worker.handle(message)

    assert first is not None
    assert first.action is NextAction.RETRY
    retrying = services.journal.get(job.transaction_id)
    assert retrying is not None
    assert retrying.status is JobStatus.RETRYING
    assert retrying.attempts == 1
    assert retrying.last_error is not None
    assert retrying.last_error.startswith("transient:")
    assert "mail server busy" in retrying.last_error
    assert retrying.next_attempt_at is not None
    assert parse_timestamp(retrying.next_attempt_at) >= parse_timestamp(retrying.updated_at)
    assert services.queue.depth() == (1, 0)

    later = _handle_until_empty(services, worker)

    outcomes = [first, *later]
    assert [outcome.action for outcome in outcomes if outcome] == [
        NextAction.RETRY,
        NextAction.RETRY,
        NextAction.FINISHED,
    ]
    first_delay, second_delay = (outcome.delay_seconds for outcome in outcomes[:2] if outcome)
    assert 0.005 <= first_delay <= 0.01
    assert 0.02 <= second_delay <= 0.04
    assert second_delay > first_delay
    assert mailer.calls == 3
    assert services.queue.depth() == (0, 0)
    done = services.journal.get(job.transaction_id)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert done.attempts == 3
    assert done.last_error is None
    assert done.next_attempt_at is None
    assert _count(services, "tenants") == 1
    assert len(services.mailer.outbox(to=EMAIL)) == 1


def test_a_retry_keeps_the_steps_already_recorded_in_the_journal(make_services: Callable[..., Services]) -> None:
    """The saga records each step as it finishes; a later transient failure must not erase them."""
    base = make_services(retry_base_seconds=0, retry_max_attempts=5)
    services = _with_mailer(base, FlakyMailer(base.mailer, failures=1))
    job = _enqueue(services)

    services.worker.poll_once()

    retrying = services.journal.get(job.transaction_id)
    assert retrying is not None
    assert retrying.status is JobStatus.RETRYING
    identity_user = services.identity.get_user(EMAIL)
    assert identity_user is not None
    assert retrying.completed_steps == tuple(Step)[:-1]  # all but the welcome email
    assert retrying.owner_user_id == identity_user.sub


def test_a_dead_letter_keeps_the_steps_already_recorded_in_the_journal(
    make_services: Callable[..., Services],
) -> None:
    base = make_services(retry_base_seconds=0, retry_max_attempts=5)
    services = _with_mailer(base, FlakyMailer(base.mailer, failures=1, error=PermanentError))
    job = _enqueue(services)

    services.worker.poll_once()

    parked = services.journal.get(job.transaction_id)
    assert parked is not None
    assert parked.status is JobStatus.DEAD_LETTERED
    assert parked.completed_steps == tuple(Step)[:-1]


def test_transient_failures_beyond_max_attempts_dead_letter_the_job(make_services: Callable[..., Services]) -> None:
    base = make_services(retry_base_seconds=0, retry_max_attempts=3)
    mailer = FlakyMailer(base.mailer, failures=10)
    services = _with_mailer(base, mailer)
    job = _enqueue(services)

    outcomes = _handle_until_empty(services, services.worker)

    assert [outcome.action for outcome in outcomes if outcome] == [
        NextAction.RETRY,
        NextAction.RETRY,
        NextAction.DEAD_LETTER,
    ]
    assert mailer.calls == 3
    assert services.queue.depth() == (0, 1)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.DEAD_LETTERED
    assert stored.attempts == 3
    assert stored.last_error is not None
    assert stored.last_error.startswith("transient:")
    assert "after 3 attempts" in stored.last_error
    assert stored.next_attempt_at is None
    assert services.mailer.outbox() == []


def test_a_permanent_error_dead_letters_after_one_attempt(make_services: Callable[..., Services]) -> None:
    base = make_services(retry_base_seconds=0, retry_max_attempts=5)
    mailer = FlakyMailer(base.mailer, failures=1, error=PermanentError)
    services = _with_mailer(base, mailer)
    job = _enqueue(services)

    assert services.worker.poll_once() == 1

    assert mailer.calls == 1
    assert services.queue.depth() == (0, 1)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.DEAD_LETTERED
    assert stored.attempts == 1
    assert stored.last_error is not None
    assert stored.last_error.startswith("permanent:")


def test_an_unknown_plan_is_dead_lettered_after_one_attempt(make_services: Callable[..., Services]) -> None:
    services = make_services(retry_base_seconds=0, retry_max_attempts=5)
    job = _enqueue(services, plan="platinum")

    services.worker.poll_once()

    assert services.queue.depth() == (0, 1)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.DEAD_LETTERED
    assert stored.attempts == 1
    assert stored.last_error is not None
    assert "platinum" in stored.last_error
    assert services.tenants.get(job.tenant_id) is None


def test_an_unexpected_exception_is_retried_like_a_transient_one(make_services: Callable[..., Services]) -> None:
    base = make_services(retry_base_seconds=0, retry_max_attempts=5)
    mailer = FlakyMailer(base.mailer, failures=1, error=RuntimeError)
    services = _with_mailer(base, mailer)
    job = _enqueue(services)

    outcomes = _handle_until_empty(services, services.worker)

    assert [outcome.action for outcome in outcomes if outcome] == [NextAction.RETRY, NextAction.FINISHED]
    assert outcomes[0] is not None
    assert outcomes[0].job.last_error is not None
    assert outcomes[0].job.last_error.startswith("unexpected: RuntimeError")
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert services.queue.depth() == (0, 0)


def test_a_job_that_needs_review_is_finished_and_its_message_deleted(make_services: Callable[..., Services]) -> None:
    services = make_services(retry_base_seconds=0)
    first = _enqueue(services, "TXN-500001")
    services.worker.poll_once()
    second = _enqueue(services, "TXN-500002")

    services.worker.poll_once()

    assert services.queue.depth() == (0, 0)
    stored = services.journal.get(second.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.NEEDS_REVIEW
    assert stored.review_reason is not None
    assert first.tenant_id in stored.review_reason
    assert _count(services, "tenants") == 1


def test_a_job_whose_worker_died_is_redelivered_after_the_visibility_timeout(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(retry_base_seconds=0, visibility_timeout_seconds=30)
    job = _enqueue(services)

    def die_after_owner_link(step: Step, _job: ProvisioningJob) -> None:
        if step is Step.OWNER_LINK:
            raise WorkerDiedError(step.value)

    doomed = _hooked_worker(services, die_after_owner_link, visibility_timeout=30)
    with pytest.raises(WorkerDiedError):
        doomed.poll_once()
    half_done = services.journal.get(job.transaction_id)
    assert half_done is not None
    assert half_done.status is JobStatus.RUNNING
    assert half_done.completed_steps == (Step.TENANT_RECORD, Step.IDENTITY_USER, Step.OWNER_LINK)

    survivor = services.worker
    _clock(services).advance(29)
    assert survivor.poll_once() == 0  # still hidden: the dead worker's lease has not run out
    _clock(services).advance(2)
    assert survivor.poll_once() == 1

    assert services.queue.depth() == (0, 0)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.attempts == 2
    assert stored.completed_steps == tuple(Step)
    assert _count(services, "tenants") == 1
    assert _count(services, "identity_users") == 1
    assert len(services.users.find_by_email(EMAIL)) == 1
    assert len(services.mailer.outbox(to=EMAIL)) == 1


def test_a_message_received_and_never_deleted_is_finished_by_another_worker(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(retry_base_seconds=0, visibility_timeout_seconds=30)
    job = _enqueue(services)
    [taken] = services.queue.receive(1, 30)  # a worker takes it and vanishes

    assert services.worker.poll_once() == 0
    _clock(services).advance(31)
    assert services.worker.poll_once() == 1

    assert services.queue.depth() == (0, 0)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED
    assert _count(services, "tenants") == 1
    # The vanished worker's receipt is stale now and cannot touch anything.
    services.queue.dead_letter(taken.receipt, "late")
    assert services.queue.depth() == (0, 0)


def test_two_workers_on_one_queue_provision_every_job_exactly_once(make_services: Callable[..., Services]) -> None:
    services = make_services(retry_base_seconds=0)
    jobs = [_enqueue(services, f"TXN-6{n:05d}", email=f"owner{n}@example.com") for n in range(20)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(worker: ProvisioningWorker) -> None:
        try:
            worker.run_until(stop, idle_seconds=0.01)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(services.worker,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: services.queue.depth() == (0, 0), 20, "the two workers to drain the queue")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not errors
    assert services.queue.depth() == (0, 0)
    for job in jobs:
        stored = services.journal.get(job.transaction_id)
        assert stored is not None
        assert stored.status is JobStatus.SUCCEEDED, stored
        assert stored.attempts == 1
        assert services.tenants.get(job.tenant_id) is not None
    assert _count(services, "tenants") == 20
    assert _count(services, "identity_users") == 20
    assert _count(services, "users") == 20
    outbox = services.mailer.outbox(limit=1000)
    assert sorted(message.to for message in outbox) == sorted(job.email for job in jobs)


def test_a_message_without_a_journal_entry_goes_to_the_dlq(make_services: Callable[..., Services]) -> None:
    services = make_services(retry_base_seconds=0)
    services.queue.send("TXN-NOJOURNAL")

    [message] = services.queue.receive(1, 30)
    assert services.worker.handle(message) is None

    assert services.queue.depth() == (0, 1)
    assert services.journal.get("TXN-NOJOURNAL") is None
    assert _count(services, "tenants") == 0


# --- Claims: one run at a time --------------------------------------------------------------------


def test_a_job_another_run_is_working_on_is_left_alone(make_services: Callable[..., Services]) -> None:
    services = make_services(visibility_timeout_seconds=60)
    job = _enqueue(services)
    now = format_timestamp(services.clock.now())
    services.journal.save(job.with_changes(status=JobStatus.RUNNING, attempts=1, claim="other-run", updated_at=now))
    [message] = services.queue.receive(1, 60)

    outcome = services.worker.handle(message)

    assert outcome is not None
    assert outcome.action is NextAction.BUSY
    assert 55 < outcome.delay_seconds <= 60
    assert services.journal.get(job.transaction_id) == job.with_changes(
        status=JobStatus.RUNNING, attempts=1, claim="other-run", updated_at=now
    )
    assert _count(services, "tenants") == 0
    assert services.queue.depth() == (1, 0)  # the message waits to be looked at again


def test_of_two_runs_that_read_the_same_job_only_one_claims_it(make_services: Callable[..., Services]) -> None:
    services = make_services()
    job = _enqueue(services)
    read_by_both = services.journal.get(job.transaction_id)
    assert read_by_both is not None

    first = services.worker.run_job(read_by_both)
    second = services.worker.run_job(read_by_both)

    assert (first.action, second.action) == (NextAction.FINISHED, NextAction.BUSY)
    assert len(services.mailer.outbox(to=EMAIL)) == 1
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert (stored.status, stored.attempts) == (JobStatus.SUCCEEDED, 1)


def test_a_run_taken_over_stops_at_its_next_step(make_services: Callable[..., Services]) -> None:
    """A run that outlived its lease: another run (here a repair's write) took the job over
    after the first step. The old run must not carry on to the welcome email."""
    services = make_services()
    job = _enqueue(services)

    def taken_over_after_the_tenant_record(step: Step, current: ProvisioningJob) -> None:
        if step is Step.TENANT_RECORD:
            services.journal.save(current.with_changes(claim="the-new-run"))

    slow = _hooked_worker(services, taken_over_after_the_tenant_record, visibility_timeout=30)
    [message] = services.queue.receive(1, 30)
    outcome = slow.handle(message)

    assert outcome is not None
    assert outcome.action is NextAction.SUPERSEDED
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.claim == "the-new-run"
    assert stored.completed_steps == (Step.TENANT_RECORD,)
    assert services.mailer.outbox(to=EMAIL) == []
    assert services.queue.depth() == (1, 0)  # left to the run that took over, not deleted


def test_a_job_whose_run_went_quiet_longer_than_the_lease_is_claimed_again(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(visibility_timeout_seconds=60)
    job = _enqueue(services)
    quiet_since = format_timestamp(services.clock.now() - timedelta(seconds=61))
    services.journal.save(job.with_changes(status=JobStatus.RUNNING, attempts=1, claim="dead-run",
                                           updated_at=quiet_since))  # fmt: skip

    outcome = services.worker.poll_once()

    stored = services.journal.get(job.transaction_id)
    assert outcome == 1
    assert stored is not None
    assert (stored.status, stored.attempts) == (JobStatus.SUCCEEDED, 2)
    assert stored.claim not in {None, "dead-run"}


def test_a_run_taken_over_just_before_the_welcome_email_does_not_send_it(
    make_services: Callable[..., Services],
) -> None:
    services = make_services()
    job = _enqueue(services)

    def taken_over_before_the_email(step: Step, current: ProvisioningJob) -> None:
        if step is Step.ACTIVATE:
            services.journal.save(current.with_changes(claim="the-new-run"))

    slow = _hooked_worker(services, taken_over_before_the_email, visibility_timeout=30)
    outcome = slow.run_job(job)

    assert outcome.action is NextAction.SUPERSEDED
    assert services.mailer.outbox(to=EMAIL) == []


def test_a_superseded_run_that_then_fails_does_not_overwrite_the_new_runs_job(
    make_services: Callable[..., Services],
) -> None:
    services = make_services(retry_base_seconds=0)
    job = _enqueue(services)

    class TakenOverWhileSending:
        """The SMTP server hangs past the lease (a new run takes the job), then refuses."""

        def send(self, email: OutgoingEmail) -> str:
            stored = services.journal.get(job.transaction_id)
            assert stored is not None
            services.journal.save(stored.with_changes(claim="the-new-run", attempts=7))
            raise TransientError("451 try again later")

        def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
            return services.mailer.outbox(to, limit)

    outcome = _with_mailer(services, TakenOverWhileSending()).worker.run_job(job)  # type: ignore[arg-type]

    stored = services.journal.get(job.transaction_id)
    assert outcome.action is NextAction.SUPERSEDED
    assert stored is not None
    assert (stored.claim, stored.attempts, stored.status) == ("the-new-run", 7, JobStatus.RUNNING)
    assert stored.last_error is None  # the old run's failure is not written over the new run
