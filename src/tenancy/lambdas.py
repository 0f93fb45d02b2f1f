"""The AWS Lambda entrypoints (deploy/template.yaml): `web_handler`, the whole HTTP app of `make
run` behind the HTTP API, and `itn_handler`, its ITN route alone, behind API Gateway and a
Function URL (both through Mangum: one app, one route code), `provisioning_handler` behind the
SQS work queue and for RB-001 4.1's manual `aws lambda invoke`, `audit_handler` on the weekly
audit's schedule, `lifecycle_handler` on the lifecycle's schedules (the sweep, the notices'
delivery), `alert_watch_handler` on the alert watcher's, and `pre_token_handler`, Cognito's
pre-token-generation trigger that puts the tenant's status in the ID token. They answer exactly
as the HTTP route, the worker, `tenancy audit`, `tenancy lifecycle run` and `tenancy alerts
watch` do. SCHEDULED_JOBS names every periodic job of the embedded worker and the EventBridge
rule that runs it here.

Retries on SQS: a job the worker wants retried is reported as a batch item failure, so the
event source mapping leaves it in the queue and the RedrivePolicy stays the backstop that
parks it in the DLQ. Before reporting it, the handler sets the message's visibility to the
retry policy's backoff delay (ChangeMessageVisibility with the record's receipt handle, the
queue port's `retry_later`), so retries back off exponentially instead of every
QUEUE_VISIBILITY_TIMEOUT; if that call fails, the queue's visibility timeout is the delay.
The job's attempts are counted in the journal, so the worker's own policy dead-letters a
job (`send_dead_letter`, reported as a success) long before SQS's MAX_RECEIVE_COUNT would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenancy.bootstrap import Services, build
from tenancy.config import Settings
from tenancy.domain.model import JobStatus
from tenancy.errors import InvalidInputError, TenancyError
from tenancy.logging_setup import configure_logging
from tenancy.ports import TenantStore
from tenancy.provisioning.worker import JobOutcome, NextAction

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from mangum import Mangum

__all__ = [
    "SCHEDULED_JOBS",
    "ScheduledJob",
    "alert_watch_handler",
    "audit_handler",
    "itn_handler",
    "lifecycle_handler",
    "pre_token_handler",
    "provisioning_handler",
    "services",
    "use_services",
    "web_handler",
]

# Powertools' logger and metrics only read environment variables when built: no I/O here.
# Their lines go to stdout, the project's own structlog lines to stderr; Lambda sends both
# to the function's log group.
logger = Logger(service="tenancy")
metrics = Metrics(namespace="Tenancy", service="tenancy")

_services: Services | None = None
_services_lock = threading.Lock()


def services() -> Services:
    """This container's services, built from the environment on the first call and kept for
    every later invocation (boto3 clients and the plan catalogue are worth reusing)."""
    global _services
    if _services is None:
        with _services_lock:
            if _services is None:
                settings = Settings()
                # No log directory: a function's filesystem is read-only, and Lambda ships stderr.
                configure_logging(settings.log_level)
                _services = build(settings)
    return _services


def use_services(replacement: Services | None) -> None:
    """Makes the handlers use `replacement` (tests, or a host that wires its own); None
    forgets the current services so the next invocation builds them from the environment."""
    global _services
    with _services_lock:
        _services = replacement


# ---------------------------------------------------------------------------------------------
# HTTP: the app of `make run`, behind the HTTP API and the ITN function's URL


@dataclass
class _HttpApp:
    """The FastAPI app over this container's services, in Mangum (the adapter made for ASGI apps
    on Lambda: HTTP API and Function URL events, cookies, base64 bodies), built on first use and
    kept while the services are. No lifespan: nothing runs in the background in a Lambda; the
    periodic jobs are schedules of their own (SCHEDULED_JOBS)."""

    itn_only: bool
    _built: tuple[Services, Mangum] | None = None

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        current = services()
        if self._built is None or self._built[0] is not current:
            # Imported here: the SQS and schedule functions never pay for the web app's imports.
            from mangum import Mangum

            from tenancy.web.app import create_app

            self._built = current, Mangum(create_app(current, itn_only=self.itn_only), lifespan="off")
        # Powertools' and Mangum's LambdaContext types describe the same runtime object.
        answer: dict[str, Any] = self._built[1](event, context)  # type: ignore[arg-type]
        return answer


_web_app = _HttpApp(itn_only=False)
_itn_app = _HttpApp(itn_only=True)


# No Powertools metrics here: the app's own are Prometheus's (`/metrics`), and the functions'
# Errors and Duration are CloudWatch's.
@logger.inject_lambda_context(clear_state=True)
def web_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Every route of the app, as `tenancy serve` answers it: sign-in, `/tenants/me`, the pages and
    static files, the console, the service API, checkout and billing, and the ITN. API Gateway's
    own `sourceIp` is the client address; `X-Forwarded-For` counts only from
    TENANCY_TRUSTED_PROXIES, as behind any proxy."""
    return _web_app(event, context)


