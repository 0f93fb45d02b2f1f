"""The EventBridge publisher: on moto, an event reaches a queue a rule on the bus routes it to;
EventBridge's answers moto cannot give (a failed entry, throttling) are stubbed as EventBridge
gives them, to check that each is typed for the outbox (retry or give up)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tenancy.adapters.aws.eventbridge import EventBridgePublisher
from tenancy.domain.lifecycle import EventType, LifecycleEvent, new_event
from tenancy.domain.model import TenantStatus
from tenancy.errors import ConfigurationError, PermanentError, TransientError

REGION = "eu-west-1"
BUS = "site-builder"


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def subscribed_queue(session: boto3.Session, pattern: dict[str, Any]) -> str:
    """A queue that a rule on the bus sends every event matching `pattern` to; its URL."""
    events, sqs = session.client("events"), session.client("sqs")
    queue_url = sqs.create_queue(QueueName="site-builder-hears")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="tenancy-events", EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="tenancy-events", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return queue_url


def heard(session: boto3.Session, queue_url: str) -> list[dict[str, Any]]:
    messages = session.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def suspended_event() -> LifecycleEvent:
    return new_event(
        EventType.SUSPENDED,
        "ten_7f3a9c",
        "pro",
        TenantStatus.SUSPENDED,
        "2026-01-18T00:00:00Z",
        "2026-01-18T00:00:00Z past_due->suspended",
        reason="unpaid",
    )


def test_an_event_reaches_the_queue_a_rule_on_the_bus_routes_tenancy_events_to(session: boto3.Session) -> None:
    session.client("events").create_event_bus(Name=BUS)
    queue_url = subscribed_queue(session, {"source": ["tenancy"]})
    event = suspended_event()

    EventBridgePublisher(session.client("events"), BUS).publish(event)

    [message] = heard(session, queue_url)
    assert message["source"] == "tenancy"
    assert message["detail-type"] == "tenant.suspended"
    assert message["time"] == "2026-01-18T00:00:00Z"
    assert message["detail"] == {**event.body(), "id": event.event_id}
    assert message["detail"]["data"] == {
        "tenant_id": "ten_7f3a9c",
        "plan": "pro",
        "status": "suspended",
        "reason": "unpaid",
    }


def test_a_rule_on_the_detail_type_hears_only_that_kind_of_event(session: boto3.Session) -> None:
    session.client("events").create_event_bus(Name=BUS)
    queue_url = subscribed_queue(session, {"source": ["tenancy"], "detail-type": ["tenant.cancelled"]})
    publisher = EventBridgePublisher(session.client("events"), BUS)
    cancelled = new_event(
        EventType.CANCELLED, "ten_7f3a9c", "pro", TenantStatus.CANCELLED, "2026-02-18T00:00:00Z", "cancel"
    )

    publisher.publish(suspended_event())
    publisher.publish(cancelled)

    assert [message["detail"]["id"] for message in heard(session, queue_url)] == [cancelled.event_id]


def test_a_bus_that_does_not_exist_is_a_permanent_failure(session: boto3.Session) -> None:
    # moto refuses the call with ResourceNotFoundException rather than failing the entry.
    publisher = EventBridgePublisher(session.client("events"), "no-such-bus")

    with pytest.raises(PermanentError, match="ResourceNotFoundException"):
        publisher.publish(suspended_event())


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ThrottlingException", TransientError),
        ("InternalFailure", TransientError),
        ("InternalException", TransientError),
        ("NotAuthorizedForSourceException", PermanentError),
        ("InvalidArgument", PermanentError),
        ("MalformedDetail", PermanentError),
    ],
)
def test_a_failed_entry_in_a_200_answer_is_typed_by_its_error_code(
    session: boto3.Session, code: str, expected: type[Exception]
) -> None:
    client = session.client("events")
    event = suspended_event()
    with Stubber(client) as stubber:
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": code, "ErrorMessage": "as EventBridge says"}]},
            expected_params={
                "Entries": [
                    {
                        "Source": "tenancy",
                        "DetailType": "tenant.suspended",
                        "Detail": json.dumps(
                            {**event.body(), "id": event.event_id}, separators=(",", ":"), sort_keys=True
                        ),
                        "EventBusName": BUS,
                        "Time": datetime(2026, 1, 18, tzinfo=UTC),
                    }
                ]
            },
        )
        with pytest.raises(expected, match=f"{code}: as EventBridge says"):
            EventBridgePublisher(client, BUS).publish(event)
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, TransientError),
        ("InternalException", 500, TransientError),
        ("AccessDeniedException", 400, PermanentError),
    ],
)
def test_a_refused_call_is_typed_by_its_error_code(
    session: boto3.Session, code: str, status: int, expected: type[Exception]
) -> None:
    client = session.client("events")
    with Stubber(client) as stubber:
        stubber.add_client_error("put_events", service_error_code=code, http_status_code=status)
        with pytest.raises(expected):
            EventBridgePublisher(client, BUS).publish(suspended_event())


@pytest.mark.parametrize(("bus_name", "source"), [("", "tenancy"), (BUS, "")])
def test_an_empty_bus_name_or_source_is_refused_at_start(session: boto3.Session, bus_name: str, source: str) -> None:
    with pytest.raises(ConfigurationError):
        EventBridgePublisher(session.client("events"), bus_name, source)
