"""Real `tenancy serve` and `tenancy worker` processes sharing one TENANCY_HOME (one SQLite file),
for the reliability suite: start, crash, stop and restart them, post signed ITNs (offline mode),
and count what one payment left in every store."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.payments.simulator import build_itn, encode_form

from helpers import make_settings
from servers import cli_env, free_port, tenancy

__all__ = [
    "EXACTLY_ONCE",
    "LOCK_TROUBLE",
    "Fleet",
    "PaymentFootprint",
    "Process",
    "itn_body",
    "new_payment",
]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PLAN = "starter"
# Words that would mean two processes fought over the SQLite file and one of them lost.
LOCK_TROUBLE = re.compile(r"database is locked|database busy|OperationalError", re.IGNORECASE)


@dataclass
class Process:
    """One `tenancy` process, its stdout and stderr in one file under the home."""

    name: str
    popen: subprocess.Popen[bytes]
    output: Path

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, as a supervisor stops a process; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout} s:\n{self.text()}") from None

    def kill(self) -> int:
        if self.popen.poll() is None:
            self.popen.kill()
        return self.popen.wait(timeout=10)

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@dataclass
class Fleet:
    """Processes on one home. Offline PayFast mode: no validate endpoint, no source check;
    the signature, merchant and amount checks still apply to every ITN posted."""

    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(
            self.home,
            TENANCY_PORT=str(self.port),
            TENANCY_PAYFAST_MODE="offline",
            TENANCY_WORKER_POLL_SECONDS="0.05",
            # A crashed worker's message is visible again after a second, not a minute.
            TENANCY_VISIBILITY_TIMEOUT_SECONDS="1",
            TENANCY_RETRY_BASE_SECONDS="0.05",
            # The suite posts hundreds of ITNs from 127.0.0.1 within seconds: no throttle here.
            TENANCY_ITN_MAX_PER_MINUTE_PER_SOURCE="1000000",
            **{**self.extra_env, **extra},
        )

    def _start(self, name: str, arguments: list[str], env: dict[str, str]) -> Process:
        self.home.mkdir(parents=True, exist_ok=True)
        output = self.home / f"{name}-{len(self.processes)}.out"
        with output.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tenancy", *arguments], env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        process = Process(name, popen, output)
        self.processes.append(process)
        return process

    def worker(self, *, faults: str = "", concurrency: int = 1, **extra: str) -> Process:
        """`tenancy worker`, returned once each of its threads is polling."""
        env = self.env(TENANCY_FAULTS=faults, **extra)
        process = self._start("worker", ["worker", "--concurrency", str(concurrency)], env)
        deadline = time.monotonic() + 30
        while process.text().count('"worker_started"') < concurrency:
            if process.popen.poll() is not None:
                raise AssertionError(f"tenancy worker exited {process.popen.returncode}:\n{process.text()}")
            assert time.monotonic() < deadline, f"tenancy worker did not start in 30 s:\n{process.text()}"
            time.sleep(0.02)
        return process

    def serve(self, *, workers: int = 0, faults: str = "", **extra: str) -> Process:
        process = self._start(
            "serve", ["serve"], self.env(TENANCY_WORKERS=str(workers), TENANCY_FAULTS=faults, **extra)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise AssertionError(f"tenancy serve exited {process.popen.returncode}:\n{process.text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return process
            except httpx.TransportError:
                time.sleep(0.05)
        process.kill()
        raise AssertionError("tenancy serve did not become healthy in 30 s")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post_itn(self, body: bytes, client: httpx.Client | None = None) -> httpx.Response:
        url = f"{self.base_url}/payments/payfast/itn"
        if client is not None:
            return client.post(url, content=body, headers=FORM)
        return httpx.post(url, content=body, headers=FORM, timeout=30)

    def pay(self, transaction_id: str, email: str) -> None:
        response = self.post_itn(itn_body(transaction_id, email))
        assert response.status_code == 200, response.text

    @contextmanager
    def services(self) -> Iterator[Services]:
        """The stores the processes use, opened from the test process."""
        services = build(make_settings(self.home, payfast_mode="offline"))
        try:
            yield services
        finally:
            services.close()

    def job(self, transaction_id: str) -> ProvisioningJob | None:
        with self.services() as services:
            return services.journal.get(transaction_id)

    def wait_for_job(
        self, transaction_id: str, done: Callable[[ProvisioningJob], bool], timeout: float = 30
    ) -> ProvisioningJob:
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.job(transaction_id)
            if job is not None and done(job):
                return job
            time.sleep(0.05)
        raise AssertionError(f"{transaction_id} never got there: {job}\n{self.outputs()}")

    def wait_until_succeeded(self, transaction_id: str, timeout: float = 30) -> ProvisioningJob:
        return self.wait_for_job(transaction_id, lambda job: job.status is JobStatus.SUCCEEDED, timeout)

    def diagnose(self, transaction_id: str) -> tuple[int, dict[str, object]]:
        """`tenancy diagnose --transaction-id ... --json`, as an operator runs it."""
        result = tenancy(self.env(), "diagnose", "--transaction-id", transaction_id, "--json")
        return result.returncode, json.loads(result.stdout)

    def footprint(self, transaction_id: str, email: str) -> PaymentFootprint:
        with self.services() as services:
            return payment_footprint(services, transaction_id, email)

    def outputs(self) -> str:
        return "\n".join(
            f"--- {process.name} ({process.output.name}):\n{process.text()[-3000:]}" for process in self.processes
        )

    def log_text(self) -> str:
        """Everything every process wrote: its stdout/stderr and the component log files."""
        files = [process.output for process in self.processes] + sorted((self.home / "logs").glob("*.log"))
        return "\n".join(path.read_text(errors="replace") for path in files if path.exists())

    def stop_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


@dataclass(frozen=True)
class PaymentFootprint:
    """How many rows one payment left in each store: provisioning exactly once means all ones."""

    tenants: int
    identity_users: int
    users_records: int
    emails: int
    journal_entries: int
    accepted_payments: int
    queued_messages: int


def payment_footprint(
    services: Services, transaction_id: str, email: str, *, failed_sends: bool = True
) -> PaymentFootprint:
    """The payment's rows in each embedded store; `failed_sends=False` leaves out emails the
    mail server refused (a fault test's refusals are attempts, not emails)."""
    database = services.database
    assert database is not None

    def count(sql: str, value: str) -> int:
        return int(database.read(sql, (value,))[0]["n"])

    sent = "" if failed_sends else " AND status != 'failed'"
    return PaymentFootprint(
        tenants=count("SELECT COUNT(*) AS n FROM tenants WHERE transaction_id = ?", transaction_id),
        identity_users=count("SELECT COUNT(*) AS n FROM identity_users WHERE username = ?", email),
        users_records=count("SELECT COUNT(*) AS n FROM users WHERE email = ?", email),
        emails=count(f"SELECT COUNT(*) AS n FROM outbox WHERE to_address = ?{sent}", email),  # noqa: S608
        journal_entries=count("SELECT COUNT(*) AS n FROM provisioning WHERE transaction_id = ?", transaction_id),
        accepted_payments=count(
            "SELECT COUNT(*) AS n FROM payments WHERE transaction_id = ? AND verdict = 'accepted'", transaction_id
        ),
        queued_messages=count("SELECT COUNT(*) AS n FROM queue_messages WHERE transaction_id = ?", transaction_id),
    )


EXACTLY_ONCE = PaymentFootprint(
    tenants=1, identity_users=1, users_records=1, emails=1, journal_entries=1, accepted_payments=1, queued_messages=0
)


def new_payment(prefix: str = "REL") -> tuple[str, str]:
    """A fresh (transaction id, email) pair."""
    token = uuid.uuid4().hex[:10].upper()
    return f"TXN-{prefix}-{token}", f"{prefix.lower()}-{token.lower()}@example.com"


def itn_body(transaction_id: str, email: str, pf_payment_id: str | None = None) -> bytes:
    """A correctly signed COMPLETE ITN for the starter plan, with the sandbox merchant's credentials."""
    from tenancy.domain.plans import load_catalogue

    fields = build_itn(
        transaction_id=transaction_id,
        pf_payment_id=pf_payment_id,
        email=email,
        plan=PLAN,
        amount=load_catalogue(None).get(PLAN).price_zar,
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
    )
    return encode_form(fields)
