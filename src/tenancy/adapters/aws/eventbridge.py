"""Lifecycle events to the Site Builder application on an EventBridge bus (the `EventPublisher` port).

One `put_events` entry per event: its detail-type is the event type (`tenant.suspended`) for rules
to match on, and its detail the webhook's body plus the event's `id`, the same on every attempt
(EventBridge gives each put an id of its own), so a consumer can drop a repeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenancy.adapters.aws._errors import aws_errors
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.lifecycle import LifecycleEvent, encode_body
from tenancy.errors import ConfigurationError, NotFoundError, PermanentError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

__all__ = ["EventBridgePublisher"]

# The entry error codes EventBridge's PutEvents documents as worth another try; any other
# (InvalidArgument, MalformedDetail, NotAuthorizedForSourceException, ...) fails every time.
_RETRY_LATER_CODES = frozenset({"ThrottlingException", "InternalException", "InternalFailure"})


class EventBridgePublisher:
    """Puts each event on one bus under one source."""

    def __init__(self, client: EventBridgeClient, bus_name: str, source: str = "tenancy") -> None:
        # EventBridge takes an empty source and fails the entry on every put; refuse it at start.
        if not bus_name or not source:
            raise ConfigurationError("the EventBridge bus name and source must not be empty")
        self._client = client
        self._bus_name = bus_name
        self._source = source

    def publish(self, event: LifecycleEvent) -> None:
        doing = f"publishing {event.type.value} {event.event_id} on the {self._bus_name} bus"
        try:
            with aws_errors(doing):
                response = self._client.put_events(
                    Entries=[
                        {
                            "Source": self._source,
                            "DetailType": event.type.value,
                            "Detail": encode_body({**event.body(), "id": event.event_id}),
                            "EventBusName": self._bus_name,
                            "Time": parse_timestamp(event.at),
                        }
                    ]
                )
        except NotFoundError as missing:
            # The port knows only "retry" or "never": a bus that does not exist stays missing until
            # someone creates it. moto refuses the call; AWS has been reported to accept it and drop
            # the event (aws/aws-cli#9186), which no answer here can show.
            raise PermanentError(str(missing)) from None
        # PutEvents answers 200 whatever became of the entry; only the entry says it failed.
        if not response.get("FailedEntryCount"):
            return
        entries = response.get("Entries") or [{}]
        code = entries[0].get("ErrorCode", "")
        reason = f"{doing}: {code or 'failed'}: {entries[0].get('ErrorMessage', '')}"
        if code in _RETRY_LATER_CODES:
            raise TransientError(reason)
        raise PermanentError(reason)
