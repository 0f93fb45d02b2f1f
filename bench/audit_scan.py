"""audit_scan: run_audit over every tenant (1% broken as RB-001 4.2) vs a raw SQL full scan of the same rows.

`audit()` is the one place the benchmarks call the audit: audit_scan in-process, audit_scale in a
child process (`python bench/audit_scan.py HOME [--baseline]`, which prints one JSON line: seconds,
findings, healthy and its own peak RSS; with --baseline it only opens the services and closes them),
so that each audit's own peak RSS can be read.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from common import BenchError, Result, open_services, progress_bar

from tenancy.runbook.audit import run_audit

# What the audit reads: every store the evidence comes from.
TABLES = ("provisioning", "tenants", "payments", "identity_users", "users", "outbox", "queue_messages")


def raw_scan(home: Path) -> tuple[float, int]:
    connection = sqlite3.connect(home / "tenancy.db")
    try:
        started = time.perf_counter()
        rows = sum(len(connection.execute(f"SELECT * FROM {table}").fetchall()) for table in TABLES)  # noqa: S608
        return time.perf_counter() - started, rows
    finally:
        connection.close()


def audit(home: Path, progress: Callable[[int], None] | None = None) -> tuple[float, int, int]:
    """The full audit over every purchase of the last ten years: (seconds, findings, healthy)."""
    services = open_services(home)
    try:
        now = services.clock.now()
        since = now - timedelta(days=3650)
        started = time.perf_counter()
        report = run_audit(services.evidence_stores, since=since, now=now, progress=progress, trail=services.trail)
        seconds = time.perf_counter() - started
    finally:
        services.close()
    return seconds, report.totals.findings, report.totals.healthy


def check_totals(tenants: int, broken: int, findings: int, healthy: int) -> None:
    if findings != broken or healthy != tenants - broken:
        raise BenchError(f"audit found {findings} findings, {healthy} healthy (expected {broken}, {tenants - broken})")


def run(home: Path, tenants: int, broken: int) -> Result:
    raw_scan(home)  # warm the page cache for both
    floor, rows = min(raw_scan(home) for _ in range(3))
    with progress_bar(f"audit over {tenants} tenants", None) as bar:
        seconds, findings, healthy = audit(home, bar.advance)
    check_totals(tenants, broken, findings, healthy)
    ratio = seconds / floor
    return Result(
        id="audit_scan",
        figures={"audit_s": round(seconds, 4), "tenants": tenants, "findings": findings, "rows": rows},
        floor={"what": "raw SQL SELECT * of the same tables (best of 3)", "value": round(floor, 6), "unit": "s"},
        ratio=ratio,
        target="audit <= 3x floor",
        met=ratio <= 3,
    )


def peak_rss_kib() -> int:
    """This process's peak RSS since it was exec'd (VmHWM). Not getrusage: Linux carries the
    parent's peak at fork and exec into the child's ru_maxrss, so a child of a large parent would
    report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise BenchError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> int:
    """The child of audit_scale: one audit (or, with --baseline, none), its figures as one JSON line."""
    home = Path(argv[0])
    if "--baseline" in argv[1:]:
        open_services(home).close()
        figures: dict[str, float] = {}
    else:
        seconds, findings, healthy = audit(home)
        figures = {"seconds": seconds, "findings": findings, "healthy": healthy}
    print(json.dumps({**figures, "peak_rss_kib": peak_rss_kib()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
