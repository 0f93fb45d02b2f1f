"""A local stand-in for PayFast's subscription API (payfast-subscriptions.md) on 127.0.0.1.

It checks every call's signature as PayFast does (401 when it does not match, 400 when a header
is missing), records every call, answers from an in-memory dict of subscriptions, and can be told
to fail the next calls with a 5xx or to stall them past a client's timeout."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tenancy.domain.billing import Frequency, add_months
from tenancy.payments.subscription_api import API_VERSION, api_signature_matches

__all__ = ["PayfastApiStandIn", "RecordedCall", "running_payfast_api"]

# Which method each call takes (payfast-subscriptions.md).
_METHODS = {"fetch": "GET", "pause": "PUT", "unpause": "PUT", "cancel": "PUT", "update": "PATCH"}
_SIGNED_HEADERS = ("merchant-id", "version", "timestamp")


@dataclass(frozen=True)
class RecordedCall:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    status: int  # what the stand-in answered


class PayfastApiStandIn(ThreadingHTTPServer):
    """PayFast's subscription API for one merchant and passphrase. `subscriptions` holds each
    token's fetch answer (`amount`, `cycles`, `cycles_complete`, `frequency`, `run_date`,
    `status_text`); the calls change it as PayFast would."""

    daemon_threads = True

    def __init__(self, *, merchant_id: str, passphrase: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.merchant_id = merchant_id
        self.passphrase = passphrase
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.calls: list[RecordedCall] = []
        self.lock = threading.Lock()
        self._failures: list[int] = []
        self._stalls = 0
        # Stalled calls wait on this until the test ends (never a fixed sleep).
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(
        self,
        token: str,
        *,
        amount: int = 29900,
        frequency: int = 3,
        run_date: str = "2027-01-06",
        cycles: int = 0,
        cycles_complete: int = 0,
        status_text: str = "ACTIVE",
    ) -> None:
        with self.lock:
            self.subscriptions[token] = {
                "amount": amount,
                "cycles": cycles,
                "cycles_complete": cycles_complete,
                "frequency": frequency,
                "run_date": run_date,
                "status": 1,
                "status_text": status_text,
                "token": token,
            }

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next `count` calls answer `status` (after their signature is checked) and change nothing."""
        with self.lock:
            self._failures.extend([status] * count)

    def stall_next(self, count: int) -> None:
        """The next `count` calls answer nothing until `release` is set."""
        with self.lock:
            self._stalls += count

    def subscription(self, token: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.subscriptions[token])

    def recorded(self) -> list[RecordedCall]:
        with self.lock:
            return list(self.calls)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a stalled call has closed its socket: nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def _take_fault(self) -> tuple[bool, int | None]:
        with self.lock:
            if self._stalls:
                self._stalls -= 1
                return True, None
            return False, (self._failures.pop(0) if self._failures else None)


class _ApiHandler(BaseHTTPRequestHandler):
    server: PayfastApiStandIn

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        status, answer = self._answer(parts.path, query, headers, body)
        with self.server.lock:
            self.server.calls.append(RecordedCall(self.command, parts.path, query, headers, body or {}, status))
        self._send(status, answer)

    def _answer(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return _failed(400, "Body is not a JSON object")
        if missing := [name for name in (*_SIGNED_HEADERS, "signature") if not headers.get(name)]:
            return _failed(400, f"Missing header(s): {', '.join(missing)}")
        if headers["version"] != API_VERSION:
            return _failed(400, "Unsupported version")
        signed = {key: value for key, value in query.items() if key != "testing"}
        signed.update({key: value for key, value in body.items() if isinstance(value, str | int)})
        if headers["merchant-id"] != self.server.merchant_id or not api_signature_matches(
            headers, signed, self.server.passphrase
        ):
            return _failed(401, "Merchant authorization failed")
        stalled, failure = self.server._take_fault()
        if stalled:
            self.server.release.wait(timeout=30)
            return _failed(503, "Stalled")
        if failure is not None:
            return _failed(failure, "Internal error")
        segments = [unquote(segment) for segment in path.strip("/").split("/")]
        if len(segments) != 3 or segments[0] != "subscriptions" or _METHODS.get(segments[2]) != self.command:
            return _failed(404, "Not found")
        _, token, call = segments
        with self.server.lock:
            found = self.server.subscriptions.get(token)
            if found is None:
                return _failed(404, "Subscription not found")
            return _apply(call, found, body)

    def _send(self, status: int, answer: dict[str, Any]) -> None:
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _failed(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"code": status, "status": "failed", "data": {"response": False, "message": message}}


def _succeeded(response: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"code": 200, "status": "success", "data": {"response": response}}


def _apply(call: str, found: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One call on a known subscription, as PayFast answers it (the caller holds the lock)."""
    state = found["status_text"]
    if call == "fetch":
        return _succeeded(dict(found))
    if state == "CANCELLED":
        # The message PayFast gives for any change to a cancelled subscription, cancel included.
        return _failed(400, "Failure - The subscription status is cancelled")
    if call == "cancel":
        found.update(status_text="CANCELLED", status=2)
    elif call == "pause":
        if state == "PAUSED":
            return _failed(400, "Failure - The subscription is already paused")
        cycles = int(body.get("cycles", 1))
        months = Frequency(found["frequency"]).months * cycles
        found.update(
            status_text="PAUSED", run_date=add_months(date.fromisoformat(found["run_date"]), months).isoformat()
        )
    elif call == "unpause":
        if state != "PAUSED":
            return _failed(400, "Failure - The subscription is not paused")
        found.update(status_text="ACTIVE")
    elif call == "update":
        # Like PayFast, fields it does not list are ignored.
        found.update({key: body[key] for key in ("amount", "cycles", "frequency", "run_date") if key in body})
    return _succeeded(True)


@contextmanager
def running_payfast_api(*, merchant_id: str, passphrase: str | None) -> Iterator[PayfastApiStandIn]:
    """The stand-in serving in a thread; stopped (stalled calls released first) afterwards."""
    server = PayfastApiStandIn(merchant_id=merchant_id, passphrase=passphrase)
    # A short poll keeps shutdown quick: each test starts and stops its own stand-in.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
