"""/metrics is protected and cheap: who may scrape, one computation shared by scrapes close together,
and no pass over a whole store (tests/contract/test_alert_monitor_contract.py checks that the
counts give the same alert results as a full scan, on both backends)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.web.app import create_app
from tenancy.web.routes.metrics import SingleFlight

from helpers import make_settings, pay, wait_until, work

TOKEN = "0123456789abcdef-metrics"


def scrape(app: FastAPI, **headers: str) -> httpx.Response:
    async def get() -> httpx.Response:
        # httpx's ASGI transport calls from 127.0.0.1.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenancy") as client:
            return await client.get("/metrics", headers=headers)

    return asyncio.run(get())


# --- who may scrape --------------------------------------------------------------------------------------


def test_a_token_is_required_once_set_even_from_loopback(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path, metrics_token=TOKEN))
    try:
        app = create_app(services)
        missing, wrong, right = (
            scrape(app),
            scrape(app, Authorization=f"Bearer {TOKEN[:-1]}x"),
            scrape(app, Authorization=f"bearer {TOKEN}"),
        )
    finally:
        services.close()

    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "tenancy_jobs" in right.text


def test_without_a_token_loopback_clients_are_answered(services: Services) -> None:
    assert scrape(create_app(services)).status_code == 200


@pytest.mark.parametrize("token", ["short", " " * 20, "fifteen-chars!!"])
def test_a_short_metrics_token_is_refused_at_startup(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValidationError, match="TENANCY_METRICS_TOKEN must be at least 16 characters"):
        make_settings(tmp_path, metrics_token=token)


def test_a_blank_metrics_token_is_unset(tmp_path: Path) -> None:
    assert make_settings(tmp_path, metrics_token="").metrics_token is None


# --- cheap: counts, not scans; one computation for scrapes close together ---------------------------------


class NoScan:
    """A store whose `scan` fails the test: a scrape must never read a whole store."""

    def __init__(self, store: object) -> None:
        self._store = store

    def scan(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a scrape scanned a whole store")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_scrape_reads_no_whole_store(services: Services) -> None:
    now = format_timestamp(services.clock.now())
    for number, status in enumerate([JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.DEAD_LETTERED]):
        transaction_id = f"TXN-NOSCAN{number}"
        job = ProvisioningJob(
            transaction_id=transaction_id,
            tenant_id=tenant_id_for(transaction_id),
            invoice_number=invoice_number_for(transaction_id),
            email=f"{transaction_id.lower()}@example.com",
            plan="professional",
            tenant_name="Acme",
            status=status,
            created_at=now,
            updated_at=now,
        )
        assert services.journal.create(job)
    rejected = PaymentRecord(now, "197.97.145.150", (), PaymentVerdict.REJECTED, ("signature mismatch",))
    services.ledger.record(rejected, None)
    unscannable = replace(services, journal=NoScan(services.journal), ledger=NoScan(services.ledger))  # type: ignore[arg-type]

    response = scrape(create_app(unscannable))

    assert response.status_code == 200
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert families == {
        "tenancy_queue_depth",
        "tenancy_dlq_depth",
        "tenancy_jobs",
        "tenancy_payments",
        "tenancy_alert_firing",
        "tenancy_purchases",
        "tenancy_provisioning_error_rate",
    }


class CountingJournal:
    """Counts the journal's counts: one per computation of the metrics."""

    def __init__(self, journal: object) -> None:
        self._journal = journal
        self.counted = 0

    def count_by_status(self) -> Any:
        self.counted += 1
        return self._journal.count_by_status()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)


@pytest.mark.parametrize(("cache_seconds", "computations"), [(60, 1), (0, 3)])
def test_scrapes_within_the_cache_time_share_one_computation(
    tmp_path: Path, cache_seconds: float, computations: int
) -> None:
    services = build(make_settings(tmp_path, metrics_cache_seconds=cache_seconds))
    journal = CountingJournal(services.journal)
    try:
        app = create_app(replace(services, journal=journal))  # type: ignore[arg-type]
        responses = [scrape(app) for _ in range(3)]
    finally:
        services.close()

    assert {response.status_code for response in responses} == {200}
    assert journal.counted == computations


def test_single_flight_makes_concurrent_callers_wait_for_one_computation() -> None:
    calls = 0
    callers = 0
    counting = threading.Lock()

    def compute() -> int:
        nonlocal calls
        calls += 1
        # The computation is still in hand when every caller has asked for the value.
        wait_until(lambda: callers == 8, 10, "all eight callers to ask during the computation", every=0.005)
        return calls

    def call(_: int) -> int:
        nonlocal callers
        with counting:
            callers += 1
        return flight.get()

    flight = SingleFlight(compute, ttl_seconds=60)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(8)))

    assert results == [1] * 8
    assert calls == 1


def test_single_flight_computes_again_once_its_value_is_older_than_the_ttl() -> None:
    now = [100.0]
    values = iter(range(1, 10))
    flight = SingleFlight(lambda: next(values), ttl_seconds=5, clock=lambda: now[0])

    first = flight.get()
    now[0] += 4.9
    cached = flight.get()
    now[0] += 0.2
    fresh = flight.get()

    assert (first, cached, fresh) == (1, 1, 2)


def test_single_flight_keeps_no_failure() -> None:
    outcomes: list[Any] = [RuntimeError("database busy"), 42]
    lock = threading.Lock()

    def compute() -> int:
        with lock:
            outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    flight = SingleFlight(compute, ttl_seconds=60)
    with pytest.raises(RuntimeError, match="database busy"):
        flight.get()
    assert flight.get() == 42


def test_purchases_are_reported_by_finding_with_the_last_full_audit(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path, payfast_mode="offline"))
    healthy, lost = pay(services, "ok@example.com"), pay(services, "lost@example.com")
    work(services)
    services.identity.delete_user("lost@example.com")  # outside the system: the audit finds it
    services.scheduled_audit.run()
    unscannable = replace(services, journal=NoScan(services.journal), ledger=NoScan(services.ledger))  # type: ignore[arg-type]

    try:
        text = scrape(create_app(unscannable)).text
        last_audit = services.findings_index.last_audit()
        entries = services.findings_index.get_many([healthy, lost])
    finally:
        services.close()

    families = {family.name: family for family in text_string_to_metric_families(text)}

    by_finding = {sample.labels["finding"]: sample.value for sample in families["tenancy_purchases"].samples}
    assert by_finding["healthy"] == 1
    assert by_finding["identity_user_missing"] == 1
    assert sum(by_finding.values()) == 2
    assert last_audit is not None
    [stamp] = families["tenancy_last_audit_timestamp_seconds"].samples
    assert stamp.value == parse_timestamp(last_audit.finished_at).timestamp()
    assert (entries[healthy].finding, entries[lost].finding) == ("healthy", "identity_user_missing")
