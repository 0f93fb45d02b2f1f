"""Every schedule of the AWS deployment (tenancy.lambdas.SCHEDULED_JOBS, the embedded worker's
periodic jobs) on moto: each handler invoked with exactly what its EventBridge rule sends it (the
documented scheduled event, or the rule's Input where it has one) does what the embedded loop
does, and a run that fails counts the metric its alarm watches (tests/unit/test_sam_template.py
checks the rules and the alarms)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from lifecycle_support import Subscriber, payfast
from tenancy import lambdas
from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.bootstrap import Services
from tenancy.domain.clock import format_timestamp
from tenancy.domain.lifecycle import NoticeStatus
from tenancy.domain.model import TenantStatus
from tenancy.lambdas import ScheduledJob
from tenancy.lifecycle.emails import SUBJECTS

from aws_support import AwsContext, Backend
from helpers import ManualClock, journal_job, lambda_context, pay, work

__all__ = ["payfast"]  # the fixture this suite uses, from lifecycle_support

ONCALL = "oncall@example.com"


CONTEXT: Any = lambda_context("alerts")


def scheduled_event(rule: str) -> dict[str, Any]:
    """What an EventBridge rule on a schedule sends its target when it has no Input (the shape
    EventBridge documents for "Scheduled Event")."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-06T09:00:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:events:eu-west-1:123456789012:rule/{rule}"],
        "detail": {},
    }


def sent_by_the_rule_of(job: ScheduledJob) -> dict[str, Any]:
    """What the job's rule sends its function: the rule's Input when it has one (EventBridge sends
    it instead of the scheduled event), else the scheduled event of the rule."""
    if job.rule_input is not None:
        return dict(job.rule_input)
    return scheduled_event(f"site-builder-dev-{job.name}")


def handler_of(job: ScheduledJob) -> Any:
    return getattr(lambdas, job.handler)


def run(job: ScheduledJob) -> dict[str, Any]:
    """The job's handler invoked as its rule invokes it."""
    answer: dict[str, Any] = handler_of(job)(sent_by_the_rule_of(job), CONTEXT)
    return answer


@pytest.fixture
def clock() -> ManualClock:
    # The subscriber's first charge is billed on 2026-12-06 (lifecycle_support): paid through 2027-01-06.
    return ManualClock(datetime(2026, 12, 6, 9, tzinfo=UTC))


@pytest.fixture
def backend_settings() -> dict[str, Any]:
    # The DLQ's alert goes to Engineering: by email here, so the test can read what was sent.
    return {"alert_routes": {"engineering": ("email",)}, "alert_email_to": ONCALL}


@pytest.fixture
def services(aws_backend: Backend, payfast: SimulatedSubscriptionApi) -> Iterator[Services]:
    """The container's services, as `lambdas.services()` builds them, with PayFast's subscription
    API offline (the lifecycle sweep asks it whether a renewal is missed)."""
    wired = dataclasses.replace(aws_backend.services, payfast_api=payfast)
    lambdas.use_services(wired)
    yield wired
    lambdas.use_services(None)


