"""The runbook's use cases in one place, for the CLI and the web: diagnose, repair, verify, DLQ."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tenancy.accounts.login import AccountService
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import JobStatus, QueuedMessage
from tenancy.ports import Clock, JobQueue, ProvisioningJournal, RepairTrail
from tenancy.provisioning.worker import ProvisioningWorker
from tenancy.runbook.diagnose import DEFAULT_PASSWORD_TTL, classify, with_mail_statistics
from tenancy.runbook.evidence import CaseFile, EvidenceStores, Selector, gather
from tenancy.runbook.findings import Diagnosis
from tenancy.runbook.repair import RepairPlan, RepairService, plan_repair
from tenancy.runbook.verify import VerifyReport, verify

__all__ = ["RepairResult", "Runbook"]


@dataclass(frozen=True, slots=True)
class RepairResult:
    plan: RepairPlan
    outcome: str  # nothing_to_do | not_repairable | dry_run | repaired | retrying | failed
    after: Diagnosis
    verification: VerifyReport

    def as_document(self) -> dict[str, object]:
        return {
            "before": self.plan.diagnosis.as_document(),
            "actions": list(self.plan.actions),
            "outcome": self.outcome,
            "after": self.after.as_document(),
            "verify": self.verification.as_document(),
        }


class Runbook:
    def __init__(
        self,
        *,
        stores: EvidenceStores,
        journal: ProvisioningJournal,
        queue: JobQueue,
        worker: ProvisioningWorker,
        trail: RepairTrail,
        accounts: AccountService,
        clock: Clock,
        password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
    ) -> None:
        self._password_ttl = password_ttl
        self._stores = stores
        self._journal = journal
        self._queue = queue
        self._trail = trail
        self._accounts = accounts
        self._clock = clock
        self._repairs = RepairService(stores=stores, journal=journal, queue=queue, worker=worker, trail=trail)

    def case(self, selector: Selector) -> CaseFile:
        return gather(selector, self._stores)

    def diagnose(self, selector: Selector) -> Diagnosis:
        return self._classify(self.case(selector))

    def verify(self, selector: Selector, password: str | None = None) -> VerifyReport:
        return verify(self.case(selector), accounts=self._accounts, identity=self._stores.identity, password=password)

    def plan(self, selector: Selector) -> RepairPlan:
        case = self.case(selector)
        return plan_repair(self._classify(case), case)

    def repair(self, selector: Selector, *, operator: str, dry_run: bool = False) -> RepairResult:
        """Diagnoses, repairs what the finding calls for, records the audit entry, verifies."""
        case = self.case(selector)
        plan = plan_repair(self._classify(case), case)
        if dry_run or not plan.has_work:
            outcome = "dry_run" if dry_run else "nothing_to_do" if plan.diagnosis.healthy else "not_repairable"
            return RepairResult(plan, outcome, plan.diagnosis, self.verify(selector))
        outcome = self._repairs.carry_out(plan, case, self._clock.now())
        after_selector = _follow(selector, plan)
        after = self.diagnose(after_selector)
        verification = self.verify(after_selector)
        self._repairs.record(
            plan,
            operator=operator,
            at=self._clock.now(),
            outcome=outcome,
            after={**after.as_document(), "verify_passed": verification.passed},
        )
        return RepairResult(plan, outcome, after, verification)

    def _classify(self, case: CaseFile) -> Diagnosis:
        diagnosis = classify(case, self._clock.now(), password_ttl=self._password_ttl)
        detailed = with_mail_statistics(case, diagnosis, self._stores)
        if detailed is case:
            return diagnosis
        return classify(detailed, self._clock.now(), password_ttl=self._password_ttl)

    def dead_letters(self) -> list[QueuedMessage]:
        return self._queue.messages(dead_lettered=True)

    def redrive(self, message_id: str) -> bool:
        """Puts a dead-lettered job back on the queue with a fresh set of attempts. The journal
        is reset first: a worker that received the message before it would find the job still
        dead-lettered and park the message again. (Should the move then fail, the job waits
        queued with no message, which the stalled-job sweep heals.)"""
        message = next((m for m in self._queue.messages(dead_lettered=True) if m.message_id == message_id), None)
        if message is None:
            return False
        job = self._journal.get(message.transaction_id)
        if job is not None and job.status is JobStatus.DEAD_LETTERED:
            now = format_timestamp(self._clock.now())
            self._journal.save(
                job.with_changes(
                    status=JobStatus.QUEUED, attempts=0, next_attempt_at=None, updated_at=now, claim=None
                )
            )
        return self._queue.redrive(message_id)

    def redrive_all(self) -> list[str]:
        return [message.message_id for message in self.dead_letters() if self.redrive(message.message_id)]


def _follow(selector: Selector, plan: RepairPlan) -> Selector:
    """After a repair the transaction id is the steadiest way back to the same purchase."""
    transaction_id = plan.diagnosis.transaction_id
    return Selector(transaction_id=transaction_id) if transaction_id else selector
