"""The Mailer port on SES (RB-001 4.4's `ses send-email`), with every attempt kept in the
`mail-log` DynamoDB table so an operator can see what was sent to whom, and what failed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from tenancy.adapters.aws._errors import aws_errors
from tenancy.adapters.aws._fanout import each
from tenancy.adapters.kept_once_done import keep_record
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import normalize_email
from tenancy.domain.model import OutboxMessage, OutgoingEmail
from tenancy.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef
    from mypy_boto3_ses import SESClient
    from mypy_boto3_ses.type_defs import BodyTypeDef

    from tenancy.ports import Clock

__all__ = ["SesMailer"]

log = structlog.get_logger(__name__)

RECIPIENT_INDEX = "recipient-index"
DELIVERED = "delivered"  # SES accepted the message; bounces arrive later, outside this log
FAILED = "failed"
# Whole seconds in `created_at` (the contract format) leave ties; this breaks them, newest first.
# It orders writes, so it reads the host's own nanosecond counter, not the injected clock.
_SEQUENCE = "created_at_ns"

Key = Mapping[str, Any]  # a DynamoDB LastEvaluatedKey
Page = tuple[list[dict[str, Any]], Key | None]


def _text(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _item(
    email: OutgoingEmail, sender: str, message_id: str, status: str, error: str | None, created_at: datetime
) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        "message_id": _text(message_id),
        "to_address": _text(normalize_email(email.to)),
        "sender": _text(sender),
        "subject": _text(email.subject),
        "text_body": _text(email.text),
        "status": _text(status),
        "tags": {"M": {name: _text(value) for name, value in email.tags.items()}},
        "created_at": _text(format_timestamp(created_at)),
        _SEQUENCE: {"N": str(time.time_ns())},
    }
    if email.html is not None:
        item["html_body"] = _text(email.html)
    if error is not None:
        item["error"] = _text(error)
    return item


def _string(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if isinstance(value, Mapping) and "S" in value else None


def _message(item: Mapping[str, Any]) -> OutboxMessage:
    tags = item.get("tags", {}).get("M", {})
    return OutboxMessage(
        message_id=_string(item, "message_id") or "",
        to=_string(item, "to_address") or "",
        sender=_string(item, "sender") or "",
        subject=_string(item, "subject") or "",
        text=_string(item, "text_body") or "",
        status=_string(item, "status") or "",
        created_at=_string(item, "created_at") or "",
        error=_string(item, "error"),
        tags={name: str(value.get("S", "")) for name, value in tags.items()},
    )


def _newest_first(item: Mapping[str, Any]) -> tuple[str, int]:
    # A row an operator wrote by hand has no sequence; it sorts first among its second's ties.
    sequence = item.get(_SEQUENCE, {}).get("N", "0")
    return (_string(item, "created_at") or "", int(sequence))


class SesMailer:
    """Statuses in the mail log: `delivered` (SES accepted it) and `failed` (with the error)."""

    def __init__(
        self,
        ses_client: SESClient,
        dynamodb_client: DynamoDBClient,
        mail_log_table: str,
        default_sender: str,
        *,
        clock: Clock,
        keep_secrets: bool = False,
    ) -> None:
        # keep_secrets: only for development against moto, where no inbox can be read.
        self._keep_secrets = keep_secrets
        self._clock = clock  # dates each mail-log entry
        self._ses = ses_client
        self._dynamodb = dynamodb_client
        self._table = mail_log_table
        self._default_sender = default_sender

    def send(self, email: OutgoingEmail) -> str:
        """SES's MessageId; PermanentError when SES refuses the message (an unverified sender,
        a missing configuration set), TransientError when it throttles or fails."""
        sender = email.sender or self._default_sender
        body: BodyTypeDef = {"Text": {"Data": email.text, "Charset": "UTF-8"}}
        if email.html:
            body["Html"] = {"Data": email.html, "Charset": "UTF-8"}
        try:
            # `tags` stay in the log only: SES message tags allow a narrow alphabet (no `@`, no `.`).
            with aws_errors(f"sending an email to {normalize_email(email.to)}"):
                response = self._ses.send_email(
                    Source=sender,
                    Destination={"ToAddresses": [email.to.strip()]},
                    Message={"Subject": {"Data": email.subject, "Charset": "UTF-8"}, "Body": body},
                )
        except (TransientError, PermanentError) as failure:
            self._keep(_item(self._logged(email), sender, uuid.uuid4().hex, FAILED, str(failure), self._clock.now()))
            raise
        message_id = response["MessageId"]
        delivered = _item(self._logged(email), sender, message_id, DELIVERED, None, self._clock.now())
        try:
            # The email is out: a throttled mail log is waited out, or the runbook would call it missing.
            keep_record(lambda: self._keep(delivered))
        except (TransientError, PermanentError) as failure:
            # The email is out: raising would make the caller send it a second time.
            log.error("mail_log_write_failed", message_id=message_id, error=str(failure))
        return message_id

    def outbox(self, to: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        items = self._scan_all() if to is None else self._query_recipient(normalize_email(to), limit)
        items.sort(key=_newest_first, reverse=True)
        return [_message(item) for item in items[:limit]]

    def outboxes(self, recipients: Sequence[str], limit: int = 100) -> dict[str, list[OutboxMessage]]:
        # One query of the recipient index per address, a few at a time.
        found = each(lambda recipient: self.outbox(recipient, limit), recipients)
        return {recipient: emails for recipient, emails in found.items() if emails}

    def scan(self, batch_size: int = 1000) -> Iterator[list[OutboxMessage]]:
        batch: list[OutboxMessage] = []
        for page in self._pages(lambda start: self._scan_page(start, batch_size)):
            for item in page:
                batch.append(_message(item))
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _keep(self, item: dict[str, AttributeValueTypeDef]) -> None:
        with aws_errors("keeping an email in the mail log"):
            self._dynamodb.put_item(TableName=self._table, Item=item)

    def _query_recipient(self, to_address: str, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` items for the address, plus every item sharing the oldest one's
        second: the index orders whole seconds only, so its cut may split a second's ties."""
        items: list[dict[str, Any]] = []
        start: Key | None = None
        while True:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": RECIPIENT_INDEX,
                "KeyConditionExpression": "to_address = :to",
                "ExpressionAttributeValues": {":to": {"S": to_address}},
                "ScanIndexForward": False,
                "Limit": limit + 1,
            }
            if start is not None:
                arguments["ExclusiveStartKey"] = start
            with aws_errors(f"reading the mail log for {to_address}"):
                page = self._dynamodb.query(**arguments)
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if start is None:
                return items
            if len(items) > limit and _string(items[-1], "created_at") != _string(items[limit - 1], "created_at"):
                return items

    def _scan_all(self) -> list[dict[str, Any]]:
        # No index orders the whole log; an operator's listing of every recipient reads it all.
        return [item for page in self._pages(lambda start: self._scan_page(start, None)) for item in page]

    def _scan_page(self, start: Key | None, limit: int | None) -> Page:
        arguments: dict[str, Any] = {"TableName": self._table}
        if limit is not None:
            arguments["Limit"] = limit
        if start is not None:
            arguments["ExclusiveStartKey"] = start
        with aws_errors("scanning the mail log"):
            page = self._dynamodb.scan(**arguments)
        return list(page.get("Items", [])), page.get("LastEvaluatedKey")

    @staticmethod
    def _pages(read: Callable[[Key | None], Page]) -> Iterator[list[dict[str, Any]]]:
        start: Key | None = None
        while True:
            items, start = read(start)
            yield items
            if start is None:
                return

    def _logged(self, email: OutgoingEmail) -> OutgoingEmail:
        """What the mail log keeps: the email without its secrets (a live temporary password
        must not sit in a table that operators and the runbook read)."""
        return email if self._keep_secrets else email.redacted()

    def delivery_statistics(self) -> dict[str, int]:
        """SES's own counts over its reporting window (RB-001 4.4 step 1: get-send-statistics)."""
        with aws_errors("reading SES send statistics"):
            points = self._ses.get_send_statistics()["SendDataPoints"]
        totals = {"delivery_attempts": 0, "bounces": 0, "complaints": 0, "rejects": 0}
        for point in points:
            totals["delivery_attempts"] += int(point.get("DeliveryAttempts", 0))
            totals["bounces"] += int(point.get("Bounces", 0))
            totals["complaints"] += int(point.get("Complaints", 0))
            totals["rejects"] += int(point.get("Rejects", 0))
        return totals
