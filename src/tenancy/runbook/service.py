"""The runbook's use cases in one place, for the CLI and the web: diagnose, repair, verify, DLQ."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from tenancy.accounts.login import AccountService
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import JobStatus, QueuedMessage, RepairRecord, UserRecord
from tenancy.lifecycle.due import LifecyclePeriods
from tenancy.ports import Clock, PurchaseObserver, RepairTrail, SubscriptionApi
from tenancy.provisioning.worker import ProvisioningWorker
from tenancy.runbook.attempts import REDRIVEN, REMOVED, attempts_before
from tenancy.runbook.dead_letters import DeadLetterDecision
from tenancy.runbook.diagnose import DEFAULT_PASSWORD_TTL, classify
from tenancy.runbook.evidence import CaseFile, EvidenceStores, Purchase, Selector, find_purchase, gather
from tenancy.runbook.findings import Advise, Diagnosis, Finding
from tenancy.runbook.passive import DeadLettersOnly
from tenancy.runbook.payfast_view import with_payfast_view
from tenancy.runbook.repair import LifecycleRepairs, RepairPlan, RepairService, plan_repair
from tenancy.runbook.rules import DEFAULT_PERIODS
from tenancy.runbook.verify import VerifyReport, verify

__all__ = ["RepairResult", "Runbook"]

log = structlog.get_logger(__name__)

# Repairs made straight to the records, without rerunning the job: its attempts stand.
_KEEPS_ATTEMPTS = frozenset({Finding.TENANT_ID_MISMATCH, Finding.SUBSCRIPTION_OUT_OF_SYNC, Finding.MEMBER_MISMATCH})


@dataclass(frozen=True, slots=True)
class RepairResult:
    plan: RepairPlan
    outcome: str  # nothing_to_do | not_repairable | dry_run | repaired | retrying | failed
    after: Diagnosis
    verification: VerifyReport

    def as_document(self, advise: Advise) -> dict[str, object]:
        """For people: `advise` words each diagnosis's next step."""
        return {
            "before": self.plan.diagnosis.as_document(advise),
            "actions": list(self.plan.actions),
            "outcome": self.outcome,
            "after": self.after.as_document(advise),
            "verify": self.verification.as_document(),
        }


