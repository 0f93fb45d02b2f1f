"""end_to_end_latency: p50/p95/p99 from ITN accepted (POST /payments/payfast/itn answered 200) to the
tenant active with its welcome email in the outbox, on a real `tenancy serve` with its in-process
worker threads, at a steady offered load of 50% of the provisioning capacity measured first on the
same server. Floor: the provision floor (provision_throughput.measure_floor)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from common import BenchError, Result, percentile, running_server
from provision_throughput import finished, itn_body, measure_floor, reader, wait_finished

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def post_itn(client: httpx.Client, run: str, number: int) -> float:
    """Posts one ITN; returns the monotonic time its 200 came back."""
    response = client.post("/payments/payfast/itn", content=itn_body(run, number), headers=FORM)
    if response.status_code != 200:
        raise BenchError(f"ITN {run}{number} answered {response.status_code}: {response.text[:200]}")
    return time.monotonic()


def capacity(client: httpx.Client, home: Path, jobs: int) -> float:
    """Jobs/s of this server's workers: a burst of `jobs` ITNs, from the first posted to the last done."""
    run = "CAP"
    started = time.monotonic()
    for number in range(jobs):
        post_itn(client, run, number)
    return jobs / (wait_finished(home, run, jobs, timeout=60 + jobs * 5) - started)


def steady_load(client: httpx.Client, home: Path, requests: int, rate: float) -> list[float]:
    """`requests` ITNs at a steady `rate`/s (one every 1/rate s, open loop) from a sender thread,
    while this thread polls the database every 5 ms; returns each one's seconds from accepted to done."""
    run = "E2E"
    accepted: dict[int, float] = {}
    failures: list[BaseException] = []

    def send() -> None:
        start = time.monotonic()
        try:
            for number in range(requests):
                delay = start + number / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                accepted[number] = post_itn(client, run, number)
        except BaseException as error:  # noqa: BLE001 - handed to the polling thread
            failures.append(error)

    sender = threading.Thread(target=send, daemon=True)
    done: dict[int, float] = {}
    connection = reader(home)
    deadline = time.monotonic() + requests / rate + 120
    try:
        sender.start()
        while len(done) < requests:
            if failures:
                raise failures[0]
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(done)}/{requests} tenants became active in time")
            now = time.monotonic()
            for number in finished(connection, run) - done.keys():
                done[number] = now
            time.sleep(0.005)
        sender.join()
    finally:
        connection.close()
    return [done[number] - accepted[number] for number in range(requests)]


def run(work: Path, requests: int, burst: int, workers: int, hashes: int, commits: int) -> Result:
    home = work / "e2e"
    home.mkdir(parents=True, exist_ok=True)
    floor = measure_floor(home, hashes, commits)
    with (
        running_server(home, "--workers", str(workers)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        post_itn(client, "WARM", 0)  # warm-up: the first request and the first job
        wait_finished(home, "WARM", 1, timeout=60)
        measured = capacity(client, home, burst)
        rate = measured * 0.5
        latencies = steady_load(client, home, requests, rate)
    p50, p95, p99 = (percentile(latencies, fraction) * 1000 for fraction in (0.5, 0.95, 0.99))
    ratio = p99 / floor.per_job_ms
    return Result(
        id="end_to_end_latency",
        figures={
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
            "p99_ms": round(p99, 1),
            "offered_per_s": round(rate, 2),
            "capacity_per_s": round(measured, 2),
            "requests": requests,
            "workers": workers,
        },
        floor=floor.document(),
        ratio=ratio,
        target="p99 <= 3x floor",
        met=ratio <= 3,
        notes=(
            f"`tenancy serve --workers {workers}` (in-process worker threads, default poll interval); "
            "done = tenant active and welcome email in the outbox, seen by polling the database every 5 ms"
        ),
    )
