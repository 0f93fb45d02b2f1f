"""Mail on the embedded backend: every email kept in the outbox table and, when
`TENANCY_SMTP_URL` is set, delivered to that SMTP server."""

from __future__ import annotations

import json
import smtplib
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from tenancy.adapters.kept_once_done import keep_record
from tenancy.adapters.local.batches import rows_where_in
from tenancy.adapters.local.database import Database
from tenancy.domain.clock import format_timestamp
from tenancy.domain.model import OutboxMessage, OutgoingEmail
from tenancy.errors import ConfigurationError, PermanentError, TransientError
from tenancy.ports import Clock

__all__ = ["OutboxMailer", "SmtpTarget"]


class SmtpTarget:
    """Where to deliver: parsed from `smtp://[user:pass@]host:port` or `smtps://...`."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ConfigurationError("TENANCY_SMTP_URL must look like smtp://host:port or smtps://host:port")
        self.use_ssl = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.use_ssl else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        # TEST-ONLY (tenancy.faults): called before each delivery connects; may raise what smtplib
        # or the socket would. None in every real run.
        self.before_deliver: Callable[[], None] | None = None

    def deliver(self, message: EmailMessage) -> None:
        client_type = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
        try:
            if self.before_deliver is not None:
                self.before_deliver()
            with client_type(self.host, self.port, timeout=self.timeout) as client:
                if self.username and self.password:
                    client.login(self.username, self.password)
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            if all(500 <= code < 600 for code in codes):
                raise PermanentError(f"recipient refused by the mail server ({codes[0]})") from None
            raise TransientError(f"recipient deferred by the mail server ({codes[0]})") from None
        except smtplib.SMTPResponseException as error:
            kind = PermanentError if 500 <= error.smtp_code < 600 and error.smtp_code != 554 else TransientError
            raise kind(f"mail server answered {error.smtp_code}") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as error:
            raise TransientError(f"mail server unreachable: {type(error).__name__}") from None


def _message_from_row(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        message_id=row["message_id"],
        to=row["to_address"],
        sender=row["sender"],
        subject=row["subject"],
        text=row["text_body"],
        status=row["status"],
        created_at=row["created_at"],
        error=row["error"],
        tags=json.loads(row["tags"]),
    )


class OutboxMailer:
    """Statuses in the outbox: `stored` (no SMTP configured), `delivered`, `failed`."""

    def __init__(
        self,
        database: Database,
        *,
        default_sender: str,
        clock: Clock,
        smtp: SmtpTarget | None = None,
    ) -> None:
        self._database = database
        self._default_sender = default_sender
        self._smtp = smtp
        self._clock = clock

    def send(self, email: OutgoingEmail) -> str:
        sender = email.sender or self._default_sender
        message_id = uuid.uuid4().hex
        status, error = "stored", None
        if self._smtp is not None:
            # With a mail server configured the outbox is a log, not an inbox: its copy never keeps
            # the email's secrets, delivered (the server holds it now) or failed (the retry sends a
            # fresh email; a live temporary password must not sit where operators read).
            kept = email.redacted()
            try:
                self._smtp.deliver(self._mime(email, sender, message_id))
                status = "delivered"
            except (TransientError, PermanentError) as failure:
                status, error = "failed", str(failure)
                self._keep(kept, sender, message_id, status, error)
                raise
            email = kept
        # Delivered (or stored): the record waits out a busy database rather than have the email sent again.
        keep_record(lambda: self._keep(email, sender, message_id, status, error))
        return message_id

    def _mime(self, email: OutgoingEmail, sender: str, message_id: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Message-ID"] = make_msgid(idstring=message_id, domain=sender.rpartition("@")[2] or None)
        message.set_content(email.text)
        if email.html:
            message.add_alternative(email.html, subtype="html")
        return message

    def _keep(self, email: OutgoingEmail, sender: str, message_id: str, status: str, error: str | None) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO outbox (message_id, to_address, sender, subject, text_body, html_body, status, error,"
                " tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    email.to.strip().lower(),
                    sender,
                    email.subject,
                    email.text,
                    email.html,
                    status,
                    error,
                    json.dumps(email.tags),
                    format_timestamp(self._clock.now()),
                ),
            )

    def outbox(self, to: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        if to is None:
            rows = self._database.read("SELECT * FROM outbox ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        else:
            rows = self._database.read(
                "SELECT * FROM outbox WHERE to_address = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (to.strip().lower(), limit),
            )
        return [_message_from_row(row) for row in rows]

    def outboxes(self, recipients: Sequence[str], limit: int = 100) -> dict[str, list[OutboxMessage]]:
        keys = {recipient: recipient.strip().lower() for recipient in recipients}
        by_key: dict[str, list[OutboxMessage]] = {}
        if limit <= 0:
            return {}
        order = "to_address, created_at DESC, rowid DESC"  # each recipient's as `outbox` orders them
        for row in rows_where_in(self._database, "SELECT * FROM outbox", "to_address", keys.values(), order):
            kept = by_key.setdefault(row["to_address"], [])
            if len(kept) < limit:
                kept.append(_message_from_row(row))
        return {recipient: by_key[key] for recipient, key in keys.items() if key in by_key}

    def scan(self, batch_size: int = 1000) -> Iterator[list[OutboxMessage]]:
        for rows in self._database.scan("outbox", "message_id", batch_size):
            yield [_message_from_row(row) for row in rows]

    def delivery_statistics(self) -> dict[str, int]:
        rows = self._database.read("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status ORDER BY status")
        return {row["status"]: int(row["n"]) for row in rows}
