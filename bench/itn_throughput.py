"""itn_throughput: valid, unique, signed ITNs/s accepted by POST /payments/payfast/itn, vs the same
server's GET /healthz, both driven by wrk (Debian's package) with the same script, threads,
connections and duration, so the load generator is not the bottleneck (a Python client was: ~500
/healthz req/s on 2 cores, where wrk drives several thousand).

The ITN bodies are built and signed before the clock starts, one per line of a file that
bench/wrk_requests.lua cycles through, one body per request: every ITN is unique and valid (PayFast's
source and server-confirmation checks are off in offline mode; signature, merchant and amount stay
on). wrk runs for a fixed time, so there are more bodies than the run can send; a run that used them
all up is an error (raise `itn_bodies`), never a silently repeated body. No wrk on the PATH is an
error too, never a fallback to another client.
"""

from __future__ import annotations

import json
import resource
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
from common import BenchError, Result, running_server, say

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.payments.simulator import build_itn, encode_form

SCRIPT = Path(__file__).resolve().parent / "wrk_requests.lua"
ITN_PATH = "/payments/payfast/itn"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# One wrk thread drives tens of thousands of requests/s, far beyond one `tenancy serve` process;
# the other core is left to the server. Its CPU use is reported (generator_cpu_pct) to show it.
WRK_THREADS = 1
WARM_UP_ITNS = 50
INSTALL_HINT = "itn_throughput needs wrk on the PATH (Debian: apt-get install wrk; .ci/run installs it)"


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError(INSTALL_HINT)
    return found


def itn_bodies(count: int, run: str, first_payment: int) -> list[bytes]:
    """Valid, signed, unique ITNs (built before the clock starts); PayFast's payment ids from
    `first_payment` on, so that two runs never share one (a shared id is a duplicate ITN)."""
    return [
        encode_form(
            build_itn(
                transaction_id=f"TXN-{run}{number:07d}",
                email=f"{run.lower()}{number:07d}@example.com",
                plan="starter",
                amount="99.00",
                merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
                passphrase=PAYFAST_SANDBOX_PASSPHRASE,
                pf_payment_id=str(first_payment + number),
            )
        )
        for number in range(count)
    ]


def write_bodies(path: Path, bodies: list[bytes]) -> None:
    for body in bodies:
        if b"\n" in body or b"\r" in body:
            raise BenchError("an ITN body holds a line break; the wrk script reads one body per line")
    path.write_bytes(b"\n".join(bodies) + b"\n")


