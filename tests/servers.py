"""Real servers for end-to-end and reliability tests: `tenancy serve` as a real process, a real
SMTP server (aiosmtpd), and a local stand-in for PayFast's validate endpoint (the one thing we
cannot run here). Loaded as a pytest plugin by tests/conftest.py, so its fixtures are everywhere."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tenancy.bootstrap import Services, build

from helpers import FAST_HASHING, make_settings

PAYFAST_ADDRESS = "197.97.145.145"  # inside PayFast's published 197.97.145.144/28


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MailCatcher:
    """An aiosmtpd handler that keeps every message it is given."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [message for message in self.messages if message["To"] == address]


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[MailCatcher, int]]:
    catcher = MailCatcher()
    port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=port)
    controller.start()
    yield catcher, port
    controller.stop()


class PayfastStandIn(ThreadingHTTPServer):
    """Answers `/eng/query/validate` like PayFast: VALID for parameter strings it was told about."""

    def __init__(self, port: int, *, permissive: bool = False) -> None:
        super().__init__(("127.0.0.1", port), _ValidateHandler)
        self.genuine: set[str] = set()
        self.asked: list[str] = []
        # Permissive: VALID for anything, so that a rejection can only come from our own checks.
        self.permissive = permissive


class _ValidateHandler(BaseHTTPRequestHandler):
    server: PayfastStandIn

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        self.server.asked.append(body)
        answer = b"VALID" if self.server.permissive or body in self.server.genuine else b"INVALID"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def payfast() -> Iterator[PayfastStandIn]:
    server = PayfastStandIn(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class RunningServer:
    base_url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def services(self) -> Services:
        """The same stores the server uses, opened from this process (SQLite in WAL mode)."""
        return build(make_settings(self.home))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(home: Path, port: int, smtp_port: int, validate_port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENANCY_")}
    env.update(
        {
            "TENANCY_HOME": str(home),
            "TENANCY_PORT": str(port),
            "TENANCY_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "TENANCY_PAYFAST_MODE": "sandbox",
            "TENANCY_PAYFAST_VALIDATE_URL": f"http://127.0.0.1:{validate_port}/eng/query/validate",
            "TENANCY_TRUSTED_PROXIES": "127.0.0.1/32",
            "TENANCY_WORKERS": "2",
            "TENANCY_WORKER_POLL_SECONDS": "0.05",
            "TENANCY_PASSWORD_HASH_TIME_COST": str(FAST_HASHING["password_hash_time_cost"]),
            "TENANCY_PASSWORD_HASH_MEMORY_KIB": str(FAST_HASHING["password_hash_memory_kib"]),
        }
    )
    env.update(extra)
    return env


def start_server(home: Path, env: dict[str, str]) -> RunningServer:
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tenancy", "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{env['TENANCY_PORT']}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tenancy serve exited: {log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return RunningServer(base_url, home, env, process, log_path)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("tenancy serve did not become healthy in 30 s")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: tuple[MailCatcher, int], payfast: PayfastStandIn
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("tenancy-home")
    running = start_server(home, server_env(home, free_port(), smtp_server[1], payfast.server_address[1]))
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


@contextmanager
def plain_http_server(home: Path, **extra: str) -> Iterator[RunningServer]:
    """`tenancy serve` in offline PayFast mode with no workers, on plain http with cookies
    without Secure (so httpx keeps and sends them back), its public URL its own address; stopped
    afterwards, its log checked for tracebacks."""
    port = free_port()
    env = cli_env(
        home,
        TENANCY_PORT=str(port),
        TENANCY_PAYFAST_MODE="offline",
        TENANCY_WORKERS="0",
        TENANCY_COOKIE_SECURE="false",
        TENANCY_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **extra,
    )
    running = start_server(home, env)
    try:
        yield running
    finally:
        stop_server(running)
    assert "Traceback" not in running.log_text()


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENANCY_")}
    env.update(
        {
            "TENANCY_HOME": str(home),
            "TENANCY_PASSWORD_HASH_TIME_COST": str(FAST_HASHING["password_hash_time_cost"]),
            "TENANCY_PASSWORD_HASH_MEMORY_KIB": str(FAST_HASHING["password_hash_memory_kib"]),
        }
    )
    env.update(extra)
    return env


def tenancy(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenancy", *arguments], env=env, capture_output=True, text=True, timeout=120
    )


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    body: dict[str, Any]
    raw: bytes = b""  # the body as sent (a signature covers these bytes)
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver(ThreadingHTTPServer):
    """A stand-in for Slack's and PagerDuty's endpoints, and for the Site Builder application's
    lifecycle webhook, on 127.0.0.1: keeps every JSON POST (body, bytes, headers) and answers
    `status`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.status = 200
        self.received: list[Received] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def texts(self) -> list[str]:
        with self.lock:
            return [received.body["text"] for received in self.received]


class _WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        received = Received(self.path, self.headers.get("Content-Type", ""), json.loads(raw), raw, headers)
        with self.server.lock:
            self.server.received.append(received)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def webhooks() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def welcome_text(catcher: MailCatcher, email: str) -> str:
    """The text of the welcome email SMTP caught for `email` (waits up to 15 s for it)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for message in catcher.to(email):
            if "Welcome" in message["Subject"]:
                part = message.get_payload(0) if message.is_multipart() else message
                return str(part.get_payload(decode=True).decode())
        time.sleep(0.05)
    raise AssertionError(f"no welcome email to {email}")


def temporary_password_in(text: str) -> str:
    """The temporary password in a welcome or invitation email's text."""
    match = re.search(r"^Temporary password: (\S+)\r?$", text, re.MULTILINE)
    assert match, text
    return match.group(1)
