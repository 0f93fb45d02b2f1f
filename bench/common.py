"""What every benchmark shares: the result record, machine info, progress bars, processes and settings."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from tenancy.bootstrap import Services, build
from tenancy.config import Backend, PayfastMode, Settings

ROOT = Path(__file__).resolve().parent.parent
# Every ITN of a benchmark comes from 127.0.0.1: the per-source flood guard must not refuse them.
SERVER_ENV = {"TENANCY_PAYFAST_MODE": "offline", "TENANCY_ITN_MAX_PER_MINUTE_PER_SOURCE": "1000000000"}


class BenchError(Exception):
    """A benchmark could not run (a process would not start, a check failed)."""


@dataclass
class Result:
    id: str
    figures: dict[str, float]
    floor: dict[str, Any]  # {"what": ..., "value": number, "unit": ...}
    ratio: float
    target: str
    met: bool
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "figures": self.figures,
            "floor": self.floor,
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "notes": self.notes,
            **({"extra": self.extra} if self.extra else {}),
        }


def machine_info() -> dict[str, Any]:
    memory = None
    with suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu = platform.processor() or ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    import sqlite3

    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)


@contextmanager
def progress_bar(description: str, total: float | None) -> Iterator[_Bar]:
    """A rich progress bar on a terminal; nothing otherwise (CI logs, the smoke test)."""
    if not sys.stdout.isatty():
        yield _Bar(None, None)
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))


def settings_for(home: Path, **overrides: Any) -> Settings:
    """The embedded backend at the configured (default) argon2 cost, PayFast offline."""
    return Settings(backend=Backend.LOCAL, home=home, payfast_mode=PayfastMode.OFFLINE, **overrides)


def open_services(home: Path, **overrides: Any) -> Services:
    return build(settings_for(home, **overrides))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TENANCY_")}
    env.update(SERVER_ENV, TENANCY_HOME=str(home), TENANCY_HOST="127.0.0.1", TENANCY_LOG_LEVEL="warning")
    env.update(extra)
    return env


def tenancy_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "tenancy", *arguments]


@contextmanager
def running_server(home: Path, *arguments: str, **extra: str) -> Iterator[str]:
    """`tenancy serve` as a real process on a free port; yields its base URL, stops it after."""
    port = free_port()
    env = child_env(home, TENANCY_PORT=str(port), **extra)
    log: IO[bytes] = (home / "server.log").open("ab")
    process = subprocess.Popen(tenancy_command("serve", *arguments), env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise BenchError(f"tenancy serve exited with {process.returncode}; see {home / 'server.log'}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError("tenancy serve did not answer /healthz within 60 s")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
