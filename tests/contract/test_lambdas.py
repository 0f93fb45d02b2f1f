"""The Lambda handlers on moto: an ITN through API Gateway becomes an SQS message, the SQS batch
handler turns it into an active tenant with a Cognito owner and a welcome email, and RB-001 4.1's
`aws lambda invoke` payload provisions by hand."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog

from tenancy import lambdas
from tenancy.bootstrap import Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import NoticeStatus
from tenancy.domain.model import JobStatus, OutgoingEmail, Step, TenantStatus
from tenancy.errors import PermanentError, TransientError
from tenancy.logging_setup import configure_logging
from tenancy.payments.simulator import build_itn, encode_form

from aws_support import AwsContext, Backend
from helpers import journal_job, lambda_context

PAYFAST_ADDRESS = "197.97.145.145"


CONTEXT: Any = lambda_context("provisioning")


@pytest.fixture
def services(aws_backend: Backend) -> Iterator[Services]:
    """The container's services, as `lambdas.services()` builds them (PayFast offline: there is no
    PayFast here)."""
    lambdas.use_services(aws_backend.services)
    yield aws_backend.services
    lambdas.use_services(None)


def purchase(transaction_id: str | None = None, **overrides: Any) -> tuple[bytes, str, str]:
    transaction_id = transaction_id or f"TXN-{uuid.uuid4().hex[:10].upper()}"
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    values: dict[str, Any] = {
        "transaction_id": transaction_id,
        "email": email,
        "plan": "professional",
        "amount": Decimal("299.00"),
        "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
        "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
    }
    values.update(overrides)
    return encode_form(build_itn(**values)), transaction_id, email


def http_api_event(body: bytes, *, base64_body: bool, method: str = "POST") -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) request, as a Function URL sends it too."""
    return {
        "version": "2.0",
        "routeKey": "POST /payments/payfast/itn",
        "rawPath": "/payments/payfast/itn",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/x-www-form-urlencoded",
            "x-forwarded-for": PAYFAST_ADDRESS,
            "user-agent": "PayFast",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api1234567",
            "domainName": "api1234567.execute-api.eu-west-1.amazonaws.com",
            "http": {
                "method": method,
                "path": "/payments/payfast/itn",
                "protocol": "HTTP/1.1",
                "sourceIp": PAYFAST_ADDRESS,
                "userAgent": "PayFast",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "POST /payments/payfast/itn",
            "stage": "$default",
            "timeEpoch": 1_768_694_400_000,
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
    }


def receive_all(aws: AwsContext, queue_url: str) -> list[dict[str, Any]]:
    """Every visible message, each hidden for a minute once received."""
    sqs = aws.session.client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def receive_one(aws: AwsContext) -> dict[str, Any]:
    sqs = aws.session.client("sqs")
    (message,) = sqs.receive_message(
        QueueUrl=aws.resources.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])
    return message


def sqs_event(aws: AwsContext, *messages: dict[str, Any]) -> dict[str, Any]:
    """The event the SQS event source mapping hands the provisioning function."""
    queue_arn = aws.session.client("sqs").get_queue_attributes(
        QueueUrl=aws.resources.queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "eu-west-1",
            }
            for message in messages
        ]
    }


def poison(message_id: str = "poison-1") -> dict[str, Any]:
    return {"MessageId": message_id, "ReceiptHandle": "not-a-real-receipt", "Body": "this is not JSON"}


@pytest.mark.parametrize("base64_body", [True, False], ids=["base64", "plain"])
def test_a_signed_itn_through_api_gateway_is_answered_ok_and_queued(
    aws: AwsContext, services: Services, base64_body: bool
) -> None:
    body, transaction_id, _ = purchase()

    response = lambdas.itn_handler(http_api_event(body, base64_body=base64_body), CONTEXT)

    assert response["statusCode"] == 200
    assert response["body"] == "OK"
    (message,) = receive_all(aws, aws.resources.queue_url)
    assert json.loads(message["Body"])["transaction_id"] == transaction_id
    assert services.journal.get(transaction_id) is not None


