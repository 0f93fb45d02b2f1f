"""OutboxMailer: every email kept in the outbox, and delivered over real SMTP when configured."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.mail import OutboxMailer, SmtpTarget
from tenancy.bootstrap import SystemClock, build
from tenancy.domain.model import OutgoingEmail
from tenancy.errors import ConfigurationError, PermanentError, TransientError

from helpers import make_settings

SENDER = "noreply@kimmyai.io"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CollectingHandler:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.original_content))
        )
        return "250 Message accepted for delivery"


class RefusingHandler(CollectingHandler):
    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        return "550 5.1.1 No such user here"


class DeferringHandler(CollectingHandler):
    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        return "451 4.3.0 Try again later"


@contextmanager
def _serve(handler: CollectingHandler) -> Iterator[tuple[CollectingHandler, int]]:
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[CollectingHandler, int]]:
    with _serve(CollectingHandler()) as served:
        yield served


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "mail.db")
    yield db
    db.close()


def _mailer(database: Database, port: int | None = None) -> OutboxMailer:
    smtp = SmtpTarget(f"smtp://127.0.0.1:{port}", timeout=5) if port is not None else None
    return OutboxMailer(database, default_sender=SENDER, clock=SystemClock(), smtp=smtp)


def _email(to: str = "owner@example.com", **changes: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "to": to,
        "subject": "Welcome to Site Builder",
        "text": "Sign in: http://127.0.0.1:8000/auth/login\nTemporary password: Ab3!defgHJKm2345\n",
        "html": "<p>Temporary password: <code>Ab3!defgHJKm2345</code></p>",
        "tags": {"kind": "welcome", "transaction_id": "TXN-1"},
    }
    values.update(changes)
    return OutgoingEmail(**values)


def test_without_smtp_the_email_is_stored_in_the_outbox(database: Database) -> None:
    mailer = _mailer(database)
    message_id = mailer.send(_email())
    [kept] = mailer.outbox()
    assert kept.message_id == message_id
    assert kept.status == "stored"
    assert kept.error is None
    assert kept.to == "owner@example.com"
    assert kept.sender == SENDER  # the default sender, since the email named none
    assert kept.subject == "Welcome to Site Builder"
    assert "Temporary password: Ab3!defgHJKm2345" in kept.text
    assert kept.tags == {"kind": "welcome", "transaction_id": "TXN-1"}
    assert kept.created_at.endswith("Z")


def test_the_emails_own_sender_wins_over_the_default(database: Database) -> None:
    mailer = _mailer(database)
    mailer.send(_email(sender="billing@kimmyai.io"))
    assert mailer.outbox()[0].sender == "billing@kimmyai.io"


def test_with_smtp_the_email_is_delivered_to_the_server(
    database: Database, smtp_server: tuple[CollectingHandler, int]
) -> None:
    handler, port = smtp_server
    mailer = _mailer(database, port)
    message_id = mailer.send(_email())
    [kept] = mailer.outbox()
    assert kept.message_id == message_id
    assert kept.status == "delivered"
    assert kept.error is None
    [(mail_from, rcpt_tos, message)] = handler.envelopes
    assert mail_from == SENDER
    assert rcpt_tos == ["owner@example.com"]
    assert message["From"] == SENDER
    assert message["To"] == "owner@example.com"
    assert message["Subject"] == "Welcome to Site Builder"
    assert message_id in message["Message-ID"]
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert "Temporary password: Ab3!defgHJKm2345" in parts["text/plain"]
    assert "http://127.0.0.1:8000/auth/login" in parts["text/plain"]
    assert "<code>Ab3!defgHJKm2345</code>" in parts["text/html"]


def test_once_delivered_the_outbox_copy_loses_the_emails_secrets(
    database: Database, smtp_server: tuple[CollectingHandler, int]
) -> None:
    handler, port = smtp_server
    mailer = _mailer(database, port)

    mailer.send(dataclasses.replace(_email(), secrets=("Ab3!defgHJKm2345",)))

    [kept] = mailer.outbox()
    [(_, _, message)] = handler.envelopes
    assert "Ab3!defgHJKm2345" in message.as_string()  # the owner gets the password
    assert "Ab3!defgHJKm2345" not in kept.text  # the kept copy does not
    assert "Temporary password: [redacted]" in kept.text


def test_without_smtp_the_outbox_is_the_inbox_and_keeps_the_email_whole(database: Database) -> None:
    mailer = _mailer(database)

    mailer.send(dataclasses.replace(_email(), secrets=("Ab3!defgHJKm2345",)))

    assert "Temporary password: Ab3!defgHJKm2345" in mailer.outbox()[0].text


def test_a_text_only_email_is_delivered_as_plain_text(
    database: Database, smtp_server: tuple[CollectingHandler, int]
) -> None:
    handler, port = smtp_server
    _mailer(database, port).send(_email(html=None, text="just text"))
    [(_, _, message)] = handler.envelopes
    assert message.get_content_type() == "text/plain"
    assert message.get_payload(decode=True).decode().strip() == "just text"


def test_a_closed_port_raises_transient_error_and_keeps_the_email_as_failed(database: Database) -> None:
    mailer = _mailer(database, _free_port())  # nothing listens there
    with pytest.raises(TransientError, match="unreachable"):
        mailer.send(_email())
    [kept] = mailer.outbox()
    assert kept.status == "failed"
    assert kept.error is not None
    assert "unreachable" in kept.error
    assert kept.subject == "Welcome to Site Builder"


@pytest.mark.parametrize("handler", [RefusingHandler(), DeferringHandler()], ids=["refused", "deferred"])
def test_a_failed_email_kept_in_the_outbox_loses_its_secrets(database: Database, handler: CollectingHandler) -> None:
    with _serve(handler) as (_, port):
        mailer = _mailer(database, port)
        with pytest.raises((PermanentError, TransientError)):
            mailer.send(dataclasses.replace(_email(), secrets=("Ab3!defgHJKm2345",)))
    [kept] = mailer.outbox()
    assert kept.status == "failed"
    assert "Ab3!defgHJKm2345" not in kept.text
    assert "Temporary password: [redacted]" in kept.text


def test_a_recipient_refused_with_550_raises_permanent_error(database: Database) -> None:
    with _serve(RefusingHandler()) as (handler, port):
        mailer = _mailer(database, port)
        with pytest.raises(PermanentError, match="550"):
            mailer.send(_email())
        assert handler.envelopes == []
    [kept] = mailer.outbox()
    assert kept.status == "failed"
    assert kept.error is not None
    assert "550" in kept.error


def test_a_recipient_deferred_with_451_raises_transient_error(database: Database) -> None:
    with _serve(DeferringHandler()) as (handler, port):
        mailer = _mailer(database, port)
        with pytest.raises(TransientError, match="451"):
            mailer.send(_email())
        assert handler.envelopes == []
    assert [kept.status for kept in mailer.outbox()] == ["failed"]


@pytest.mark.parametrize(
    ("fault", "error"), [("mail_refused", "answered 451"), ("mail_timeout", "unreachable: TimeoutError")]
)
def test_an_injected_mail_fault_fails_the_send_transiently_before_it_reaches_the_server(
    tmp_path: Path, smtp_server: tuple[CollectingHandler, int], fault: str, error: str
) -> None:
    handler, port = smtp_server
    settings = make_settings(tmp_path / "home", smtp_url=f"smtp://127.0.0.1:{port}", faults=f"rate:{fault}:1.0")
    services = build(settings)
    try:
        # Transient: the worker retries it, so the purchase still ends healthy.
        with structlog.testing.capture_logs() as logs, pytest.raises(TransientError, match=error):
            services.mailer.send(_email())

        assert handler.envelopes == []
        assert [kept.status for kept in services.mailer.outbox()] == ["failed"]
        assert [(entry["event"], entry["fault"], entry["at"]) for entry in logs if "fault" in entry] == [
            ("fault_injected", fault, "smtp.deliver")
        ]
    finally:
        services.close()


def test_outbox_filters_by_recipient_newest_first(database: Database) -> None:
    mailer = _mailer(database)
    first = mailer.send(_email("a@example.com", subject="one"))
    mailer.send(_email("b@example.com", subject="two"))
    third = mailer.send(_email("a@example.com", subject="three"))
    assert [m.message_id for m in mailer.outbox(to="a@example.com")] == [third, first]
    assert [m.subject for m in mailer.outbox(to="b@example.com")] == ["two"]
    assert mailer.outbox(to="c@example.com") == []
    assert len(mailer.outbox()) == 3
    assert len(mailer.outbox(limit=2)) == 2
    assert [m.subject for m in mailer.outbox(to="a@example.com", limit=1)] == ["three"]


def test_outbox_filter_ignores_the_case_of_the_address_asked_for(database: Database) -> None:
    mailer = _mailer(database)
    mailer.send(_email("owner@example.com"))
    assert len(mailer.outbox(to=" Owner@Example.COM ")) == 1


def test_outbox_filter_finds_mail_sent_to_a_mixed_case_address(database: Database) -> None:
    mailer = _mailer(database)
    mailer.send(_email("Owner@Example.com"))
    assert len(mailer.outbox(to="Owner@Example.com")) == 1
    assert len(mailer.outbox(to="owner@example.com")) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:25", "smtp://", "127.0.0.1:25"])
def test_a_bad_smtp_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        SmtpTarget(url)


def test_smtp_url_parts_and_default_ports() -> None:
    plain = SmtpTarget("smtp://mailer:s%40cret@mail.example.com:2525")
    assert (plain.host, plain.port, plain.use_ssl) == ("mail.example.com", 2525, False)
    assert (plain.username, plain.password) == ("mailer", "s@cret")
    assert SmtpTarget("smtp://mail.example.com").port == 25
    secure = SmtpTarget("smtps://mail.example.com")
    assert (secure.port, secure.use_ssl) == (465, True)