def wrk(
    base_url: str,
    seconds: float,
    concurrency: int,
    method: str,
    path: str,
    bodies: Path | None = None,
    *,
    headers: tuple[str, ...] = (),
    bodies_size: str = "itn_bodies",
) -> dict[str, Any]:
    """One wrk run; its JSON summary plus the CPU seconds wrk itself used (cpu_s). `headers`: the
    bodies' Content-Type and Authorization (wrk_requests.lua's TYPE and AUTHORIZATION);
    `bodies_size`: the SIZES number to raise when the bodies run out."""
    arguments = [method, path, str(WRK_THREADS), *([str(bodies), *headers] if bodies else [])]
    command = [
        wrk_binary(),
        f"--threads={WRK_THREADS}",
        f"--connections={concurrency}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=30s",
        f"--script={SCRIPT}",
        base_url,
        "--",
        *arguments,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode != 0:
        raise BenchError(f"wrk exited with {finished.returncode}: {(finished.stderr or finished.stdout)[-500:]}")
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"wrk printed no summary: {finished.stdout[-500:]} {finished.stderr[-500:]}")
    summary: dict[str, Any] = json.loads(lines[-1])
    summary["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if summary["exhausted"]:
        raise BenchError(
            f"wrk sent all {summary['sent']} pre-built bodies before the {seconds} s run ended: "
            f"raise {bodies_size} (bench/run.py SIZES) rather than repeat a request"
        )
    errors = summary["errors"]
    if errors["connect"] or errors["write"] or errors["read"]:
        raise BenchError(f"wrk saw socket errors: {errors}")
    return summary


def ok_rate(summary: dict[str, Any]) -> float:
    return float(summary["statuses"].get("200", 0)) / float(summary["seconds"])


def check_ledger(home: Path, answered: int, sent: int) -> dict[str, int]:
    """Every ITN wrk sent was new and valid: the ledger holds accepted entries only, one per
    pf_payment_id, at least as many as wrk saw answered (those in flight at the end may be there too)."""
    connection = sqlite3.connect(f"file:{home / 'tenancy.db'}?mode=ro", uri=True)
    try:
        verdicts = dict(connection.execute("SELECT verdict, COUNT(*) FROM payments GROUP BY verdict").fetchall())
        distinct = connection.execute("SELECT COUNT(DISTINCT pf_payment_id) FROM payments").fetchone()[0]
    finally:
        connection.close()
    accepted = int(verdicts.get("accepted", 0)) - WARM_UP_ITNS
    if set(verdicts) != {"accepted"} or distinct != accepted + WARM_UP_ITNS:
        raise BenchError(f"the ledger holds more than new accepted ITNs: {verdicts}, {distinct} distinct")
    if not answered <= accepted <= sent:
        raise BenchError(f"{accepted} ITNs accepted by the ledger, but wrk saw {answered} answered of {sent} sent")
    return {"ledger_accepted": accepted}


def run(work: Path, seconds: float, bodies_count: int, concurrency: int) -> Result:
    wrk_binary()  # before any work: no wrk, no benchmark
    home = work / "itn"
    home.mkdir(parents=True, exist_ok=True)
    bodies = home / "itn-bodies.txt"
    write_bodies(bodies, itn_bodies(bodies_count, "BENCHITN", 5_000_000_000))
    warm_up = itn_bodies(WARM_UP_ITNS, "WARMITN", 4_000_000_000)
    # No workers: this is the intake's throughput, not provisioning's.
    with running_server(home, "--workers", "0") as base_url:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for body in warm_up:
                if client.post(ITN_PATH, content=body, headers=FORM).status_code != 200:
                    raise BenchError("a warm-up ITN was not accepted")
        wrk(base_url, 1, concurrency, "GET", "/healthz")  # warm-up
        # The floor before and after the ITNs; the higher of the two counts (the stricter ratio).
        healthz_runs = [wrk(base_url, seconds, concurrency, "GET", "/healthz")]
        itn = wrk(base_url, seconds, concurrency, "POST", ITN_PATH, bodies)
        healthz_runs.append(wrk(base_url, seconds, concurrency, "GET", "/healthz"))
    for healthz in healthz_runs:
        if set(healthz["statuses"]) != {"200"}:
            raise BenchError(f"GET /healthz answered {healthz['statuses']}")
    statuses = itn["statuses"]
    if set(statuses) != {"200"}:
        raise BenchError(f"not every ITN was accepted: {statuses}")
    ledger = check_ledger(home, statuses["200"], itn["sent"])
    accepted = ok_rate(itn)
    floor_run = max(healthz_runs, key=ok_rate)
    floor = ok_rate(floor_run)
    ratio = accepted / floor
    say(
        "itn_throughput: /healthz "
        + ", ".join(
            f"{ok_rate(run):.0f} req/s (wrk CPU {100 * run['cpu_s'] / run['seconds']:.0f}%)" for run in healthz_runs
        )
        + f"; ITN {accepted:.0f}/s (wrk CPU {100 * itn['cpu_s'] / itn['seconds']:.0f}%)"
    )
    return Result(
        id="itn_throughput",
        figures={
            "itn_per_s": round(accepted, 1),
            "itns": statuses["200"],
            "seconds": round(itn["seconds"], 2),
            "concurrency": concurrency,
            "itn_p50_ms": round(itn["latency_p50_ms"], 2),
            "itn_p99_ms": round(itn["latency_p99_ms"], 2),
            "healthz_low_per_s": round(min(ok_rate(run) for run in healthz_runs), 1),
            "generator_cpu_pct": round(100 * floor_run["cpu_s"] / floor_run["seconds"], 1),
        },
        floor={
            "what": f"GET /healthz by wrk, same script, {WRK_THREADS} thread and connections "
            "(the higher of the runs before and after)",
            "value": round(floor, 1),
            "unit": "req/s",
        },
        ratio=ratio,
        target="itn/healthz >= 0.5",
        met=ratio >= 0.5,
        notes="wrk with pre-signed unique ITN bodies (bench/wrk_requests.lua); generator_cpu_pct: wrk's CPU "
        "during the floor run, as a share of one core",
        extra={
            "itn_statuses": statuses,
            "healthz_statuses": [run["statuses"] for run in healthz_runs],
            "healthz_per_s": [round(ok_rate(run), 1) for run in healthz_runs],
            "wrk_threads": WRK_THREADS,
            "bodies": bodies_count,
            **ledger,
        },
    )
