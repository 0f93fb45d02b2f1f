"""The AWS Lambda entrypoints (deploy/template.yaml): `itn_handler` behind API Gateway and a
Function URL, `provisioning_handler` behind the SQS work queue and for RB-001 4.1's manual
`aws lambda invoke`, `audit_handler` on the weekly audit's schedule, `lifecycle_handler` on the
lifecycle's schedules (the sweep, the notices' delivery) and `pre_token_handler`, Cognito's
pre-token-generation trigger that puts the tenant's status in the ID token. They answer exactly
as the HTTP route, the worker, `tenancy audit` and `tenancy lifecycle run` do.

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

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from typing import Any

import structlog
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from tenancy.bootstrap import Services, build
from tenancy.config import Settings
from tenancy.domain.model import JobStatus, PaymentVerdict
from tenancy.errors import InvalidInputError, PermanentError, RateLimitedError, TenancyError, TransientError
from tenancy.logging_setup import configure_logging
from tenancy.payments.intake import MAX_ITN_BYTES
from tenancy.ports import TenantStore
from tenancy.provisioning.worker import JobOutcome, NextAction

__all__ = [
    "audit_handler",
    "itn_handler",
    "lifecycle_handler",
    "pre_token_handler",
    "provisioning_handler",
    "services",
    "use_services",
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
# ITN: API Gateway HTTP API (payload format 2.0) and Function URL events


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def itn_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One PayFast ITN, answered as `POST /payments/payfast/itn` answers it: 200 for accepted
    or duplicate, 400 with the failed check, 413 too large, 503 when PayFast's validate
    endpoint (or a store) is unreachable so PayFast retries."""
    http = _mapping(_mapping(event.get("requestContext")).get("http"))
    method = str(http.get("method", "POST")).upper()
    if method != "POST":
        return _refused(405, "method not allowed", {"Allow": "POST"})
    peer = str(http.get("sourceIp", ""))
    headers = {str(name).lower(): str(value) for name, value in _mapping(event.get("headers")).items()}
    forwarded_for = headers.get("x-forwarded-for")
    body = event.get("body") or ""
    if not isinstance(body, str):
        return _refused(400, "body is not text")
    try:
        # Base64 grows a body by a third: twice the limit is too large however it is encoded.
        if len(body) > 2 * MAX_ITN_BYTES:
            return _too_large(peer, forwarded_for, body[:256].encode("utf-8", errors="replace"))
        if event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                return _refused(400, "body is not valid base64")
        else:
            raw = body.encode("utf-8")
        if len(raw) > MAX_ITN_BYTES:
            return _too_large(peer, forwarded_for, raw[:256])
        record = services().intake.receive(raw, peer, forwarded_for)
    except RateLimitedError as error:
        return _refused(429, error.reason, {"Retry-After": str(error.retry_after)})
    except (TransientError, PermanentError) as error:
        # PayFast retries an ITN that is not answered 200: nothing is lost while a store is down.
        logger.warning("itn_store_unavailable", error=str(error))
        return _refused(503, "temporarily unavailable, try again", {"Retry-After": "1"})
    if record.transaction_id:
        logger.append_keys(transaction_id=record.transaction_id)
    metrics.add_metric(name=f"Itn{record.verdict.value.title()}", unit=MetricUnit.Count, value=1)
    logger.info("itn_answered", verdict=record.verdict.value, reasons=list(record.reasons))
    if record.verdict is PaymentVerdict.REJECTED:
        return _response(400, {"detail": record.reasons[0] if record.reasons else "rejected"})
    if record.verdict is PaymentVerdict.UNCONFIRMED:
        return _response(503, {"detail": "payment could not be confirmed yet"})
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain; charset=utf-8"}, "body": "OK"}


def _too_large(peer: str, forwarded_for: str | None, sample: bytes) -> dict[str, Any]:
    """As the HTTP route does: the refusal is kept in the ledger, with the start of the body."""
    services().intake.refuse_unread(peer, forwarded_for, "body too large", sample)
    return _refused(413, "body too large")


def _refused(status: int, detail: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A request refused before (or without) the intake deciding on it."""
    metrics.add_metric(name="ItnRefused", unit=MetricUnit.Count, value=1)
    logger.info("itn_refused", status=status, detail=detail)
    return _response(status, {"detail": detail}, headers)


def _response(status: int, document: dict[str, str], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(document),
    }


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
        swept = services().sweeper.sweep()
        metrics.add_metric(name="JobRequeued", unit=MetricUnit.Count, value=len(swept.requeued))
        metrics.add_metric(name="JobDeadLettered", unit=MetricUnit.Count, value=len(swept.parked))
        logger.info("sweep_done", requeued=len(swept.requeued), parked=len(swept.parked))
        return swept.as_document()
    if "Records" in event:
        # Even a batch that failed entirely is answered with its failures rather than an
        # exception: the outcome is the same for SQS, and the Errors alarm stays for crashes.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=_provision_record, processor=processor, context=context
            )
        )
    return _provision_by_hand(event)


# The weekly audit: EventBridge's schedule


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def audit_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The scheduled full audit (runbook.audit_schedule): every purchase ever made classified,
    the findings index refreshed and the run recorded; answered with the audit's totals."""
    report = services().scheduled_audit.run()
    metrics.add_metric(name="AuditFindings", unit=MetricUnit.Count, value=report.totals.findings)
    logger.info("audit_done", extra=report.totals.as_document())
    return report.totals.as_document()


# The tenant lifecycle: EventBridge's schedules, and Cognito's pre-token-generation trigger


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lifecycle_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A schedule's event: `{"job": "sweep"}` applies the lifecycle moves due now (as `tenancy
    lifecycle run`) and expires invitations past their seven days, then delivers what they owe;
    `{"job": "notices"}` only delivers pending events and emails. Answered with what was done."""
    wired = services()
    answer: dict[str, Any] = {}
    if event.get("job") == "sweep":
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
