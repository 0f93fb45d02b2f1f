"""Helpers shared by the test suites (importable as `helpers`: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from tenancy.bootstrap import Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE, Settings
from tenancy.domain.clock import format_timestamp, utc_now
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, ProvisioningJob, Tenant
from tenancy.errors import TransientError
from tenancy.logging_setup import configure_logging
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.ports import TenantStore

# Cheap argon2id parameters keep the suite fast; the algorithm and code path are the real ones.
FAST_HASHING = {"password_hash_time_cost": 1, "password_hash_memory_kib": 8}


def make_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "payfast_mode": "sandbox",
        "payfast_source_ranges": ("127.0.0.0/8", "197.97.145.144/28"),
        "payfast_validate_url": "http://127.0.0.1:9/never-called",
        "retry_base_seconds": 0.0,
        "worker_poll_seconds": 0.05,
        **FAST_HASHING,
    }
    values.update(overrides)
    return Settings(**values)


def wait_until(
    condition: Callable[[], object], timeout: float, message: str | Callable[[], str], *, every: float = 0.02
) -> None:
    """Returns as soon as `condition()` is true, checking it every `every` seconds; fails after
    `timeout` seconds with "timed out after Ns waiting for <message>" (`message` may be a function,
    to name the last state seen). For what another thread or process does on its own time; a test's
    own delays and timeouts run on a ManualClock instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    if condition():
        return
    raise AssertionError(f"timed out after {timeout:g}s waiting for {message() if callable(message) else message}")


class ManualClock:
    """The Clock port for tests: time stands still until the test moves it on, so a test waits
    out a delay or a timeout by advancing the clock instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start if start is not None else utc_now().replace(microsecond=0)
        self._now = self.start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **delta: float) -> None:
        """Moves time on by `seconds` plus any `timedelta` keywords (`minutes=5`, `days=7`)."""
        self._now += timedelta(seconds=seconds, **delta)

    @property
    def advanced_seconds(self) -> float:
        """How far the test has moved time on since `start`."""
        return (self._now - self.start).total_seconds()


def journal_job(services: Services, transaction_id: str, email: str, plan: str = "professional") -> ProvisioningJob:
    """A queued job for `transaction_id`, written to the journal (not yet to the queue)."""
    now = format_timestamp(services.clock.now())
    job = ProvisioningJob(
        transaction_id=transaction_id,
        tenant_id=tenant_id_for(transaction_id),
        invoice_number=invoice_number_for(transaction_id),
        email=email,
        plan=plan,
        tenant_name="Acme Studio",
        status=JobStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    assert services.journal.create(job)
    return job


class BrokenTenantStore:
    """Tenant writes fail with a transient error (RB-001 4.3's DynamoDB throttling): the job
    retries, then is dead-lettered (RB-001 4.1)."""

    def __init__(self, real: TenantStore) -> None:
        self._real = real

    def create(self, tenant: Tenant) -> None:
        raise TransientError("ProvisionedThroughputExceededException")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class FlakyTenantStore:
    """Tenant writes fail with a transient error `failures` times (RB-001 4.3's throttling), then
    work: the job retries and provisions."""

    def __init__(self, real: TenantStore, failures: int) -> None:
        self._real = real
        self.failures = failures

    def create(self, tenant: Tenant) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TransientError("ProvisionedThroughputExceededException")
        self._real.create(tenant)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def pay(services: Services, email: str | None = None, plan: str = "professional", **changes: Any) -> str:
    """Posts a signed COMPLETE ITN through the real intake and returns its transaction id."""
    transaction_id = f"TXN-{uuid.uuid4().hex[:10].upper()}"
    values: dict[str, Any] = {
        "transaction_id": transaction_id,
        "email": email or f"{transaction_id.lower()}@example.com",
        "plan": plan,
        "amount": services.plans.get(plan).price_zar if plan in services.plans.names() else "10.00",
        "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
        "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
    }
    values.update(changes)
    services.intake.receive(encode_form(build_itn(**values)), "197.97.145.145")
    return str(values["transaction_id"])


def work(services: Services, rounds: int = 5) -> None:
    worker = services.worker
    for _ in range(rounds):
        if worker.poll_once() == 0:
            return


@dataclass(frozen=True)
class FakeLambdaContext:
    """The attributes Powertools' logger reads from a real LambdaContext, for `function`."""

    function: str = "provisioning"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    @property
    def function_name(self) -> str:
        return f"site-builder-dev-{self.function}"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"


def lambda_context(function: str) -> Any:
    """A context for the function `site-builder-dev-<function>` (typed Any: Powertools' LambdaContext)."""
    return FakeLambdaContext(function)


@contextmanager
def file_logging(directory: Path, *, terminal: bool = False) -> Iterator[Path]:
    """The file logging `tenancy serve` and `tenancy worker` use, into `directory` (and, with
    `terminal`, stderr too); structlog's global configuration restored after."""
    saved = structlog.get_config()
    configure_logging("info", log_dir=directory, terminal=terminal)
    # Cached loggers would keep this test's sink (and captured stderr) for the tests after it.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield directory
    finally:
        structlog.configure(**saved)