@logger.inject_lambda_context(clear_state=True)
def itn_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """PayFast's ITNs, through the same app and the same route code (`POST /payments/payfast/itn`:
    200, 400 with the failed check, 413, 429, 503), in a function of its own: RB-001 reads its log
    group (`site-builder-{env}-itn-handler`), its alarms are the payments' alone, and its Function
    URL and IAM policy serve that one route (any other path is 404)."""
    return _itn_app(event, context)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------------------------------------
# Provisioning: SQS batches, and RB-001 4.1's direct invocation


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def provisioning_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """An SQS batch (answered with `batchItemFailures`), RB-001 4.1's payload
    `{"transactionId": ..., "email": ..., "plan": ...}` (answered with the job's state), or the
    schedule's event (the sweep for stalled jobs, answered with the ones put back on the queue)."""
    if event.get("detail-type") == "Scheduled Event":
        return _run_scheduled(STALLED_JOB_SWEEP, _sweep_stalled_jobs)
    if "Records" in event:
        # Even a batch that failed entirely is answered with its failures rather than an
        # exception: the outcome is the same for SQS, and the Errors alarm stays for crashes.
        # Imported here: the web and schedule functions never pay for powertools' batch imports.
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=_provision_record, processor=processor, context=context
            )
        )
    return _provision_by_hand(event)


# ---------------------------------------------------------------------------------------------
# Schedules: the embedded worker's periodic jobs (tenancy.background), each on an EventBridge rule


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """One of the embedded worker's periodic jobs as AWS runs it (deploy/template.yaml): the rule
    `site-builder-{env}-{name}` invokes `handler` with `rule_input` (EventBridge then sends that
    Input instead of the scheduled event) or, without one, with the scheduled event itself.

    A run that fails as a background round fails (a TenancyError: a store, SES or PayFast out of
    reach) is logged and counted as `failure_metric`, which the job's own alarm watches, and the
    next run tries again, as `background.run_every` does; anything else is a crash, raised for
    the function's Errors alarm (as the SQS batches leave it for crashes)."""

    name: str
    handler: str
    failure_metric: str
    rule_input: Mapping[str, str] | None = None


STALLED_JOB_SWEEP = ScheduledJob("stalled-job-sweep", "provisioning_handler", "StalledJobSweepFailed")
LIFECYCLE_SWEEP = ScheduledJob("lifecycle-sweep", "lifecycle_handler", "LifecycleSweepFailed", {"job": "sweep"})
NOTICE_DELIVERY = ScheduledJob("lifecycle-notices", "lifecycle_handler", "NoticeDeliveryFailed", {"job": "notices"})
WEEKLY_AUDIT = ScheduledJob("weekly-audit", "audit_handler", "WeeklyAuditFailed")
ALERT_WATCH = ScheduledJob("alert-watch", "alert_watch_handler", "AlertWatchFailed")
SCHEDULED_JOBS = (STALLED_JOB_SWEEP, LIFECYCLE_SWEEP, NOTICE_DELIVERY, WEEKLY_AUDIT, ALERT_WATCH)


