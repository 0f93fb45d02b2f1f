"""The webhook publisher against a real HTTP receiver on 127.0.0.1: what it sends verifies as a
Standard Webhook, and each kind of failure is typed for the outbox (retry or give up) without the
secret, the signature or the URL's path in the error."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tenancy.adapters.webhooks import WebhookPublisher
from tenancy.domain.lifecycle import EventType, LifecycleEvent, new_event
from tenancy.domain.model import TenantStatus
from tenancy.errors import ConfigurationError, PermanentError, TenancyError, TransientError

from servers import free_port


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes  # exactly as received: the signature covers these bytes


class Receiver(ThreadingHTTPServer):
    """Keeps every request and answers `status`; with `stall` set it answers nothing until the
    test ends. A failing answer echoes the request's headers back, as a careless receiver might."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.status = 200
        self.location: str | None = None
        self.stall = False
        self.release = threading.Event()
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()

    def url(self, path: str = "/hooks/site-builder") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A publisher that gave up on a stalled answer has closed its socket: nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        with self.server.lock:
            self.server.deliveries.append(Delivery(self.command, self.path, headers, body))
        if self.server.stall:
            self.server.release.wait(timeout=30)
        status = self.server.status
        answer = b"ok" if status < 300 else json.dumps(headers).encode()
        self.send_response(status)
        if self.server.location is not None:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


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


def test_a_delivered_event_verifies_as_a_standard_webhook_signed_with_the_secret(receiver: Receiver) -> None:
    secret = new_secret()
    publisher = WebhookPublisher(receiver.url(), secret, timeout_seconds=5)
    event = suspended_event()

    before = int(time.time())
    publisher.publish(event)
    after = int(time.time())

    [delivery] = receiver.received()
    assert delivery.method == "POST"
    assert delivery.path == "/hooks/site-builder"
    assert Webhook(secret).verify(delivery.body, delivery.headers) == event.body()
    assert delivery.headers["webhook-id"] == event.event_id
    assert delivery.headers["content-type"] == "application/json"
    assert before <= int(delivery.headers["webhook-timestamp"]) <= after
    assert json.loads(delivery.body)["data"] == {
        "tenant_id": "ten_7f3a9c",
        "plan": "pro",
        "status": "suspended",
        "reason": "unpaid",
    }
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_secret()).verify(delivery.body, delivery.headers)


def test_a_retried_event_keeps_its_webhook_id_so_the_receiver_can_drop_the_repeat(receiver: Receiver) -> None:
    publisher = WebhookPublisher(receiver.url(), new_secret(), timeout_seconds=5)
    event = suspended_event()
    receiver.status = 503
    with pytest.raises(TransientError):
        publisher.publish(event)
    receiver.status = 204
    publisher.publish(event)

    first, second = receiver.received()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.event_id


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_a_receiver_that_may_answer_later_is_a_transient_failure(receiver: Receiver, status: int) -> None:
    receiver.status = status
    publisher = WebhookPublisher(receiver.url(), new_secret(), timeout_seconds=5)

    with pytest.raises(TransientError, match=rf"127\.0\.0\.1: answered {status}"):
        publisher.publish(suspended_event())


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_a_receiver_that_refuses_the_event_is_a_permanent_failure(receiver: Receiver, status: int) -> None:
    receiver.status = status
    publisher = WebhookPublisher(receiver.url(), new_secret(), timeout_seconds=5)

    with pytest.raises(PermanentError, match=rf"127\.0\.0\.1: answered {status}"):
        publisher.publish(suspended_event())


def test_a_redirect_is_not_followed_and_is_a_permanent_failure(receiver: Receiver) -> None:
    receiver.status = 301
    receiver.location = receiver.url("/elsewhere")
    publisher = WebhookPublisher(receiver.url(), new_secret(), timeout_seconds=5)

    with pytest.raises(PermanentError, match="answered 301"):
        publisher.publish(suspended_event())
    assert [delivery.path for delivery in receiver.received()] == ["/hooks/site-builder"]


def test_an_unreachable_receiver_is_a_transient_failure() -> None:
    publisher = WebhookPublisher(f"http://127.0.0.1:{free_port()}/hooks", new_secret(), timeout_seconds=5)

    with pytest.raises(TransientError, match=r"127\.0\.0\.1: unreachable"):
        publisher.publish(suspended_event())


def test_a_receiver_that_does_not_answer_in_time_is_a_transient_failure(receiver: Receiver) -> None:
    receiver.stall = True
    publisher = WebhookPublisher(receiver.url(), new_secret(), timeout_seconds=0.2)

    with pytest.raises(TransientError, match=r"127\.0\.0\.1: timed out"):
        publisher.publish(suspended_event())
    assert len(receiver.received()) == 1


def test_no_failure_names_the_secret_the_signature_or_the_urls_path(receiver: Receiver) -> None:
    secret = new_secret()
    path = "/hooks/tok_8c1d2e?key=k_44f0b1"
    failures: list[TenancyError] = []
    for status in (500, 410):
        receiver.status = status
        with pytest.raises((TransientError, PermanentError)) as caught:
            WebhookPublisher(receiver.url(path), secret, timeout_seconds=5).publish(suspended_event())
        failures.append(caught.value)
    with pytest.raises(TransientError) as unreachable:
        WebhookPublisher(f"http://127.0.0.1:{free_port()}{path}", secret, timeout_seconds=5).publish(suspended_event())
    failures.append(unreachable.value)
    receiver.stall = True
    with pytest.raises(TransientError) as timed_out:
        WebhookPublisher(receiver.url(path), secret, timeout_seconds=0.2).publish(suspended_event())
    failures.append(timed_out.value)

    signatures = [delivery.headers["webhook-signature"] for delivery in receiver.received()]
    assert len(signatures) == 3
    for failure in failures:
        text = f"{failure} {failure!r}"
        assert "127.0.0.1" in text
        for hidden in (secret, secret.removeprefix("whsec_"), "tok_8c1d2e", "k_44f0b1", *signatures):
            assert hidden not in text
            assert hidden.split(",")[-1] not in text  # a signature's base64 part alone


@pytest.mark.parametrize("secret", ["whsec_k9Qx7", "whsec_"])  # not base64; no key at all
def test_a_secret_that_cannot_sign_is_refused_at_start_without_being_named(secret: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        WebhookPublisher("http://127.0.0.1:9/hooks", secret, timeout_seconds=5)
    assert "k9Qx7" not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hooks", "/hooks/no-host", "http://"])
def test_a_url_that_cannot_be_posted_to_is_refused_at_start(url: str) -> None:
    with pytest.raises(ConfigurationError):
        WebhookPublisher(url, new_secret(), timeout_seconds=5)
