"""itn_throughput: valid unique signed ITNs/s accepted by POST /payments/payfast/itn, vs the same
server's GET /healthz with the same client (another process) and concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import BenchError, Result, running_server

CLIENT = Path(__file__).resolve().parent / "load_client.py"


def load(base_url: str, kind: str, count: int, concurrency: int, run: str) -> dict[str, object]:
    finished = subprocess.run(
        [sys.executable, str(CLIENT), base_url, kind, str(count), str(concurrency), run],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if finished.returncode != 0:
        raise BenchError(f"load client failed: {finished.stderr[-500:]}")
    result: dict[str, object] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def rate(result: dict[str, object]) -> float:
    statuses = result["statuses"]
    assert isinstance(statuses, dict)
    seconds = result["seconds"]
    assert isinstance(seconds, float)
    return statuses.get("200", 0) / seconds


def run(work: Path, count: int, concurrency: int) -> Result:
    home = work / "itn"
    home.mkdir(parents=True, exist_ok=True)
    # No workers: this is the intake's throughput, not provisioning's.
    with running_server(home, "--workers", "0") as base_url:
        load(base_url, "healthz", min(count, 200), concurrency, "WARM")  # warm-up
        healthz = load(base_url, "healthz", count, concurrency, "H")
        itn = load(base_url, "itn", count, concurrency, "BENCHITN")
    accepted, floor = rate(itn), rate(healthz)
    statuses = itn["statuses"]
    assert isinstance(statuses, dict)
    if statuses.get("200", 0) != count:
        raise BenchError(f"not every ITN was accepted: {statuses}")
    ratio = accepted / floor
    return Result(
        id="itn_throughput",
        figures={"itn_per_s": round(accepted, 1), "itns": count, "concurrency": concurrency},
        floor={"what": "GET /healthz, same client and concurrency", "value": round(floor, 1), "unit": "req/s"},
        ratio=ratio,
        target="itn/healthz >= 0.5",
        met=ratio >= 0.5,
        extra={"itn_statuses": statuses, "healthz_statuses": healthz["statuses"]},
    )