def _run_scheduled(job: ScheduledJob, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run`, answered with what it did, or with why it failed (see ScheduledJob)."""
    logger.append_keys(scheduled_job=job.name)
    try:
        return run()
    except TenancyError as error:
        _scheduled_job_failed(job, str(error))
        return {"failed": str(error)}


def _scheduled_job_failed(job: ScheduledJob, error: str) -> None:
    metrics.add_metric(name=job.failure_metric, unit=MetricUnit.Count, value=1)
    logger.error("scheduled_job_failed", error=error)


def _sweep_stalled_jobs() -> dict[str, Any]:
    swept = services().sweep()
    metrics.add_metric(name="JobRequeued", unit=MetricUnit.Count, value=len(swept.requeued))
    metrics.add_metric(name="JobDeadLettered", unit=MetricUnit.Count, value=len(swept.parked))
    metrics.add_metric(name="DeadLetterCleared", unit=MetricUnit.Count, value=len(swept.cleared))
    metrics.add_metric(name="SubscriptionPaymentApplied", unit=MetricUnit.Count, value=len(swept.settled))
    logger.info(
        "sweep_done",
        requeued=len(swept.requeued),
        parked=len(swept.parked),
        cleared=len(swept.cleared),
        settled=len(swept.settled),
    )
    return dict(swept.as_document())


# The weekly audit


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def audit_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The scheduled full audit (runbook.audit_schedule): every purchase ever made classified,
    the findings index refreshed and the run recorded; answered with the audit's totals."""

    def audit() -> dict[str, Any]:
        report = services().scheduled_audit.run()
        metrics.add_metric(name="AuditFindings", unit=MetricUnit.Count, value=report.totals.findings)
        logger.info("audit_done", extra=report.totals.as_document())
        return dict(report.totals.as_document())

    return _run_scheduled(WEEKLY_AUDIT, audit)


# The tenant lifecycle: its sweep and the delivery of its notices; Cognito's pre-token trigger


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lifecycle_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A schedule's event: `{"job": "sweep"}` applies the lifecycle moves due now (as `tenancy
    lifecycle run`) and expires invitations past their seven days, then delivers what they owe;
    `{"job": "notices"}` only delivers pending events and emails. Answered with what was done."""
    sweep = event.get("job") == "sweep"

    def run() -> dict[str, Any]:
        wired = services()
        answer: dict[str, Any] = {}
        if sweep:
            report = wired.lifecycle_sweep.run(wired.clock.now())
            metrics.add_metric(name="LifecycleMoves", unit=MetricUnit.Count, value=len(report.applied))
            for move in report.applied:
                if move.to_status.value == "suspended":
                    metrics.add_metric(name="TenantSuspended", unit=MetricUnit.Count, value=1)
            answer |= {"moved": len(report.applied), "skipped": len(report.skipped)}
            # Invitations past their seven days give their seats back (a metric, the answer unchanged).
            expired = wired.team.expire_due()
            metrics.add_metric(name="InvitationExpired", unit=MetricUnit.Count, value=expired)
        delivered = wired.notices.deliver_due()
        metrics.add_metric(name="NoticeDead", unit=MetricUnit.Count, value=delivered.dead)
        answer |= {"delivered": delivered.delivered, "retrying": delivered.retrying, "dead": delivered.dead}
        logger.info("lifecycle_done", extra=answer)
        return answer

    return _run_scheduled(LIFECYCLE_SWEEP if sweep else NOTICE_DELIVERY, run)


# The alert watcher


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def alert_watch_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One tick of the alert watcher (`tenancy alerts watch`, the thread of `tenancy serve`):
    every rule evaluated, and each one that started or stopped firing notified through
    TENANCY_ALERT_ROUTES. Answered with those transitions and their deliveries.

    The rules firing are remembered by the container, as the embedded watcher remembers them in
    its process: a rule that keeps firing is told once, and again only by a new container (as by
    a restarted `tenancy serve`). Rules that could not be read, and each alert a destination did
    not get, count as the job's failure: its alarm tells the alarm topic instead."""
    logger.append_keys(scheduled_job=ALERT_WATCH.name)
    outcome = _container_alert_watch().tick()
    metrics.add_metric(name="AlertTransitions", unit=MetricUnit.Count, value=len(outcome.started + outcome.resolved))
    if outcome.failed is not None:
        _scheduled_job_failed(ALERT_WATCH, outcome.failed)
    for delivery in outcome.undelivered():
        _scheduled_job_failed(
            ALERT_WATCH, f"{delivery['rule']} not told to {delivery['destination']}: {delivery['error']}"
        )
    answer = outcome.as_document()
    logger.info("alert_watch_done", extra=answer)
    return answer


@dataclass(slots=True)
class _AlertTick:
    """What one tick of the watcher did."""

    started: list[str]
    resolved: list[str]
    deliveries: list[dict[str, object]]
    failed: str | None = None

    def undelivered(self) -> list[dict[str, object]]:
        """The deliveries a destination failed (Slack down, PagerDuty's key not configured...)."""
        return [delivery for delivery in self.deliveries if not delivery["delivered"]]

    def as_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"started": self.started, "resolved": self.resolved, "deliveries": self.deliveries}
        return document if self.failed is None else {**document, "failed": self.failed}


class _ContainerAlertWatch:
    """The container's alert watcher over the services it was built on (`use_services` with other
    services gets a new one, remembering nothing)."""

    def __init__(self, wired: Services) -> None:
        from tenancy.runbook.alert_watcher import AlertWatcher
        from tenancy.runbook.alerts import AlertReport, AlertTransition, Delivery

        self.services = wired
        self._tick = _AlertTick([], [], [])

        def told(report: AlertReport, transition: AlertTransition, deliveries: list[Delivery]) -> None:
            (self._tick.resolved if transition.resolved else self._tick.started).append(transition.result.rule)
            self._tick.deliveries.extend(delivery.as_document() for delivery in deliveries)

        def failed(error: Exception) -> None:
            self._tick.failed = f"{type(error).__name__}: {error}"

        self._watcher = AlertWatcher(wired.alert_monitor, wired.alert_dispatcher, on_transition=told, on_failure=failed)

    def tick(self) -> _AlertTick:
        self._tick = _AlertTick([], [], [])
        self._watcher.tick()
        return self._tick


_alert_watch: _ContainerAlertWatch | None = None


def _container_alert_watch() -> _ContainerAlertWatch:
    global _alert_watch
    current = services()
    if _alert_watch is None or _alert_watch.services is not current:
        _alert_watch = _ContainerAlertWatch(current)
    return _alert_watch


def pre_token_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Cognito's pre-token-generation trigger: adds `custom:tenant_status` (the tenant's status
    when the token is issued) to the ID token, as the embedded provider does. A user without a
    tenant (an operator) gets no claim; a failure to read the tenant fails the sign-in rather
    than issue a token that claims a status it does not know."""
    attributes = _mapping(_mapping(event.get("request")).get("userAttributes"))
    tenant_id = attributes.get("custom:tenant_id")
    if isinstance(tenant_id, str) and tenant_id:
        tenant = _tenants().get(tenant_id)
        if tenant is not None:
            event.setdefault("response", {})["claimsOverrideDetails"] = {
                "claimsToAddOrOverride": {"custom:tenant_status": tenant.status.value}
            }
    return event


_tenant_store: TenantStore | None = None


def _tenants() -> TenantStore:
    """The tenants table alone: the trigger runs inside the user pool's sign-in, so it reads one
    item and needs nothing else (and cannot be given the pool's own id: see deploy/template.yaml).
    The services `use_services` set, when a test or host set them."""
    global _tenant_store
    if _services is not None:
        return _services.tenants
    if _tenant_store is None:
        import boto3

        from tenancy.adapters.aws.dynamodb import DynamoTenantStore

        settings = Settings()
        _tenant_store = DynamoTenantStore(
            boto3.client("dynamodb", region_name=settings.aws_region), settings.tenants_table
        )
    return _tenant_store


class _RecordFailedError(TenancyError):
    """A queue record to be delivered again (reported as a batch item failure)."""


def _provision_record(record: SQSRecord) -> None:
    transaction_id = _transaction_id_of(record.body)
    logger.append_keys(transaction_id=transaction_id)
    with structlog.contextvars.bound_contextvars(transaction_id=transaction_id):
        try:
            _provision_message(transaction_id, record)
        finally:
            logger.remove_keys(["transaction_id"])


def _provision_message(transaction_id: str, record: SQSRecord) -> None:
    current = services()
    job = current.journal.get(transaction_id)
    if job is None:
        # As the worker does: a message without a journal entry can never succeed.
        current.queue.send_dead_letter(transaction_id, "no provisioning journal entry for this transaction")
        metrics.add_metric(name="JobDeadLettered", unit=MetricUnit.Count, value=1)
        logger.error("job_missing")
        return
    outcome = current.worker.run_job(job)
    _count(outcome)
    if outcome.action is NextAction.SUPERSEDED:
        # Another run took the job over and holds this message's newer receipt: report a
        # failure so the message is not deleted under it; when it comes back, the job is done.
        raise _RecordFailedError(f"{transaction_id}: taken over by another run")
    # A job already dead-lettered comes back only when its move to the DLQ failed: park it
    # again rather than let the message vanish (as the worker does).
    parked = outcome.job.status is JobStatus.DEAD_LETTERED
    if outcome.action is NextAction.FINISHED and not parked:
        return
    if outcome.action is NextAction.DEAD_LETTER or parked:
        current.queue.send_dead_letter(transaction_id, outcome.job.last_error or "failed")
        return
    try:
        current.queue.retry_later(record.receipt_handle, outcome.delay_seconds)
    except TenancyError as error:
        logger.warning("retry_delay_not_set", error=str(error), delay_seconds=outcome.delay_seconds)
    raise _RecordFailedError(f"{transaction_id}: retry in {outcome.delay_seconds:.1f}s: {outcome.job.last_error}")


def _transaction_id_of(body: str) -> str:
    """The transaction id in a work-queue message body (`{"transaction_id": "TXN-..."}`)."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    transaction_id = document.get("transaction_id") if isinstance(document, dict) else None
    if not isinstance(transaction_id, str) or not transaction_id.strip():
        # Left to SQS: redelivered until the RedrivePolicy parks it in the DLQ for a human.
        metrics.add_metric(name="RecordUnreadable", unit=MetricUnit.Count, value=1)
        logger.error("record_unreadable", body=body[:200])
        raise _RecordFailedError('the message body is not {"transaction_id": ...}')
    return transaction_id.strip()


def _count(outcome: JobOutcome) -> None:
    name = {
        NextAction.FINISHED: "JobFinished",
        NextAction.RETRY: "JobRetried",
        NextAction.DEAD_LETTER: "JobDeadLettered",
        NextAction.BUSY: "JobBusy",
        NextAction.SUPERSEDED: "JobSuperseded",
    }[outcome.action]
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("job_outcome", action=outcome.action.value, status=outcome.job.status.value)


def _provision_by_hand(event: Mapping[str, Any]) -> dict[str, Any]:
    """RB-001 4.1's manual trigger; a bad payload is answered, not raised (an operator's typo is
    no function error)."""
    fields = [event.get(key) for key in ("transactionId", "email", "plan")]
    if not all(isinstance(value, str) and value.strip() for value in fields):
        metrics.add_metric(name="ManualRefused", unit=MetricUnit.Count, value=1)
        return {"error": 'the payload must be {"transactionId":"TXN-...","email":"...","plan":"..."}'}
    transaction_id, email, plan = (str(value) for value in fields)
    name = event.get("name")
    logger.append_keys(transaction_id=transaction_id.strip())
    current = services()
    with structlog.contextvars.bound_contextvars(transaction_id=transaction_id.strip()):
        try:
            outcome = current.provision_now(transaction_id, email, plan, name if isinstance(name, str) else None)
        except InvalidInputError as error:
            metrics.add_metric(name="ManualRefused", unit=MetricUnit.Count, value=1)
            logger.warning("manual_provisioning_refused", error=str(error))
            return {"error": str(error)}
    _count(outcome)
    return outcome.as_document()
