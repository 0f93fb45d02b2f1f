"""metrics_scrape: GET /metrics over every tenant from a real `tenancy serve`, each scrape computed
afresh (TENANCY_METRICS_CACHE_SECONDS=0), vs what no scrape can avoid: the raw SQL counts the
metrics stand on plus one GET /healthz round trip (same client); and four concurrent scrapes with
the default cache, which share one computation."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from common import BenchError, Result, median, percentile, running_server
from prometheus_client.parser import text_string_to_metric_families

from tenancy.config import Settings
from tenancy.domain.clock import format_timestamp

TOKEN = "bench-metrics-token-0123456789"  # noqa: S105 - a throwaway server's
CONCURRENT = 4
# What the metrics stand on, counted by SQLite alone in as few statements as it can: jobs by status,
# ITNs by verdict, and (for the error rate) the succeeded jobs updated within the alert window and
# how many of them took more than one attempt.
RAW_COUNTS = (
    "SELECT status, COUNT(*) FROM provisioning GROUP BY status",
    "SELECT verdict, COUNT(*) FROM payments GROUP BY verdict",
    "SELECT COUNT(*), SUM(attempts > 1) FROM provisioning WHERE status = 'succeeded' AND updated_at >= ?",
)


def raw_counts(home: Path) -> float:
    window_start = format_timestamp(datetime.now(UTC) - timedelta(minutes=Settings().alert_window_minutes))
    connection = sqlite3.connect(f"file:{home / 'tenancy.db'}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        for sql in RAW_COUNTS:
            connection.execute(sql, (window_start,) if "?" in sql else ()).fetchall()
        return time.perf_counter() - started
    finally:
        connection.close()


def round_trip(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    client.get(path).raise_for_status()
    return time.perf_counter() - started


def scrape(client: httpx.Client) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(f"/metrics answered {response.status_code}: {response.text[:200]}")
    return seconds, response.text


def succeeded_jobs(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tenancy_jobs" and sample.labels.get("status") == "succeeded":
                return sample.value
    raise BenchError("no tenancy_jobs{status=succeeded} in the scrape")


def run(home: Path, tenants: int, scrapes: int) -> Result:
    raw_counts(home)  # warm the page cache
    server_env = {"TENANCY_METRICS_TOKEN": TOKEN}
    with (
        running_server(home, "--workers", "0", TENANCY_METRICS_CACHE_SECONDS="0", **server_env) as base_url,
        httpx.Client(base_url=base_url, timeout=600) as client,
    ):
        if client.get("/metrics").status_code != 401:
            raise BenchError("/metrics answered without the token")
        _, text = scrape(client)  # warm-up
        if succeeded_jobs(text) != tenants:
            raise BenchError(f"the scrape counted {succeeded_jobs(text)} succeeded jobs, not {tenants}")
        healthz = median([round_trip(client, "/healthz") for _ in range(20)])
        # Interleaved, so that the floor and the scrapes meet the same load on the machine.
        raw: list[float] = []
        times: list[float] = []
        for _ in range(scrapes):
            raw.append(raw_counts(home))
            times.append(scrape(client)[0])
    # The default cache: the concurrent scrapes of a cold server share one computation.
    with running_server(home, "--workers", "0", **server_env) as base_url, ThreadPoolExecutor(CONCURRENT) as pool:
        clients = [httpx.Client(base_url=base_url, timeout=600) for _ in range(CONCURRENT)]
        try:
            for client in clients:
                round_trip(client, "/healthz")  # connected before the scrapes start together
            concurrent = [seconds for seconds, _ in pool.map(scrape, clients)]
        finally:
            for client in clients:
                client.close()
    counts = median(raw)
    floor = counts + healthz
    p50 = median(times)
    ratio = p50 / floor
    return Result(
        id="metrics_scrape",
        figures={
            "tenants": tenants,
            "p50_ms": round(p50 * 1000, 2),
            "p95_ms": round(percentile(times, 0.95) * 1000, 2),
            "scrapes": scrapes,
            "concurrent": CONCURRENT,
            "concurrent_max_ms": round(max(concurrent) * 1000, 2),
            "raw_counts_ms": round(counts * 1000, 3),
            "healthz_ms": round(healthz * 1000, 3),
        },
        floor={
            "what": "raw SQL of the counts the metrics need + GET /healthz (medians, interleaved with the scrapes)",
            "value": round(floor * 1000, 3),
            "unit": "ms",
        },
        ratio=ratio,
        target="scrape p50 <= 2x floor",
        met=ratio <= 2,
        notes="every tenant was seeded within the alert window, so each scrape also counts them all as recent",
    )
