"""`bench/run.py --size tiny` runs every benchmark once, so none of them can rot. No timing asserts:
a target may be met or missed at this size; only the shape of the results is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = {
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
}


def test_every_benchmark_runs_at_tiny_size(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--size", "tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    document = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.md").read_text().startswith("# Benchmarks")
    assert document["errors"] == []
    assert document["machine"]["cpu_count"]
    results = {result["id"]: result for result in document["benchmarks"]}
    assert set(results) == BENCHMARKS
    for result in results.values():
        assert result["figures"], result
        assert all(isinstance(value, int | float) for value in result["figures"].values()), result
        assert isinstance(result["floor"]["value"], int | float), result
        assert result["floor"]["what"], result
        assert result["floor"]["unit"], result
        assert isinstance(result["ratio"], int | float), result
        assert isinstance(result["met"], bool), result
        assert result["target"], result
