"""audit_scale: the full audit at the large size (1M purchases in a full run) vs at 100k, in time
and in peak memory, each audit in a child process of its own (`bench/audit_scan.py HOME`, the same
audit call as audit_scan), which reports its own peak RSS (VmHWM: the kernel's high-water mark of
that process since its exec; getrusage's ru_maxrss of a child would carry this large parent's peak).

Both homes are 1% broken (RB-001 4.2), so the findings grow with the purchases. Before each audit
the database file is read once, so that both meet a warm page cache. The child's baseline (the
interpreter, the imports and the opened services, with no audit) is measured the same way and
reported beside the peaks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from audit_scan import check_totals
from common import BenchError, Result, child_env, say

AUDIT_CHILD = Path(__file__).resolve().parent / "audit_scan.py"
TIME_TARGET = 11
RSS_TARGET = 2


def warm_page_cache(home: Path) -> None:
    with (home / "tenancy.db").open("rb") as database:
        while database.read(1 << 20):
            pass


def in_child(home: Path, *arguments: str) -> dict[str, Any]:
    """`bench/audit_scan.py HOME ARGUMENTS` in a process of its own; its JSON line, plus wall_s and
    peak_rss_mib."""
    out, err = home / "audit-child.out", home / "audit-child.err"
    command = [sys.executable, str(AUDIT_CHILD), str(home), *arguments]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        finished = subprocess.run(command, env=child_env(home), stdout=stdout, stderr=stderr, check=False)
        wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise BenchError(
            f"the audit child exited with {finished.returncode}: {err.read_text(errors='replace')[-1500:]}"
        )
    lines = [line for line in out.read_text().splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"the audit child printed no figures: {out.read_text()[-500:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    figures.update(wall_s=wall, peak_rss_mib=figures.pop("peak_rss_kib") / 1024)
    return figures


def child_audit(home: Path) -> dict[str, Any]:
    warm_page_cache(home)
    return in_child(home)


def baseline_rss_mib(home: Path) -> float:
    return float(in_child(home, "--baseline")["peak_rss_mib"])


def run(small_home: Path, small: int, small_broken: int, large_home: Path, large: int, large_broken: int) -> Result:
    measured = {}
    for name, home, tenants, broken in (
        ("small", small_home, small, small_broken),
        ("large", large_home, large, large_broken),
    ):
        figures = child_audit(home)
        check_totals(tenants, broken, figures["findings"], figures["healthy"])
        say(f"audit_scale: {tenants} tenants: {figures['seconds']:.2f} s, peak RSS {figures['peak_rss_mib']:.0f} MiB")
        measured[name] = figures
    baseline = baseline_rss_mib(small_home)
    time_ratio = measured["large"]["seconds"] / measured["small"]["seconds"]
    rss_ratio = measured["large"]["peak_rss_mib"] / measured["small"]["peak_rss_mib"]
    return Result(
        id="audit_scale",
        figures={
            "large_tenants": large,
            "large_audit_s": round(measured["large"]["seconds"], 3),
            "large_peak_rss_mib": round(measured["large"]["peak_rss_mib"], 1),
            "small_tenants": small,
            "small_peak_rss_mib": round(measured["small"]["peak_rss_mib"], 1),
            "rss_ratio": round(rss_ratio, 3),
            "baseline_rss_mib": round(baseline, 1),
            "size_ratio": round(large / small, 2),
        },
        floor={
            "what": f"the same audit at {small} tenants (child process)",
            "value": round(measured["small"]["seconds"], 3),
            "unit": "s",
        },
        ratio=time_ratio,
        target=f"time <= {TIME_TARGET}x and peak RSS <= {RSS_TARGET}x the small size's",
        met=time_ratio <= TIME_TARGET and rss_ratio <= RSS_TARGET,
        notes="each audit in its own child process (bench/audit_scan.py), peak RSS its VmHWM; "
        "baseline_rss_mib: the same child with services opened and no audit",
        extra={"small": measured["small"], "large": measured["large"]},
    )