def test_the_queued_job_becomes_an_active_tenant_with_a_cognito_owner_and_a_welcome_email(
    aws: AwsContext, services: Services
) -> None:
    body, transaction_id, email = purchase()
    assert lambdas.itn_handler(http_api_event(body, base64_body=True), CONTEXT)["statusCode"] == 200

    answer = lambdas.provisioning_handler(sqs_event(aws, receive_one(aws)), CONTEXT)

    assert answer == {"batchItemFailures": []}
    tenant_id = tenant_id_for(transaction_id)
    tenant = services.tenants.get(tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE
    assert tenant.plan == "professional"
    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    user = aws.session.client("cognito-idp").admin_get_user(UserPoolId=aws.resources.user_pool_id, Username=email)
    attributes = {attribute["Name"]: attribute["Value"] for attribute in user["UserAttributes"]}
    assert attributes["custom:tenant_id"] == tenant_id
    assert attributes["custom:roles"] == "tenant_admin"
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    (welcome,) = services.mailer.outbox(email)
    assert welcome.subject == "Welcome to Site Builder"
    assert welcome.status == "delivered"
    assert aws.session.client("ses").get_send_quota()["SentLast24Hours"] >= 1


def test_a_poison_record_is_reported_alone_as_a_batch_item_failure(aws: AwsContext, services: Services) -> None:
    body, transaction_id, _ = purchase()
    assert lambdas.itn_handler(http_api_event(body, base64_body=False), CONTEXT)["statusCode"] == 200

    answer = lambdas.provisioning_handler(sqs_event(aws, receive_one(aws), poison("poison-1")), CONTEXT)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED


def test_a_batch_of_only_poison_is_answered_with_its_failures_not_an_exception(
    aws: AwsContext, services: Services
) -> None:
    answer = lambdas.provisioning_handler(sqs_event(aws, poison("p-1"), poison("p-2")), CONTEXT)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "p-1"}, {"itemIdentifier": "p-2"}]}