class Runbook:
    """RB-001 on `stores` (the journal and the queue among them): `worker` reruns the saga for
    repairs, `trail` keeps every repair, `accounts` signs in for `verify`, `payfast` (when given)
    tells PayFast's view of the subscription of the one purchase asked about."""

    def __init__(
        self,
        *,
        stores: EvidenceStores,
        worker: ProvisioningWorker,
        trail: RepairTrail,
        accounts: AccountService,
        clock: Clock,
        password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
        observer: PurchaseObserver | None = None,
        settle: Callable[[str], object] | None = None,
        payfast: SubscriptionApi | None = None,
        lifecycle: LifecycleRepairs | None = None,
        periods: LifecyclePeriods = DEFAULT_PERIODS,
        restore_member: Callable[[UserRecord], object] | None = None,
    ) -> None:
        self._password_ttl = password_ttl
        self._periods = periods
        self._payfast = payfast
        self._observer = observer
        self._stores = stores
        self._journal = stores.journal
        self._queue = stores.queue
        self._trail = trail
        self._accounts = accounts
        self._clock = clock
        # The DLQ commands judge each message's purchase; on SQS a look at the work queue would
        # count as a delivery of every waiting job, so they judge without it (as the console does).
        self._dlq_stores = (
            dataclasses.replace(stores, queue=DeadLettersOnly(stores.queue))
            if stores.queue.listing_counts_as_delivery
            else stores
        )
        self._repairs = RepairService(
            stores=stores,
            worker=worker,
            trail=trail,
            settle=settle,
            lifecycle=lifecycle,
            restore_member=restore_member,
        )

    def case(self, selector: Selector) -> CaseFile:
        """What every store holds about the purchase, and PayFast's view of its subscription when
        this runbook can ask PayFast (one purchase at a time: never the audit's million)."""
        case = gather(find_purchase(selector, self._stores), self._stores)
        return with_payfast_view(case, self._payfast) if self._payfast is not None else case

    def diagnose(self, selector: Selector) -> Diagnosis:
        return self._classify(self.case(selector))

    def verify(self, selector: Selector, password: str | None = None) -> VerifyReport:
        return verify(
            self.case(selector),
            accounts=self._accounts,
            identity=self._stores.identity,
            now=self._clock.now(),
            password_ttl=self._password_ttl,
            password=password,
        )

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
        return self._carry_out(selector, case, plan, operator)

    def apply_unapplied(self, transaction_ids: Iterable[str], *, operator: str) -> list[RepairResult]:
        """RB-001 4.7 done for the operator (the sweep's share): each purchase that is still a
        subscription payment accepted and not applied, judged from our stores alone (PayFast is
        not asked), repaired as `tenancy repair` would and kept in the repair trail. PayFast's
        resend of an ITN answered 503 settles it first; this catches the resends that never came."""
        results = []
        for transaction_id in transaction_ids:
            selector = Selector(transaction_id=transaction_id)
            case = gather(find_purchase(selector, self._stores), self._stores)
            plan = plan_repair(self._classify(case), case)
            if plan.diagnosis.finding is Finding.RENEWAL_UNAPPLIED and plan.has_work:
                results.append(self._carry_out(selector, case, plan, operator))
        return results

    def _carry_out(self, selector: Selector, case: CaseFile, plan: RepairPlan, operator: str) -> RepairResult:
        # A repair that reruns the job starts its attempts again: the trail keeps the failed ones.
        attempts = attempts_before(
            case.job, case.messages, clears_attempts=plan.diagnosis.finding not in _KEEPS_ATTEMPTS
        )
        outcome = self._repairs.carry_out(plan, case, self._clock.now())
        self._changed(plan.diagnosis.transaction_id)
        after_selector = _follow(selector, plan)
        after = self.diagnose(after_selector)
        verification = self.verify(after_selector)
        self._repairs.record(
            plan,
            operator=operator,
            at=self._clock.now(),
            outcome=outcome,
            after={**after.as_record(), "verify_passed": verification.passed},
            attempts=attempts,
        )
        return RepairResult(plan, outcome, after, verification)

    def _classify(self, case: CaseFile) -> Diagnosis:
        now = self._clock.now()
        return classify(
            case,
            now,
            password_ttl=self._password_ttl,
            mail_statistics=self._stores.mail_statistics,
            periods=self._periods,
        )

    def dead_letters(self) -> list[QueuedMessage]:
        return self._queue.messages(dead_lettered=True)

    def redrive(self, message_id: str, *, operator: str = "unknown") -> bool:
        """Puts a dead-lettered job back on the queue with a fresh set of attempts. The journal
        is reset first: a worker that received the message before it would find the job still
        dead-lettered and park the message again. (Should the move then fail, the job waits
        queued with no message, which the stalled-job sweep heals.) The trail keeps the redrive
        with the failed attempts it wiped, for the weekly audit."""
        message = next((m for m in self._queue.messages(dead_lettered=True) if m.message_id == message_id), None)
        if message is None:
            return False
        diagnosis = self._dlq_diagnosis(message)
        job = self._journal.get(message.transaction_id) if message.transaction_id else None
        parked = job is not None and job.status is JobStatus.DEAD_LETTERED
        attempts = attempts_before(job, (message,), clears_attempts=parked)
        if job is not None and parked:
            now = format_timestamp(self._clock.now())
            self._journal.save(
                job.with_changes(status=JobStatus.QUEUED, attempts=0, next_attempt_at=None, updated_at=now, claim=None)
            )
        if not self._queue.redrive(message_id):
            return False
        self._changed(message.transaction_id)
        if diagnosis is not None:
            action = f"redrove dead-letter message {message_id} to the work queue with a fresh set of attempts"
            self._record_dead_letter_action(diagnosis, operator, action, attempts, REDRIVEN)
        return True

    def redrive_all(self, *, operator: str = "unknown") -> list[str]:
        return [
            message.message_id for message in self.dead_letters() if self.redrive(message.message_id, operator=operator)
        ]

    def judge_dead_letters(self) -> list[DeadLetterDecision]:
        """Every dead-lettered message with its purchase's diagnosis now (one per purchase)."""
        diagnoses: dict[str, Diagnosis | None] = {}
        decisions = []
        for message in self.dead_letters():
            if message.transaction_id not in diagnoses:
                diagnoses[message.transaction_id] = self._dlq_diagnosis(message)
            decisions.append(DeadLetterDecision(message, diagnoses[message.transaction_id]))
        return decisions

    def remove_dead_letter(
        self, message_id: str, *, operator: str, only_if_healed: bool = False
    ) -> DeadLetterDecision | None:
        """Deletes one dead-lettered message for good; None if no such message is in the DLQ.
        With `only_if_healed`, a message whose purchase is not healthy stays (removed=False)."""
        message = next((m for m in self.dead_letters() if m.message_id == message_id), None)
        if message is None:
            return None
        decision = DeadLetterDecision(message, self._dlq_diagnosis(message))
        if only_if_healed and not decision.healed:
            return decision
        return self._remove(decision, operator)

    def remove_healed_dead_letters(self, *, operator: str, dry_run: bool = False) -> list[DeadLetterDecision]:
        """Judges every dead-lettered message and deletes those whose purchase is healthy (with
        `dry_run`, none); each decision says whether its message went and why."""
        decisions = []
        for decision in self.judge_dead_letters():
            if decision.healed and not dry_run:
                removed = self._remove(decision, operator)
                # A message gone meanwhile (another operator removed it) is no longer ours to report.
                if removed is None:
                    continue
                decision = removed
            decisions.append(decision)
        return decisions

    def _remove(self, decision: DeadLetterDecision, operator: str) -> DeadLetterDecision | None:
        message = decision.message
        if not self._queue.remove_dead_letter(message.message_id):
            return None
        self._changed(message.transaction_id)
        log.info(
            "dead_letter_removed",
            message_id=message.message_id,
            transaction_id=message.transaction_id,
            finding=decision.diagnosis.finding.value if decision.diagnosis else None,
            operator=operator,
        )
        if decision.diagnosis is not None:
            job = self._journal.get(message.transaction_id)
            error = f" (last error: {message.last_error})" if message.last_error else ""
            action = f"removed message {message.message_id} from the dead-letter queue{error}"
            attempts = attempts_before(job, (message,), clears_attempts=False)
            self._record_dead_letter_action(decision.diagnosis, operator, action, attempts, REMOVED)
        return dataclasses.replace(decision, removed=True)

    def _changed(self, transaction_id: str | None) -> None:
        """Tells the observer (the findings index) that the purchase changed."""
        if self._observer is not None and transaction_id:
            self._observer.changed(transaction_id)

    def _dlq_diagnosis(self, message: QueuedMessage) -> Diagnosis | None:
        """The diagnosis of the message's purchase; None for a message that names none."""
        if not message.transaction_id.strip():
            return None
        case = gather(Purchase.of_transaction(message.transaction_id), self._dlq_stores)
        return self._classify(case)

    def _record_dead_letter_action(
        self, diagnosis: Diagnosis, operator: str, action: str, attempts: dict[str, object], outcome: str
    ) -> None:
        self._trail.record(
            RepairRecord(
                at=format_timestamp(self._clock.now()),
                operator=operator,
                transaction_id=diagnosis.transaction_id,
                tenant_id=diagnosis.tenant_id,
                email=diagnosis.email,
                finding=diagnosis.finding.value,
                actions=(action,),
                before={**diagnosis.as_record(), **attempts},
                after={},
                outcome=outcome,
            )
        )


def _follow(selector: Selector, plan: RepairPlan) -> Selector:
    """After a repair the transaction id is the steadiest way back to the same purchase."""
    transaction_id = plan.diagnosis.transaction_id
    return Selector(transaction_id=transaction_id) if transaction_id else selector
