"""The Mailer contract, run with the same assertions against the embedded OutboxMailer (delivering
to a real SMTP server on localhost) and SesMailer (on moto's SES, logging to the mail-log table)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from tenancy.adapters.aws.ses import SesMailer
from tenancy.adapters.local.mail import OutboxMailer, SmtpTarget
from tenancy.bootstrap import SystemClock
from tenancy.domain.model import OutgoingEmail
from tenancy.errors import PermanentError, TransientError
from tenancy.ports import Mailer

from aws_support import AwsContext, Backend

SENDER = "noreply@kimmyai.io"
OTHER_SENDER = "billing@kimmyai.io"
REGION = "eu-west-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class AcceptingHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_url() -> Iterator[str]:
    """A real SMTP server on localhost that accepts every email."""
    port = _free_port()
    controller = Controller(AcceptingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@pytest.fixture
def backend_settings(smtp_url: str) -> dict[str, Any]:
    # The embedded mailer delivers to the SMTP server; SES (on moto) has no use for it.
    return {"smtp_url": smtp_url}


@pytest.fixture
def mailer(backend: Backend) -> Mailer:
    if backend.aws is not None:
        # bootstrap verifies SENDER; a second sender is verified the way an operator would.
        backend.aws.session.client("ses", region_name=REGION).verify_email_identity(EmailAddress=OTHER_SENDER)
    return backend.services.mailer


def _failing_mailer(backend: Backend) -> Mailer:
    """A mailer of this backend whose sends fail."""
    if backend.aws is not None:
        session, table = backend.aws.session, backend.aws.resources.mail_log_table
        unverified = "unverified@elsewhere.example"
        return SesMailer(session.client("ses"), session.client("dynamodb"), table, unverified, clock=backend.clock)
    assert backend.services.database is not None
    # Nothing listens on a fresh free port: the server is unreachable.
    unreachable = SmtpTarget(f"smtp://127.0.0.1:{_free_port()}", timeout=5)
    return OutboxMailer(backend.services.database, default_sender=SENDER, clock=backend.clock, smtp=unreachable)


def _email(to: str = "owner@example.com", **changes: Any) -> OutgoingEmail:
    values: dict[str, Any] = {
        "to": to,
        "subject": "Welcome to Site Builder",
        "text": "Your account is ready. Login at https://dev.kimmyai.io/auth/login",
        "html": "<p>Your account is ready.</p>",
        "tags": {"kind": "welcome", "transaction_id": "TXN-1"},
    }
    values.update(changes)
    return OutgoingEmail(**values)


def test_a_sent_email_is_kept_as_delivered(mailer: Mailer) -> None:
    message_id = mailer.send(_email("Owner@Example.com"))

    [kept] = mailer.outbox()
    assert message_id
    assert kept.message_id == message_id
    assert kept.status == "delivered"
    assert kept.error is None
    assert kept.to == "owner@example.com"
    assert kept.sender == SENDER  # the default, since the email named none
    assert kept.subject == "Welcome to Site Builder"
    assert kept.text == "Your account is ready. Login at https://dev.kimmyai.io/auth/login"
    assert kept.tags == {"kind": "welcome", "transaction_id": "TXN-1"}
    assert kept.created_at.endswith("Z")
    assert len(kept.created_at) == len("2026-01-18T00:00:00Z")


def test_delivery_statistics_count_what_was_sent(mailer: Mailer) -> None:
    before = mailer.delivery_statistics()

    mailer.send(_email())
    mailer.send(_email("second@example.com"))
    after = mailer.delivery_statistics()

    assert all(isinstance(count, int) for count in after.values())
    assert sum(after.values()) - sum(before.values()) >= 2


def test_the_emails_own_sender_wins_over_the_default(mailer: Mailer) -> None:
    mailer.send(_email(sender=OTHER_SENDER))

    assert mailer.outbox()[0].sender == OTHER_SENDER


def test_a_text_only_email_is_sent(mailer: Mailer) -> None:
    message_id = mailer.send(_email(html=None, tags={}))

    [kept] = mailer.outbox()
    assert (kept.message_id, kept.status, kept.tags) == (message_id, "delivered", {})


def test_outbox_filters_by_recipient_newest_first(mailer: Mailer) -> None:
    first = mailer.send(_email("a@example.com", subject="one"))
    mailer.send(_email("b@example.com", subject="two"))
    third = mailer.send(_email("A@Example.com", subject="three"))

    assert [m.message_id for m in mailer.outbox(to="a@example.com")] == [third, first]
    assert [m.message_id for m in mailer.outbox(to=" A@EXAMPLE.COM ")] == [third, first]
    assert [m.subject for m in mailer.outbox(to="b@example.com")] == ["two"]
    assert mailer.outbox(to="c@example.com") == []
    assert [m.subject for m in mailer.outbox()] == ["three", "two", "one"]
    assert [m.subject for m in mailer.outbox(limit=2)] == ["three", "two"]
    assert [m.subject for m in mailer.outbox(to="a@example.com", limit=1)] == ["three"]


def test_scan_yields_every_email_in_batches(mailer: Mailer) -> None:
    sent = {mailer.send(_email(f"user{number}@example.com")) for number in range(5)}

    batches = list(mailer.scan(batch_size=2))

    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert {message.message_id for batch in batches for message in batch} == sent


def test_a_failed_send_raises_and_is_kept_as_failed(backend: Backend) -> None:
    failing = _failing_mailer(backend)
    # SES refuses an unverified sender for good; an unreachable SMTP server may come back.
    expected = PermanentError if backend.name == "aws" else TransientError

    with pytest.raises(expected) as caught:
        failing.send(_email())

    [kept] = failing.outbox(to="owner@example.com")
    assert kept.status == "failed"
    assert kept.error == str(caught.value)
    assert kept.message_id
    assert kept.subject == "Welcome to Site Builder"
    assert kept.tags == {"kind": "welcome", "transaction_id": "TXN-1"}
    if backend.name == "aws":
        assert "MessageRejected" in kept.error
    else:
        assert "unreachable" in kept.error


def test_ses_receives_what_rb001_4_4_sends(aws_backend: Backend) -> None:
    """`aws ses send-email --from ... --to ... --subject ... --html ...`; moto keeps the HTML part
    when there is one, else the text part."""
    mailer = aws_backend.services.mailer
    with_html = mailer.send(_email(" Owner@Example.com "))
    text_only = mailer.send(_email(html=None))

    sent = {message.id: message for message in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages}
    assert sent[with_html].source == SENDER
    assert sent[with_html].destinations == {"ToAddresses": ["Owner@Example.com"]}
    assert sent[with_html].subject == "Welcome to Site Builder"
    assert sent[with_html].body == "<p>Your account is ready.</p>"
    assert sent[text_only].body == "Your account is ready. Login at https://dev.kimmyai.io/auth/login"


# --- SES answers moto does not give --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("Throttling", 400, TransientError),
        ("ServiceUnavailable", 503, TransientError),
        ("MailFromDomainNotVerifiedException", 400, PermanentError),
        ("ConfigurationSetDoesNotExist", 400, PermanentError),
        ("AccountSendingPausedException", 400, PermanentError),
    ],
)
def test_ses_refusals_are_kept_and_typed(aws: AwsContext, code: str, status: int, expected: type[Exception]) -> None:
    ses, dynamodb = aws.session.client("ses", region_name=REGION), aws.session.client("dynamodb", region_name=REGION)
    mailer = SesMailer(ses, dynamodb, aws.resources.mail_log_table, SENDER, clock=SystemClock())
    with Stubber(ses) as stubber:
        stubber.add_client_error("send_email", service_error_code=code, http_status_code=status)
        with pytest.raises(expected):
            mailer.send(_email())

    [kept] = mailer.outbox()
    assert kept.status == "failed"
    assert kept.error is not None
    assert code in kept.error


def test_the_ses_mail_log_never_keeps_a_secret_of_the_email(aws_backend: Backend) -> None:
    mailer = aws_backend.services.mailer
    mailer.send(_email(text="Temporary password: S3cret-Pass!", html="<code>S3cret-Pass!</code>",
                       secrets=("S3cret-Pass!",)))  # fmt: skip

    [kept] = mailer.outbox()
    assert "S3cret-Pass!" not in kept.text
    assert kept.text == "Temporary password: [redacted]"


# --- The record of an email that is out ----------------------------------------------------------


class _ThrottledPuts:
    """A DynamoDB client whose first `failures` PutItems are throttled, as a busy table's are."""

    def __init__(self, client: Any, failures: int) -> None:
        self._client = client
        self._failures = failures

    def put_item(self, **request: Any) -> Any:
        if self._failures > 0:
            self._failures -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem")
        return self._client.put_item(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _busy_twice_after_the_send(backend: Backend) -> Mailer:
    """This backend's mailer, its store busy for the first two writes (the send's own record)."""
    if backend.aws is not None:
        session, table = backend.aws.session, backend.aws.resources.mail_log_table
        throttled = _ThrottledPuts(session.client("dynamodb"), failures=2)
        return SesMailer(session.client("ses"), throttled, table, SENDER, clock=backend.clock)
    database = backend.services.database
    assert database is not None
    refusals = [True, True]

    def locked() -> None:
        if refusals:
            refusals.pop()
            raise sqlite3.OperationalError("database is locked")

    database.before_write = locked
    return backend.services.mailer


def test_an_email_sent_is_kept_though_the_store_is_busy_at_first(backend: Backend) -> None:
    # Once the email is out, a lost record means a second email (embedded: the send would fail and
    # be retried) or a welcome the runbook calls missing (AWS): the record waits the store out.
    mailer = _busy_twice_after_the_send(backend)

    message_id = mailer.send(_email())

    [kept] = mailer.outbox(to="owner@example.com")
    assert kept.message_id == message_id
    assert kept.status == "delivered"
    if backend.aws is not None:
        assert [message.id for message in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages] == [message_id]
