"""`make soak`, short: soak/run.py with 60 ITNs against the real server and two real workers, one
of them killed with SIGKILL at least once; its last line is the summary, and it passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "soak" / "run.py"
SUMMARY = re.compile(
    r"^soak: payments=(?P<payments>\d+) tenants=(?P<tenants>\d+) healthy=(?P<healthy>\d+) "
    r"findings=(?P<findings>\d+) rejected=(?P<rejected>\d+) duplicates=(?P<duplicates>\d+) lost=(?P<lost>\d+)$"
)


def test_a_short_soak_with_killed_workers_provisions_every_payment_exactly_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), "--n", "60", "--seed", "7", "--workers", "2", "--kill-every", "0.5",
         "--home", str(tmp_path / "home"), "--drain-timeout", "60"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    summary = SUMMARY.match(result.stdout.strip().splitlines()[-1])
    assert summary, output
    counts = {name: int(value) for name, value in summary.groupdict().items()}
    assert counts["payments"] == 60
    assert (counts["duplicates"], counts["lost"], counts["findings"]) == (0, 0, 0)
    assert counts["rejected"] == 6  # the 10% invalid
    assert counts["healthy"] == counts["tenants"] > 0
    kills = re.search(r"(\d+) workers killed with SIGKILL", result.stdout)
    assert kills, output
    assert int(kills.group(1)) >= 1, output
