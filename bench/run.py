"""The benchmarks of issue 6, each measured against a floor taken in the same run on the same machine.

    .venv/bin/python bench/run.py --size full|tiny [--out DIR] [--only ID ...] [--set KEY=N ...] [--keep]

Runs, in order: login_latency, itn_throughput, provision_throughput, end_to_end_latency,
diagnose_latency, audit_scan, audit_scale, repair_mttr, metrics_scrape, console_latency,
usage_record, all on the embedded backend (SQLite under a temporary TENANCY_HOME, `tenancy serve` as
a real process on a free 127.0.0.1 port, PayFast offline; itn_throughput and usage_record need wrk on
the PATH), then lambda_cold_start (the AWS functions' start-up, in fresh interpreters, no network).
`--only` keeps this
order; `--set huge_tenants=300000` overrides one number of the size (see SIZES), and the results
say so. Prints a table and writes DIR/latest.json and DIR/latest.md (default DIR: bench/results; a
partial run overwrites them there too): machine info and, per benchmark, its id, figures, floor, ratio,
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

import audit_scale
import audit_scan
import console_latency
import diagnose_latency
import end_to_end_latency
import itn_throughput
import lambda_cold_start
import login_latency
import metrics_scrape
import provision_throughput
import repair_mttr
import usage_record
from common import ROOT, Result, machine_info, say
from seed import break_identity_users, seed

SIZES: dict[str, dict[str, int]] = {
    "full": {
        "login_requests": 100,
        "verifies": 30,
        "itn_seconds": 10,
        "itn_bodies": 60_000,  # more than 10 s can send (an exhausted run is an error, never a repeat)
        "concurrency": 32,
        "small_tenants": 1000,
        "large_tenants": 100_000,
        "huge_tenants": 1_000_000,
        "diagnose_calls": 300,
        "cli_runs": 3,
        "provision_jobs": 60,
        "floor_hashes": 10,
        "floor_commits": 200,
        "e2e_requests": 150,
        "e2e_burst": 30,
        "e2e_workers": 2,
        "metrics_scrapes": 20,
        "console_requests": 20,
        "console_budget_s": 90,  # per page and home: at least 3 loads, then no more once 90 s are spent
        "usage_bodies": 60_000,  # more than 10 s can send, as itn_bodies (one enterprise tenant per 900)
        "cold_start_runs": 15,
    },
    "tiny": {
        "login_requests": 3,
        "verifies": 3,
        "itn_seconds": 1,
        "itn_bodies": 5000,
        "concurrency": 4,
        "small_tenants": 10,
        "large_tenants": 200,  # two broken (1%), so one is left after repair_mttr repairs the first
        "huge_tenants": 2000,
        "diagnose_calls": 5,
        "cli_runs": 1,
        "provision_jobs": 2,
        "floor_hashes": 1,
        "floor_commits": 5,
        "e2e_requests": 4,
        "e2e_burst": 2,
        "e2e_workers": 2,
        "metrics_scrapes": 3,
        "console_requests": 2,
        "console_budget_s": 30,
        "usage_bodies": 5000,
        "cold_start_runs": 1,
    },
}
BENCHMARKS = (
    "login_latency",
    "itn_throughput",
    "provision_throughput",
    "end_to_end_latency",
    "diagnose_latency",
    "audit_scan",
    "audit_scale",
    "repair_mttr",
    "metrics_scrape",
    "console_latency",
    "usage_record",
    "lambda_cold_start",
)


class Homes:
    """The seeded TENANCY_HOMEs, made once and shared: the small and large ones are made healthy for
    diagnose_latency, then 1% broken (RB-001 4.2) for audit_scan, audit_scale, repair_mttr and
    console_latency; the huge one (audit_scale only) is 1% broken too."""

    def __init__(self, work: Path, size: dict[str, int]) -> None:
        self.work = work
        self.size = size
        self._seeded: dict[str, Path] = {}
        self._broken: dict[str, list[int]] = {}

    def small(self) -> Path:
        return self._home("small")

    def large(self) -> Path:
        return self._home("large")

    def small_broken(self) -> tuple[Path, list[int]]:
        return self._home_broken("small")

    def large_broken(self) -> tuple[Path, list[int]]:
        return self._home_broken("large")

    def huge_broken(self) -> tuple[Path, list[int]]:
        return self._home_broken("huge")

    def _home(self, name: str) -> Path:
        if name not in self._seeded:
            self._seeded[name] = self._seed(name, self.size[f"{name}_tenants"])
        return self._seeded[name]

    def _home_broken(self, name: str) -> tuple[Path, list[int]]:
        home = self._home(name)
        if name not in self._broken:
            self._broken[name] = break_identity_users(home, self.size[f"{name}_tenants"])
        return home, self._broken[name]

    def _seed(self, name: str, tenants: int) -> Path:
        started = time.monotonic()
        seed(self.work / name, tenants, label=f" ({name})")
        say(f"seeded {tenants} tenants in {time.monotonic() - started:.1f} s")
        return self.work / name


def run_one(name: str, work: Path, size: dict[str, int], homes: Homes) -> Result:
    if name == "login_latency":
        return login_latency.run(work, size["login_requests"], size["verifies"])
    if name == "itn_throughput":
        return itn_throughput.run(work, size["itn_seconds"], size["itn_bodies"], size["concurrency"])
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
    if name == "audit_scale":
        home, broken = homes.large_broken()
        huge, huge_broken = homes.huge_broken()
        return audit_scale.run(home, size["large_tenants"], len(broken), huge, size["huge_tenants"], len(huge_broken))
    if name == "repair_mttr":
        home, broken = homes.large_broken()
        return repair_mttr.run(home, size["large_tenants"], broken[0])
    if name == "metrics_scrape":
        return metrics_scrape.run(homes.large(), size["large_tenants"], size["metrics_scrapes"])
    if name == "console_latency":
        small, small_broken = homes.small_broken()
        large, large_broken = homes.large_broken()
        return console_latency.run(
            small,
            size["small_tenants"],
            small_broken,
            large,
            size["large_tenants"],
            large_broken,
            size["console_requests"],
            size["console_budget_s"],
        )
    if name == "usage_record":
        return usage_record.run(work, size["itn_seconds"], size["usage_bodies"], size["concurrency"])
    if name == "lambda_cold_start":
        return lambda_cold_start.run(work, size["cold_start_runs"])
    raise ValueError(name)


def overrides(pairs: list[str], size: dict[str, int], parser: argparse.ArgumentParser) -> dict[str, int]:
    chosen = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in size or not value.isdigit():
            parser.error(f"--set {pair}: expected KEY=N with KEY one of {', '.join(sorted(size))}")
        chosen[key] = int(value)
    return chosen


def figures_text(figures: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in figures.items())


def markdown(document: dict[str, Any]) -> str:
    machine = document["machine"]
    chosen = document.get("overrides")
    changed = f", with {', '.join(f'{key}={value}' for key, value in chosen.items())}" if chosen else ""
    lines = [
        f"# Benchmarks ({document['size']}{changed}, {document['finished_at']})",
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
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=N", help="override numbers of the size, e.g. huge_tenants=300000"
    )
    arguments = parser.parse_args(argv)
    size = {**SIZES[arguments.size], **overrides(arguments.set, SIZES[arguments.size], parser)}
    work = Path(tempfile.mkdtemp(prefix="tenancy-bench-"))
    homes = Homes(work, size)
    results: list[Result] = []
    errors: list[dict[str, str]] = []
    started = time.monotonic()
    try:
        # In BENCHMARKS' order whatever the order of --only: the shared homes change along the way.
        for name in [name for name in BENCHMARKS if not arguments.only or name in arguments.only]:
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
        **({"overrides": overrides(arguments.set, size, parser)} if arguments.set else {}),
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