def emf_documents(output: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric documents Powertools printed (one a line, on stdout)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_the_stalled_job_sweep_schedule_puts_a_job_whose_queue_send_failed_back_on_the_queue(
    aws: AwsContext, aws_backend: Backend, services: Services
) -> None:
    # The journal has the job; its SQS message was never sent (the send failed after the write).
    journal_job(services, "TXN-STALL01", "stalled@example.com")
    aws_backend.clock.advance(minutes=20)

    answer = run(lambdas.STALLED_JOB_SWEEP)

    assert answer == {"requeued": ["TXN-STALL01"], "parked": [], "cleared": [], "settled": []}
    [message] = aws.session.client("sqs").receive_message(QueueUrl=aws.resources.queue_url)["Messages"]
    assert json.loads(message["Body"])["transaction_id"] == "TXN-STALL01"


def test_the_lifecycle_sweep_schedule_applies_the_move_that_fell_due_and_emails_the_owner(
    aws_backend: Backend, services: Services, payfast: SimulatedSubscriptionApi
) -> None:
    subscriber = Subscriber(services, payfast)
    aws_backend.clock.advance(days=33)  # 2027-01-08: a day past the paid-through date, renewal missed

    answer = run(lambdas.LIFECYCLE_SWEEP)

    assert (answer["moved"], answer["skipped"]) == (1, 0)
    assert subscriber.status() is TenantStatus.PAST_DUE
    assert subscriber.emails(SUBJECTS[TenantStatus.PAST_DUE]) == 1
    # The move's notices (and the activation's) are delivered in the same run.
    assert services.lifecycle.notices(NoticeStatus.PENDING) == []


def test_the_notices_schedule_delivers_an_event_whose_earlier_attempts_failed(
    aws: AwsContext, aws_backend: Backend, services: Services
) -> None:
    heard = site_builder_listening(aws)
    pay(services, email="notices@example.com")
    work(services)
    [pending] = services.lifecycle.notices(NoticeStatus.PENDING)  # tenant.activated
    # Two attempts failed (the bus throttled); the backoff has run out, so the next round is due.
    now = services.clock.now()
    services.lifecycle.update_notice(
        dataclasses.replace(
            pending, attempts=2, last_error="EventBridge: ThrottlingException", next_attempt_at=format_timestamp(now)
        )
    )
    aws_backend.clock.advance(seconds=1)

    answer = run(lambdas.NOTICE_DELIVERY)

    assert answer == {"delivered": 1, "retrying": 0, "dead": 0}
    delivered = services.lifecycle.get_notice(pending.notice_id)
    assert delivered is not None
    assert (delivered.status, delivered.attempts) == (NoticeStatus.DELIVERED, 3)
    [event] = received(aws, heard)
    assert (event["detail-type"], event["detail"]["id"]) == ("tenant.activated", pending.notice_id)


def test_the_weekly_audit_schedule_finds_what_changed_behind_the_systems_back_and_records_its_run(
    aws: AwsContext, services: Services
) -> None:
    transaction_id = pay(services, email="audited@example.com")
    work(services)
    # Deleted in the Cognito console: no function hears of it; the weekly audit finds it.
    aws.session.client("cognito-idp").admin_delete_user(
        UserPoolId=aws.resources.user_pool_id, Username="audited@example.com"
    )

    totals = run(lambdas.WEEKLY_AUDIT)

    assert (totals["transactions"], totals["findings"]) == (1, 1)
    indexed = services.findings_index.get(transaction_id)
    assert indexed is not None
    assert indexed.finding == "identity_user_missing"
    last = services.findings_index.last_audit()
    assert last is not None
    assert (last.trigger, last.purchases, last.findings) == ("schedule", 1, 1)


def test_the_alert_watch_schedule_tells_a_non_empty_dlq_once_then_its_resolution(
    aws: AwsContext, aws_backend: Backend, services: Services
) -> None:
    services.queue.send_dead_letter("TXN-PARKED1", "ses: MessageRejected")

    def a_minute_on() -> dict[str, Any]:
        aws_backend.clock.advance(minutes=1)  # the rule's rate
        return run(lambdas.ALERT_WATCH)

    first = a_minute_on()
    again = a_minute_on()  # still firing: not told again
    told = alert_emails(services)
    aws.session.client("sqs").purge_queue(QueueUrl=aws.resources.dlq_url)
    resolved = a_minute_on()

    assert first == {
        "started": ["dlq_not_empty"],
        "resolved": [],
        "deliveries": [
            {"rule": "dlq_not_empty", "destination": "log", "delivered": True, "error": None},
            {"rule": "dlq_not_empty", "destination": "email", "delivered": True, "error": None},
        ],
    }
    assert again == {"started": [], "resolved": [], "deliveries": []}
    assert [email.tags["state"] for email in told] == ["firing"]
    assert "1 job in the dead-letter queue" in told[0].subject
    assert resolved["resolved"] == ["dlq_not_empty"]
    assert [email.tags["state"] for email in alert_emails(services)] == ["firing", "resolved"]


def test_an_alert_a_destination_did_not_get_counts_as_the_watchers_failure(
    aws: AwsContext, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    # Engineering's alerts go to Slack, and no webhook URL is configured: only the log hears of it.
    unheard = dataclasses.replace(
        services, settings=services.settings.model_copy(update={"alert_routes": {"engineering": ("slack",)}})
    )
    lambdas.use_services(unheard)
    services.queue.send_dead_letter("TXN-PARKED2", "ses: MessageRejected")
    capsys.readouterr()

    answer = run(lambdas.ALERT_WATCH)

    assert answer["started"] == ["dlq_not_empty"]
    assert [(each["destination"], each["delivered"]) for each in answer["deliveries"]] == [
        ("log", True),
        ("slack", False),
    ]
    assert failure_count(capsys.readouterr().out, "AlertWatchFailed") == 1


def test_a_schedule_whose_store_is_out_of_reach_answers_why_and_counts_the_metric_its_alarm_watches(
    aws: AwsContext, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.session.client("dynamodb").delete_table(TableName=services.settings.lifecycle_table)
    capsys.readouterr()

    answer = run(lambdas.NOTICE_DELIVERY)
    output = capsys.readouterr().out

    assert set(answer) == {"failed"}
    assert failure_count(output, "NoticeDeliveryFailed") == 1
    assert failure_count(output, "LifecycleSweepFailed") == 0
    # The alarm (deploy/template.yaml) watches the metric in this namespace with these dimensions.
    [document] = [each for each in emf_documents(output) if "NoticeDeliveryFailed" in each]
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert (directive["Namespace"], directive["Dimensions"], document["service"]) == (
        "Tenancy",
        [["service"]],
        "tenancy",
    )


def test_a_job_the_alert_watcher_cannot_read_counts_as_its_failure(
    aws: AwsContext, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.session.client("sqs").delete_queue(QueueUrl=aws.resources.dlq_url)
    capsys.readouterr()

    answer = run(lambdas.ALERT_WATCH)

    assert answer["started"] == []
    assert "failed" in answer
    assert failure_count(capsys.readouterr().out, "AlertWatchFailed") == 1


def failure_count(output: str, metric: str) -> float:
    """How much `metric` counted in the documents printed (EMF writes a metric's values as a list)."""
    values = [document.get(metric, []) for document in emf_documents(output)]
    return sum(sum(value) if isinstance(value, list) else float(value) for value in values)


def alert_emails(services: Services) -> list[Any]:
    """The alert emails sent to the on-call address, oldest first."""
    return sorted(
        (email for email in services.mailer.outbox(ONCALL) if email.tags.get("kind") == "alert"),
        key=lambda email: email.created_at,
    )


def site_builder_listening(aws: AwsContext) -> str:
    """A queue a rule on the tenants' bus sends every lifecycle event to (the Site Builder's side)."""
    events, sqs = aws.session.client("events"), aws.session.client("sqs")
    queue_url = sqs.create_queue(QueueName="site-builder-hears")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = aws.settings.effective_event_bus_name
    events.put_rule(Name="site-builder-hears", EventBusName=bus, EventPattern=json.dumps({"source": ["tenancy"]}))
    events.put_targets(Rule="site-builder-hears", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return str(queue_url)


def received(aws: AwsContext, queue_url: str) -> list[dict[str, Any]]:
    messages = aws.session.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]
