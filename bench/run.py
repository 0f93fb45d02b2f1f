"""The benchmarks of issue 6, each measured against a floor taken in the same run on the same machine.

    .venv/bin/python bench/run.py --size full|tiny [--out DIR] [--only ID ...] [--keep]

Runs, in order: login_latency, itn_throughput, provision_throughput, end_to_end_latency,
diagnose_latency, audit_scan, repair_mttr, metrics_scrape, all on
the embedded backend (SQLite under a temporary TENANCY_HOME, `tenancy serve` as a real process on a
free 127.0.0.1 port, PayFast offline). Prints a table and writes DIR/latest.json and DIR/latest.md
(default DIR: bench/results): machine info and, per benchmark, its id, figures, floor, ratio,
target and whether the target was met. `--size tiny` runs each benchmark at a very small size
(seconds, for the test suite: no figure of it means anything). Tenants are seeded by bulk SQL
(bench/seed.py), not through HTTP. Exit 0 when every benchmark ran (met or not), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import audit_scan
import diagnose_latency
import end_to_end_latency
import itn_throughput
import login_latency
import metrics_scrape
import provision_throughput
import repair_mttr
from common import ROOT, Result, machine_info, say
from seed import break_identity_users, seed

SIZES: dict[str, dict[str, int]] = {
    "full": {
        "login_requests": 100,
        "verifies": 30,
        "itns": 5000,
        "concurrency": 32,
        "small_tenants": 1000,
        "large_tenants": 100_000,
        "diagnose_calls": 300,
        "cli_runs": 3,
        "provision_jobs": 60,
        "floor_hashes": 10,
        "floor_commits": 200,
        "e2e_requests": 150,
        "e2e_burst": 30,
        "e2e_workers": 2,
        "metrics_scrapes": 20,
    },
    "tiny": {
        "login_requests": 3,
        "verifies": 3,
        "itns": 40,
        "concurrency": 4,
        "small_tenants": 10,
        "large_tenants": 20,
        "diagnose_calls": 5,
        "cli_runs": 1,
        "provision_jobs": 2,
        "floor_hashes": 1,
        "floor_commits": 5,
        "e2e_requests": 4,
        "e2e_burst": 2,
        "e2e_workers": 2,
        "metrics_scrapes": 3,
    },
}
BENCHMARKS = (
    "login_latency",
    "itn_throughput",
    "provision_throughput",
    "end_to_end_latency",
    "diagnose_latency",
    "audit_scan",
    "repair_mttr",
    "metrics_scrape",
)


class Homes:
    """The seeded TENANCY_HOMEs, made once and shared: the large one is made healthy for
    diagnose_latency, then 1% broken for audit_scan and repair_mttr."""

    def __init__(self, work: Path, size: dict[str, int]) -> None:
        self.work = work
        self.size = size
        self._small: Path | None = None
        self._large: Path | None = None
        self.broken: list[int] | None = None

    def small(self) -> Path:
        if self._small is None:
            self._small = self._seed("small", self.size["small_tenants"])
        return self._small

    def large(self) -> Path:
        if self._large is None:
            self._large = self._seed("large", self.size["large_tenants"])
        return self._large

    def large_broken(self) -> tuple[Path, list[int]]:
        home = self.large()
        if self.broken is None:
            self.broken = break_identity_users(home, self.size["large_tenants"])
        return home, self.broken

    def _seed(self, name: str, tenants: int) -> Path:
        started = time.monotonic()
        seed(self.work / name, tenants, label=f" ({name})")
        say(f"seeded {tenants} tenants in {time.monotonic() - started:.1f} s")
        return self.work / name


def run_one(name: str, work: Path, size: dict[str, int], homes: Homes) -> Result:
    if name == "login_latency":
        return login_latency.run(work, size["login_requests"], size["verifies"])
    if name == "itn_throughput":
        return itn_throughput.run(work, size["itns"], size["concurrency"])
    if name == "provision_throughput":
        return provision_throughput.run(work, size["provision_jobs"], size["floor_hashes"], size["floor_commits"])
    if name == "end_to_end_latency":
        return end_to_end_latency.run(
            work,
            size["e2e_requests"],
            size["e2e_burst"],
            size["e2e_workers"],
            size["floor_hashes"],
            size["floor_commits"],
        )
    if name == "diagnose_latency":
        return diagnose_latency.run(
            homes.small(),
            size["small_tenants"],
            homes.large(),
            size["large_tenants"],
            size["diagnose_calls"],
            size["cli_runs"],
        )
    if name == "audit_scan":
        home, broken = homes.large_broken()
        return audit_scan.run(home, size["large_tenants"], len(broken))
    if name == "repair_mttr":
        home, broken = homes.large_broken()
        return repair_mttr.run(home, size["large_tenants"], broken[0])
    if name == "metrics_scrape":
        return metrics_scrape.run(homes.large(), size["large_tenants"], size["metrics_scrapes"])
    raise ValueError(name)


def figures_text(figures: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in figures.items())


def markdown(document: dict[str, Any]) -> str:
    machine = document["machine"]
    lines = [
        f"# Benchmarks ({document['size']}, {document['finished_at']})",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} CPUs, {machine['memory_gib']} GiB, "
        f"{machine['platform']}, Python {machine['python']}, SQLite {machine['sqlite']}.",
        "",
        "| id | figures | floor | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for result in document["benchmarks"]:
        floor = result["floor"]
        lines.append(
            f"| {result['id']} | {figures_text(result['figures'])} | {floor['what']}: {floor['value']} {floor['unit']} "
            f"| {result['ratio']} | {result['target']} | {'yes' if result['met'] else '**no**'} |"
        )
    for failure in document["errors"]:
        lines.append(f"| {failure['id']} | error: {failure['error']} | | | | **no** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where latest.json/md go")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--keep", action="store_true", help="keep the temporary TENANCY_HOMEs")
    arguments = parser.parse_args(argv)
    size = SIZES[arguments.size]
    work = Path(tempfile.mkdtemp(prefix="tenancy-bench-"))
    homes = Homes(work, size)
    results: list[Result] = []
    errors: list[dict[str, str]] = []
    started = time.monotonic()
    try:
        for name in arguments.only or BENCHMARKS:
            say(f"{name} ({arguments.size}) ...")
            began = time.monotonic()
            try:
                result = run_one(name, work, size, homes)
            except Exception as error:  # noqa: BLE001 - one failed benchmark must not hide the others
                traceback.print_exc()
                errors.append({"id": name, "error": f"{type(error).__name__}: {error}"})
                continue
            results.append(result)
            say(
                f"{name}: {figures_text(result.figures)}; floor {result.floor['value']} {result.floor['unit']}; "
                f"ratio {result.ratio:.3f} ({result.target}: {'met' if result.met else 'MISSED'}) "
                f"[{time.monotonic() - began:.1f} s]"
            )
    finally:
        if arguments.keep or errors:
            say(f"homes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    document = {
        "size": arguments.size,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine_info(),
        "benchmarks": [result.as_document() for result in results],
        "errors": errors,
    }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(document)
    (arguments.out / "latest.md").write_text(table)
    print(table, flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
