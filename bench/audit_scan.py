"""audit_scan: run_audit over every tenant (1% broken as RB-001 4.2) vs a raw SQL full scan of the same rows."""

from __future__ import annotations

import sqlite3
import time
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


def run(home: Path, tenants: int, broken: int) -> Result:
    raw_scan(home)  # warm the page cache for both
    floor, rows = min(raw_scan(home) for _ in range(3))
    services = open_services(home)
    try:
        now = services.clock.now()
        with progress_bar(f"audit over {tenants} tenants", None) as bar:
            started = time.perf_counter()
            since = now - timedelta(days=3650)
            report = run_audit(
                services.evidence_stores, since=since, now=now, progress=bar.advance, trail=services.trail
            )
            seconds = time.perf_counter() - started
    finally:
        services.close()
    if report.totals.findings != broken or report.totals.healthy != tenants - broken:
        raise BenchError(f"audit found {report.totals.findings} findings, {report.totals.healthy} healthy")
    ratio = seconds / floor
    return Result(
        id="audit_scan",
        figures={"audit_s": round(seconds, 4), "tenants": tenants, "findings": report.totals.findings, "rows": rows},
        floor={"what": "raw SQL SELECT * of the same tables (best of 3)", "value": round(floor, 6), "unit": "s"},
        ratio=ratio,
        target="audit <= 3x floor",
        met=ratio <= 3,
    )
