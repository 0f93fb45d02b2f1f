"""The runbook's manual trigger (RB-001 4.1): provision a transaction now, without an ITN."""

from __future__ import annotations

from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import invoice_number_for, normalize_email, tenant_id_for
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.domain.plans import PlanCatalogue
from tenancy.errors import InvalidInputError
from tenancy.payments.intake import looks_like_email
from tenancy.ports import Clock, JobQueue, ProvisioningJournal
from tenancy.provisioning.worker import STALLED_AFTER, JobOutcome, NextAction, ProvisioningWorker

__all__ = ["provision_now"]

_IN_FLIGHT = {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING}


def provision_now(
    *,
    transaction_id: str,
    email: str,
    plan: str,
    name: str | None,
    plans: PlanCatalogue,
    journal: ProvisioningJournal,
    queue: JobQueue,
    worker: ProvisioningWorker,
    clock: Clock,
) -> JobOutcome:
    """Runs the saga for the transaction at once (creating its journal entry if needed), unless
    a worker has the job in hand. A transient failure is handed to the queue for retries and a
    final one to the DLQ, so nothing is lost."""
    email = normalize_email(email)
    transaction_id = transaction_id.strip()
    if not transaction_id:
        raise InvalidInputError("transaction id is empty")
    if not looks_like_email(email):
        raise InvalidInputError(f"{email!r} is not a valid email address")
    plans.get(plan)
    now = format_timestamp(clock.now())
    created = journal.create(
        ProvisioningJob(
            transaction_id=transaction_id,
            tenant_id=tenant_id_for(transaction_id),
            invoice_number=invoice_number_for(transaction_id),
            email=email,
            plan=plan,
            tenant_name=(name or "").strip() or email,
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
        )
    )
    job = journal.get(transaction_id)
    if job is None:
        raise InvalidInputError(f"transaction {transaction_id} could not be recorded")
    if job.email != email or job.plan != plan:
        raise InvalidInputError(f"transaction {transaction_id} is already recorded for {job.email} on plan {job.plan}")
    if not created and job.status in _IN_FLIGHT and parse_timestamp(job.updated_at) + STALLED_AFTER > clock.now():
        # A worker has it (or will, soon): running it here too could send a second welcome
        # email with another password. Diagnose calls it in progress for the same window.
        return JobOutcome(job, NextAction.FINISHED)
    if job.status is JobStatus.DEAD_LETTERED:
        # An operator re-running a parked job wants a fresh set of attempts.
        job = job.with_changes(status=JobStatus.QUEUED, attempts=0, updated_at=now)
        journal.save(job)
    outcome = worker.run_job(job)
    if outcome.action in {NextAction.BUSY, NextAction.SUPERSEDED}:
        return outcome  # a worker claimed it meanwhile: that run decides where it stands
    # This run decides where the job stands: an old message (a parked copy in the DLQ that
    # would keep the alarm on, or a queued one) must not run it again.
    queue.purge(transaction_id)
    if outcome.action is NextAction.RETRY:
        queue.send(transaction_id, outcome.delay_seconds)
    elif outcome.action is NextAction.DEAD_LETTER:
        queue.send_dead_letter(transaction_id, outcome.job.last_error or "failed")
    return outcome
