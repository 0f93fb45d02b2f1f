"""`make soak`, short, on both backends: soak/run.py with 60 ITNs against the real server and two
real workers (embedded: SQLite and an SMTP server; AWS: moto's server, bootstrapped with
`tenancy aws bootstrap`), workers and the server killed with SIGKILL, and every fault of the
backend injected at a rate, then subscriptions, usage, members and the lifecycle at advancing
times; its last line is the summary, and it passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "soak" / "run.py"
SUMMARY = re.compile(
    r"^soak: payments=(?P<payments>\d+) tenants=(?P<tenants>\d+) healthy=(?P<healthy>\d+) "
    r"findings=(?P<findings>\d+) rejected=(?P<rejected>\d+) duplicates=(?P<duplicates>\d+) lost=(?P<lost>\d+)$"
)
# Rates far above the soak's defaults: 60 ITNs must meet every fault at least once.
FAULTS = {
    "local": "rate:store_throttled:0.05,rate:mail_refused:0.25,rate:mail_timeout:0.15",
    "aws": (
        "rate:store_throttled:0.01,rate:identity_throttled:0.1,rate:mail_refused:0.25,"
        "rate:mail_timeout:0.15,rate:queue_send_failed:0.2"
    ),
}


# On AWS at these fault rates (a quarter of the emails refused, a worker killed every second) the
# later phases add minutes of moto traffic in which a job's nine attempts can run out: the suite
# runs them on the embedded backend, and CI's `make soak BACKEND=aws N=150` on AWS, at the
# soak's default rates.
LATER_PHASES = {"local": [], "aws": ["--usage", "0", "--members", "0", "--no-lifecycle"]}


# A soak with every phase runs several minutes on a busy machine (the suite's default is 300 s).
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["local", "aws"])
def test_a_short_soak_with_kills_and_faults_provisions_every_payment_exactly_once(backend: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), "--backend", backend, "--n", "60", "--seed", "7", "--workers", "2",
         "--kill-every", "1", "--max-kills", "15", "--server-kills", "1", "--faults", FAULTS[backend],
         "--sweep-seconds", "1", "--stalled-after", "10",
         "--home", str(tmp_path / "home"), "--drain-timeout", "400", *LATER_PHASES[backend]],
        capture_output=True, text=True, timeout=700, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    summary = SUMMARY.match(result.stdout.strip().splitlines()[-1])
    assert summary, output
    counts = {name: int(value) for name, value in summary.groupdict().items()}
    assert counts["payments"] >= 60  # a post cut off by the killed server may be kept and sent again
    assert (counts["duplicates"], counts["lost"], counts["findings"]) == (0, 0, 0)
    assert counts["rejected"] >= 6  # the 10% invalid
    assert counts["healthy"] == counts["tenants"] > 0
    kills = re.search(r"(\d+) workers and (\d+) servers killed with SIGKILL", result.stdout)
    assert kills, output
    assert int(kills.group(1)) >= 1, output
    assert int(kills.group(2)) == 1, output
    injected = re.search(r"^soak: faults injected: (.+)$", result.stdout, re.MULTILINE)
    assert injected, output
    counted = dict(item.split("=") for item in injected.group(1).split(", "))
    applicable = {"local": {"store_throttled", "mail_refused", "mail_timeout"}}.get(backend, set(counted))
    assert all(int(counted[name]) > 0 for name in applicable), output
    if backend == "aws":
        return
    # The later phases ran and met what they are there to meet (their checks are in the PASS).
    assert re.search(r"^soak: usage records=\d+ replays=[1-9]\d* accepted=[1-9]", result.stdout, re.MULTILINE), output
    assert re.search(r"^soak: members: tenants=[1-9]\d* .* refused_for_seats=", result.stdout, re.MULTILINE), output
    moved = re.search(r"^soak: lifecycle steps=[1-9]\d* .* moved=(\d+)", result.stdout, re.MULTILINE)
    assert moved, output
    assert int(moved.group(1)) > 0, output


@pytest.mark.timeout(600)
def test_a_soak_without_faults_or_server_kills_counts_every_payment_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), "--n", "40", "--seed", "3", "--workers", "1", "--kill-every", "0",
         "--server-kills", "0", "--faults", "none", "--no-lifecycle", "--home", str(tmp_path / "home"),
         "--drain-timeout", "60"],
        capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    summary = SUMMARY.match(result.stdout.strip().splitlines()[-1])
    assert summary, output
    # Without kills every post is kept once: the first wave's 40 and the subscriptions' second wave.
    wave = re.search(r"after the first wave drains, (\d+) subscription ITNs: subscriptions=(\d+)", result.stdout)
    assert wave, output
    assert int(wave.group(2)) > 0, output
    assert int(summary["payments"]) == 40 + int(wave.group(1)), output
    assert int(summary["rejected"]) == 4, output
    assert "faults injected: none" in result.stdout, output
