"""diagnose_latency: `diagnose --email` at 1k and at 100k tenants, in-process (and one cold CLI run each)."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

from common import Result, child_env, median, open_services, percentile, tenancy_command
from seed import email

from tenancy.runbook.evidence import Selector


def in_process(home: Path, tenants: int, calls: int) -> list[float]:
    services = open_services(home)
    try:
        runbook = services.runbook
        rng = random.Random(tenants)
        runbook.diagnose(Selector(email=email(0)))  # warm-up
        times = []
        for _ in range(calls):
            selector = Selector(email=email(rng.randrange(tenants)))
            started = time.perf_counter()
            diagnosis = runbook.diagnose(selector)
            times.append(time.perf_counter() - started)
            assert diagnosis.healthy, diagnosis.finding
        return times
    finally:
        services.close()


def cli(home: Path, tenants: int, runs: int) -> float:
    times = []
    for run in range(runs):
        started = time.perf_counter()
        subprocess.run(
            tenancy_command("diagnose", "--email", email((run * 7919) % tenants)),
            env=child_env(home),
            capture_output=True,
            check=True,
            timeout=120,
        )
        times.append(time.perf_counter() - started)
    return median(times)


def run(small: Path, small_tenants: int, large: Path, large_tenants: int, calls: int, cli_runs: int) -> Result:
    small_times = in_process(small, small_tenants, calls)
    large_times = in_process(large, large_tenants, calls)
    small_p50, large_p50 = percentile(small_times, 0.5) * 1000, percentile(large_times, 0.5) * 1000
    small_cli, large_cli = cli(small, small_tenants, cli_runs), cli(large, large_tenants, cli_runs)
    ratio = large_p50 / small_p50
    return Result(
        id="diagnose_latency",
        figures={
            "large_tenants": large_tenants,
            "large_p50_ms": round(large_p50, 3),
            "large_p95_ms": round(percentile(large_times, 0.95) * 1000, 3),
            "small_tenants": small_tenants,
            "small_p50_ms": round(small_p50, 3),
            "calls": calls,
            "cli_large_s": round(large_cli, 3),
            "cli_small_s": round(small_cli, 3),
            "cli_ratio": round(large_cli / small_cli, 3),
        },
        floor={
            "what": f"in-process diagnose p50 at {small_tenants} tenants",
            "value": round(small_p50, 3),
            "unit": "ms",
        },
        ratio=ratio,
        target="large/small p50 <= 1.5",
        met=ratio <= 1.5,
    )