class FailingMailer:
    """A mail service that fails every send with the given error (and keeps nothing)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def send(self, email: OutgoingEmail) -> str:
        raise self.error

    def outbox(self, to: str | None = None, limit: int = 100) -> list[Any]:
        return []

    def scan(self, batch_size: int = 1000) -> Iterator[list[Any]]:
        return iter(())


def test_a_transient_failure_is_retried_by_sqs_after_the_retry_policys_backoff(
    aws: AwsContext, services: Services
) -> None:
    body, transaction_id, _ = purchase()
    assert lambdas.itn_handler(http_api_event(body, base64_body=True), CONTEXT)["statusCode"] == 200
    slow_retries = services.settings.model_copy(update={"retry_base_seconds": 120.0, "retry_cap_seconds": 300.0})
    lambdas.use_services(
        dataclasses.replace(services, settings=slow_retries, mailer=FailingMailer(TransientError("SES throttled")))
    )
    message = receive_one(aws)

    answer = lambdas.provisioning_handler(sqs_event(aws, message), CONTEXT)

    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.RETRYING
    assert "SES throttled" in (job.last_error or "")
    # The message stays in the queue (SQS redelivers it) but hidden for the backoff delay.
    sqs = aws.session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=aws.resources.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert sqs.receive_message(QueueUrl=aws.resources.queue_url).get("Messages", []) == []


def test_a_permanent_failure_is_parked_in_the_dlq_and_not_redelivered(aws: AwsContext, services: Services) -> None:
    body, transaction_id, _ = purchase()
    assert lambdas.itn_handler(http_api_event(body, base64_body=True), CONTEXT)["statusCode"] == 200
    lambdas.use_services(dataclasses.replace(services, mailer=FailingMailer(PermanentError("address rejected"))))

    answer = lambdas.provisioning_handler(sqs_event(aws, receive_one(aws)), CONTEXT)

    assert answer == {"batchItemFailures": []}
    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.DEAD_LETTERED
    assert [message.transaction_id for message in services.queue.messages(dead_lettered=True)] == [transaction_id]


def test_rb001_manual_invocation_provisions_and_answers_with_the_job(aws: AwsContext, services: Services) -> None:
    payload = {"transactionId": "TXN-123456", "email": "user@example.com", "plan": "professional"}

    answer = lambdas.provisioning_handler(payload, CONTEXT)
    again = lambdas.provisioning_handler(payload, CONTEXT)

    assert answer["transaction_id"] == "TXN-123456"
    assert answer["tenant_id"] == tenant_id_for("TXN-123456")
    assert answer["status"] == "succeeded"
    assert answer["completed_steps"] == [step.value for step in Step]
    assert again["tenant_id"] == answer["tenant_id"]
    assert again["status"] == "succeeded"
    json.dumps(answer)  # `aws lambda invoke` writes it to response.json
    tenant = services.tenants.get(answer["tenant_id"])
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE
    assert len(services.mailer.outbox("user@example.com")) == 1


def test_a_bad_manual_payload_is_answered_with_what_is_wrong(services: Services) -> None:
    missing = lambdas.provisioning_handler({"transactionId": "TXN-1"}, CONTEXT)
    bad_email = lambdas.provisioning_handler(
        {"transactionId": "TXN-1", "email": "not-an-email", "plan": "professional"}, CONTEXT
    )

    assert "transactionId" in missing["error"]
    assert "not a valid email" in bad_email["error"]


def test_a_forged_itn_is_refused_with_400_and_nothing_is_queued(aws: AwsContext, services: Services) -> None:
    body, transaction_id, _ = purchase()
    forged = body.replace(b"amount_gross=299.00", b"amount_gross=1.00")

    response = lambdas.itn_handler(http_api_event(forged, base64_body=True), CONTEXT)

    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"detail": "signature mismatch"}
    assert receive_all(aws, aws.resources.queue_url) == []
    assert services.journal.get(transaction_id) is None
    (kept,) = services.ledger.find(transaction_id=transaction_id)
    assert kept.verdict.value == "rejected"


def test_oversized_bad_base64_and_non_post_requests_are_refused(services: Services) -> None:
    too_large = lambdas.itn_handler(http_api_event(b"a=" + b"x" * 20_000, base64_body=True), CONTEXT)
    not_base64 = lambdas.itn_handler({**http_api_event(b"a=b", base64_body=True), "body": "%%%"}, CONTEXT)
    a_get = lambdas.itn_handler(http_api_event(b"", base64_body=False, method="GET"), CONTEXT)

    assert too_large["statusCode"] == 413
    assert not_base64["statusCode"] == 400
    assert a_get["statusCode"] == 405
    # As the HTTP route does (it is the same app), the oversized body is kept in the ledger as a
    # rejection, and so is the body that decodes to nothing (base64 read as API Gateway's is).
    kept = [entry for batch in services.ledger.scan() for entry in batch]
    assert sorted((entry.verdict.value, entry.reasons, entry.source_ip) for entry in kept) == [
        ("rejected", ("body is empty",), PAYFAST_ADDRESS),
        ("rejected", ("body too large",), PAYFAST_ADDRESS),
    ]


def test_the_container_builds_its_services_from_the_environment_once(
    aws: AwsContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name, value in aws.resources.as_settings().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENANCY_HOME", str(tmp_path / "lambda-home"))
    saved = structlog.get_config()

    def configure_logging_uncached(level: str) -> None:
        # The real configuration, minus logger caching: a logger cached here would keep this
        # test's processors for the rest of the session.
        configure_logging(level)
        structlog.configure(cache_logger_on_first_use=False)

    monkeypatch.setattr(lambdas, "configure_logging", configure_logging_uncached)
    lambdas.use_services(None)
    try:
        answer = lambdas.provisioning_handler(
            {"transactionId": "TXN-ENV-1", "email": "env@example.com", "plan": "starter"}, CONTEXT
        )
        first = lambdas.services()

        assert answer["status"] == "succeeded"
        assert lambdas.services() is first
        assert first.settings.queue_url == aws.resources.queue_url
    finally:
        lambdas.services().close()
        lambdas.use_services(None)
        structlog.configure(**saved)


SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-27T12:00:00Z",
    "region": "eu-west-1",
    "resources": ["arn:aws:events:eu-west-1:123456789012:rule/site-builder-dev-sweep"],
    "detail": {},
}


def test_the_scheduled_sweep_requeues_a_job_whose_queue_send_failed(aws: AwsContext, services: Services) -> None:
    # The journal has the job; its SQS message was never sent (the send failed after the write).
    stamp = format_timestamp(services.clock.now() - timedelta(minutes=20))
    job = journal_job(services, "TXN-LOST01", "lost@example.com")
    services.journal.save(job.with_changes(created_at=stamp, updated_at=stamp))

    answer = lambdas.provisioning_handler(SCHEDULED_EVENT, CONTEXT)
    again = lambdas.provisioning_handler(SCHEDULED_EVENT, CONTEXT)
    batch = lambdas.provisioning_handler(sqs_event(aws, receive_one(aws)), CONTEXT)

    assert answer == {"requeued": ["TXN-LOST01"], "parked": [], "cleared": [], "settled": []}
    assert again == {"requeued": [], "parked": [], "cleared": [], "settled": []}
    assert batch == {"batchItemFailures": []}
    assert services.journal.get("TXN-LOST01").status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


def test_a_job_another_run_holds_is_reported_back_not_run_and_not_deleted(aws: AwsContext, services: Services) -> None:
    body, transaction_id, email = purchase()
    assert lambdas.itn_handler(http_api_event(body, base64_body=False), CONTEXT)["statusCode"] == 200
    job = services.journal.get(transaction_id)
    assert job is not None
    held = job.with_changes(status=JobStatus.RUNNING, attempts=1, claim="another-instance",
                            updated_at=format_timestamp(services.clock.now()))  # fmt: skip
    services.journal.save(held)
    message = receive_one(aws)

    answer = lambdas.provisioning_handler(sqs_event(aws, message), CONTEXT)

    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert services.journal.get(transaction_id) == held
    assert services.mailer.outbox(email) == []


def test_the_itn_and_the_worker_keep_the_findings_index_and_the_weekly_audit_reconciles_it(
    aws: AwsContext, services: Services
) -> None:
    body, transaction_id, email = purchase()
    assert lambdas.itn_handler(http_api_event(body, base64_body=False), CONTEXT)["statusCode"] == 200
    paid = services.findings_index.get(transaction_id)
    assert paid is not None
    assert (paid.finding, paid.job_status) == ("in_progress", "queued")
    assert lambdas.provisioning_handler(sqs_event(aws, receive_one(aws)), CONTEXT) == {"batchItemFailures": []}
    assert services.findings_index.count_by_finding() == {"healthy": 1}
    # Deleted in the Cognito console: no function hears of it; the weekly audit finds it.
    aws.session.client("cognito-idp").admin_delete_user(UserPoolId=aws.resources.user_pool_id, Username=email)

    totals = lambdas.audit_handler({**SCHEDULED_EVENT, "resources": ["arn:aws:events:rule/site-builder-dev-audit"]},
                                   CONTEXT)  # fmt: skip

    assert (totals["transactions"], totals["healthy"], totals["findings"]) == (1, 0, 1)
    assert services.findings_index.count_by_finding() == {"identity_user_missing": 1}
    run = services.findings_index.last_audit()
    assert run is not None
    assert (run.trigger, run.purchases, run.findings) == ("schedule", 1, 1)


def test_renewals_and_a_cancellation_through_the_itn_function_never_queue_a_second_job(
    aws: AwsContext, services: Services
) -> None:
    token = "5f0e2b7a-8c1d-4e3f-9a6b-0c1d2e3f4a5b"
    first, transaction_id, email = purchase(token=token, billing_date="2026-12-06", pf_payment_id="6100000001")
    assert lambdas.itn_handler(http_api_event(first, base64_body=True), CONTEXT)["statusCode"] == 200
    assert lambdas.provisioning_handler(sqs_event(aws, receive_one(aws)), CONTEXT) == {"batchItemFailures": []}

    for pf_payment_id, status in (("6100000002", "COMPLETE"), ("6100000003", "CANCELLED")):
        body, _, _ = purchase(
            transaction_id, email=email, token=token, billing_date="2026-12-06", pf_payment_id=pf_payment_id,
            status=status,
        )  # fmt: skip
        assert lambdas.itn_handler(http_api_event(body, base64_body=True), CONTEXT)["statusCode"] == 200

    assert receive_all(aws, aws.resources.queue_url) == []  # no second provisioning job
    subscription = services.subscriptions.get(tenant_id_for(transaction_id))
    assert subscription is not None
    assert subscription.periods_paid == 2
    assert subscription.status.value == "cancelling"
    tenant = services.tenants.get(tenant_id_for(transaction_id))
    assert tenant is not None
    assert tenant.status is TenantStatus.CANCELLING


def provisioned(aws: AwsContext) -> tuple[str, str]:
    """A once-off purchase through the ITN and provisioning functions: (transaction id, email)."""
    body, transaction_id, email = purchase()
    assert lambdas.itn_handler(http_api_event(body, base64_body=True), CONTEXT)["statusCode"] == 200
    assert lambdas.provisioning_handler(sqs_event(aws, receive_one(aws)), CONTEXT) == {"batchItemFailures": []}
    return transaction_id, email


def test_the_lifecycle_schedule_delivers_the_events_moves_queued(aws: AwsContext, services: Services) -> None:
    provisioned(aws)  # its activation queued tenant.activated
    [pending] = services.lifecycle.notices(NoticeStatus.PENDING)

    answer = lambdas.lifecycle_handler({**SCHEDULED_EVENT, "job": "notices"}, CONTEXT)
    swept = lambdas.lifecycle_handler({**SCHEDULED_EVENT, "job": "sweep"}, CONTEXT)

    assert answer == {"delivered": 1, "retrying": 0, "dead": 0}
    assert swept == {"moved": 0, "skipped": 0, "delivered": 0, "retrying": 0, "dead": 0}
    delivered = services.lifecycle.get_notice(pending.notice_id)
    assert delivered is not None
    assert delivered.status is NoticeStatus.DELIVERED


def test_the_pre_token_trigger_puts_the_tenants_status_in_the_id_token(aws: AwsContext, services: Services) -> None:
    transaction_id, email = provisioned(aws)
    event = {
        "triggerSource": "TokenGeneration_Authentication",
        "userName": email,
        "request": {"userAttributes": {"email": email, "custom:tenant_id": tenant_id_for(transaction_id)}},
        "response": {"claimsOverrideDetails": None},
    }
    operator = {"request": {"userAttributes": {"email": "ops@example.com"}}, "response": {}}

    answered = lambdas.pre_token_handler(event, CONTEXT)

    assert answered["response"]["claimsOverrideDetails"] == {
        "claimsToAddOrOverride": {"custom:tenant_status": "active"}
    }
    assert lambdas.pre_token_handler(operator, CONTEXT)["response"] == {}
