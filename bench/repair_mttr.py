"""repair_mttr: wall time of three cold CLI processes (diagnose, repair --yes, verify) for a tenant
broken as RB-001 4.2 (identity user missing), vs RB-001's one-hour escalation limit."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from common import BenchError, Result, child_env, tenancy_command
from seed import email

ESCALATION_SECONDS = 3600.0
TARGET_SECONDS = 5.0


def run(home: Path, tenants: int, broken_number: int) -> Result:
    env = child_env(home)
    steps = (("diagnose", 1), ("repair", 0), ("verify", 0))  # diagnose exits 1: the tenant is unhealthy
    figures: dict[str, float] = {"tenants": tenants}
    total = 0.0
    for command, expected in steps:
        arguments = [command, "--email", email(broken_number)] + (["--yes"] if command == "repair" else [])
        started = time.perf_counter()
        finished = subprocess.run(tenancy_command(*arguments), env=env, capture_output=True, text=True, timeout=600)
        elapsed = time.perf_counter() - started
        if finished.returncode != expected:
            raise BenchError(f"tenancy {command} exited {finished.returncode}: {finished.stdout[-400:]}")
        if command == "diagnose" and "identity_user_missing" not in finished.stdout:
            raise BenchError(f"diagnose did not find RB-001 4.2: {finished.stdout[-400:]}")
        figures[f"{command}_s"] = round(elapsed, 3)
        total += elapsed
    figures["total_s"] = round(total, 3)
    return Result(
        id="repair_mttr",
        figures=figures,
        floor={"what": "RB-001 escalation limit", "value": ESCALATION_SECONDS, "unit": "s"},
        ratio=total / ESCALATION_SECONDS,
        target=f"total <= {TARGET_SECONDS:.0f} s",
        met=total <= TARGET_SECONDS,
    )
