"""The Mailer contract, run with the same assertions against the embedded OutboxMailer (delivering
to a real SMTP server on localhost) and SesMailer (on moto's SES, logging to the mail-log table)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from tenancy.adapters.aws.ses import SesMailer
from tenancy.adapters.local.database import Database
from tenancy.adapters.local.mail import OutboxMailer, SmtpTarget
from tenancy.domain.model import OutgoingEmail
from tenancy.errors import PermanentError, TransientError
from tenancy.ports import Mailer

from aws_support import AwsContext

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


@dataclass(frozen=True)
class Backend:
    name: str
    mailer: Mailer
    failing: Callable[[], Mailer]  # a mailer of this backend whose sends fail


def _ses(aws: AwsContext, sender: str = SENDER) -> SesMailer:
    return SesMailer(
        aws.session.client("ses", region_name=REGION),
        aws.session.client("dynamodb", region_name=REGION),
        aws.resources.mail_log_table,
        sender,
    )


@pytest.fixture(params=["local", "aws"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        database = Database(tmp_path / "mail.db")
        port = _free_port()
        controller = Controller(AcceptingHandler(), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            yield Backend(
                "local",
                OutboxMailer(database, default_sender=SENDER, smtp=SmtpTarget(f"smtp://127.0.0.1:{port}", timeout=5)),
                # Nothing listens on a fresh free port: the server is unreachable.
                lambda: OutboxMailer(
                    database, default_sender=SENDER, smtp=SmtpTarget(f"smtp://127.0.0.1:{_free_port()}", timeout=5)
                ),
            )
        finally:
            controller.stop()
            database.close()
    else:
        aws: AwsContext = request.getfixturevalue("aws")
        # bootstrap verifies SENDER; a second sender is verified the way an operator would.
        aws.session.client("ses", region_name=REGION).verify_email_identity(EmailAddress=OTHER_SENDER)
        yield Backend("aws", _ses(aws), lambda: _ses(aws, "unverified@elsewhere.example"))


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


def test_a_sent_email_is_kept_as_delivered(backend: Backend) -> None:
    message_id = backend.mailer.send(_email("Owner@Example.com"))

    [kept] = backend.mailer.outbox()
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


def test_delivery_statistics_count_what_was_sent(backend: Backend) -> None:
    before = backend.mailer.delivery_statistics()

    backend.mailer.send(_email())
    backend.mailer.send(_email("second@example.com"))
    after = backend.mailer.delivery_statistics()

    assert all(isinstance(count, int) for count in after.values())
    assert sum(after.values()) - sum(before.values()) >= 2


def test_the_emails_own_sender_wins_over_the_default(backend: Backend) -> None:
    backend.mailer.send(_email(sender=OTHER_SENDER))

    assert backend.mailer.outbox()[0].sender == OTHER_SENDER


def test_a_text_only_email_is_sent(backend: Backend) -> None:
    message_id = backend.mailer.send(_email(html=None, tags={}))

    [kept] = backend.mailer.outbox()
    assert (kept.message_id, kept.status, kept.tags) == (message_id, "delivered", {})


def test_outbox_filters_by_recipient_newest_first(backend: Backend) -> None:
    first = backend.mailer.send(_email("a@example.com", subject="one"))
    backend.mailer.send(_email("b@example.com", subject="two"))
    third = backend.mailer.send(_email("A@Example.com", subject="three"))

    assert [m.message_id for m in backend.mailer.outbox(to="a@example.com")] == [third, first]
    assert [m.message_id for m in backend.mailer.outbox(to=" A@EXAMPLE.COM ")] == [third, first]
    assert [m.subject for m in backend.mailer.outbox(to="b@example.com")] == ["two"]
    assert backend.mailer.outbox(to="c@example.com") == []
    assert [m.subject for m in backend.mailer.outbox()] == ["three", "two", "one"]
    assert [m.subject for m in backend.mailer.outbox(limit=2)] == ["three", "two"]
    assert [m.subject for m in backend.mailer.outbox(to="a@example.com", limit=1)] == ["three"]


def test_scan_yields_every_email_in_batches(backend: Backend) -> None:
    sent = {backend.mailer.send(_email(f"user{number}@example.com")) for number in range(5)}

    batches = list(backend.mailer.scan(batch_size=2))

    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert {message.message_id for batch in batches for message in batch} == sent


def test_a_failed_send_raises_and_is_kept_as_failed(backend: Backend) -> None:
    failing = backend.failing()
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


def test_ses_receives_what_rb001_4_4_sends(aws: AwsContext) -> None:
    """`aws ses send-email --from ... --to ... --subject ... --html ...`; moto keeps the HTML part
    when there is one, else the text part."""
    mailer = _ses(aws)
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
    ses = aws.session.client("ses", region_name=REGION)
    mailer = SesMailer(ses, aws.session.client("dynamodb", region_name=REGION), aws.resources.mail_log_table, SENDER)
    with Stubber(ses) as stubber:
        stubber.add_client_error("send_email", service_error_code=code, http_status_code=status)
        with pytest.raises(expected):
            mailer.send(_email())

    [kept] = mailer.outbox()
    assert kept.status == "failed"
    assert kept.error is not None
    assert code in kept.error


def test_the_ses_mail_log_never_keeps_a_secret_of_the_email(aws: AwsContext) -> None:
    from tenancy.adapters.aws.ses import SesMailer

    mailer = SesMailer(aws.session.client("ses"), aws.session.client("dynamodb"), "mail-log", SENDER)
    mailer.send(_email(text="Temporary password: S3cret-Pass!", html="<code>S3cret-Pass!</code>",
                       secrets=("S3cret-Pass!",)))  # fmt: skip

    [kept] = mailer.outbox()
    assert "S3cret-Pass!" not in kept.text
    assert kept.text == "Temporary password: [redacted]"
