"""login_latency: POST /auth/login p50 on a real server vs one argon2id verify at the configured cost."""

from __future__ import annotations

import time
from pathlib import Path

import argon2
import httpx
from common import BenchError, Result, median, open_services, percentile, running_server, settings_for
from seed import email, seed

PASSWORD = "Bench-Passw0rd!"  # noqa: S105 - a benchmark account's password


def run(work: Path, requests: int, verifies: int) -> Result:
    home = work / "login"
    seed(home, 1)
    services = open_services(home)
    try:
        # A CONFIRMED user with a known password: every sign-in succeeds, so the throttle never locks.
        services.identity.set_password(email(0), PASSWORD, permanent=True)
    finally:
        services.close()
    settings = settings_for(home)
    hasher = argon2.PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=min(4, settings.password_hash_memory_kib // 8),
        type=argon2.Type.ID,
    )
    hashed = hasher.hash(PASSWORD)
    verify_times = []
    for _ in range(verifies):
        started = time.perf_counter()
        hasher.verify(hashed, PASSWORD)
        verify_times.append(time.perf_counter() - started)
    floor = median(verify_times) * 1000
    with running_server(home, "--workers", "0") as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        times = []
        for attempt in range(requests + 2):
            started = time.perf_counter()
            response = client.post("/auth/login", json={"email": email(0), "password": PASSWORD})
            elapsed = time.perf_counter() - started
            if response.status_code != 200 or "id_token" not in response.text:
                log = (home / "server.log").read_text(errors="replace")[-2000:]
                raise BenchError(f"login answered {response.status_code}: {response.text[:200]}; server log: {log}")
            if attempt >= 2:  # the first two warm the server up
                times.append(elapsed)
    p50 = percentile(times, 0.5) * 1000
    ratio = p50 / floor
    return Result(
        id="login_latency",
        figures={
            "p50_ms": round(p50, 2),
            "p95_ms": round(percentile(times, 0.95) * 1000, 2),
            "requests": requests,
            "argon2_time_cost": settings.password_hash_time_cost,
            "argon2_memory_kib": settings.password_hash_memory_kib,
        },
        floor={"what": "one argon2id verify at the configured cost (median)", "value": round(floor, 2), "unit": "ms"},
        ratio=ratio,
        target="p50 <= 1.5x floor",
        met=ratio <= 1.5,
    )
