"""provision_throughput: jobs/s from enqueued to active with the welcome email in the outbox, with
1 and 2 real `tenancy worker` processes (one worker thread each) on the same SQLite file, at the
configured argon2 cost. Floor per job: one argon2id hash at that cost + the SQLite commits one
provisioning makes (counted with a counter on Database.transaction while one job is handled
in-process), each commit timed alone on the same database file."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import argon2
from common import BenchError, Result, child_env, median, open_services, progress_bar, settings_for, tenancy_command

from tenancy.adapters.local import database as database_module
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.model import PaymentVerdict
from tenancy.payments.simulator import build_itn, encode_form

# In-process intake of the benchmark's ITNs: every one comes from 127.0.0.1.
UNTHROTTLED = {"itn_max_per_minute_per_source": 1_000_000_000}
_PF_IDS = itertools.count(6_000_000_000)


def email_for(run: str, number: int) -> str:
    return f"{run.lower()}{number:07d}@example.com"


def itn_body(run: str, number: int) -> bytes:
    """A valid, signed, unique ITN: transaction TXN-{run}{number}, owner {run}{number}@example.com."""
    return encode_form(
        build_itn(
            transaction_id=f"TXN-{run}{number:07d}",
            email=email_for(run, number),
            plan="starter",
            amount="99.00",
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            pf_payment_id=str(next(_PF_IDS)),
        )
    )


def finished(connection: sqlite3.Connection, run: str) -> set[int]:
    """The numbers of run `run` whose tenant is active and whose welcome email is in the outbox."""
    rows = connection.execute(
        "SELECT t.transaction_id FROM tenants AS t WHERE t.transaction_id LIKE ? AND t.status = 'active'"
        " AND EXISTS (SELECT 1 FROM outbox AS o WHERE o.to_address = lower(substr(t.transaction_id, 5))"
        " || '@example.com')",
        (f"TXN-{run}%",),
    ).fetchall()
    return {int(row[0][len(f"TXN-{run}") :]) for row in rows}


def reader(home: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(home / "tenancy.db", isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 15000")
    return connection


def wait_finished(home: Path, run: str, count: int, timeout: float, interval: float = 0.02) -> float:
    """Polls until all `count` jobs of `run` are done; returns the monotonic time it saw them done."""
    connection = reader(home)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if len(finished(connection, run)) >= count:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(finished(connection, run))}/{count} jobs of {run} finished in {timeout} s")
            time.sleep(interval)
    finally:
        connection.close()


@dataclass
class Floor:
    hash_ms: float
    commit_ms: float
    commits: int
    saga_commits: int

    @property
    def per_job_ms(self) -> float:
        return self.hash_ms + self.commits * self.commit_ms

    def document(self) -> dict[str, Any]:
        return {
            "what": (
                f"one argon2id hash ({self.hash_ms:.1f} ms) + {self.commits} SQLite commits "
                f"({self.commit_ms * 1000:.0f} us each), measured alone"
            ),
            "value": round(self.per_job_ms, 2),
            "unit": "ms/job",
        }


def count_commits(home: Path) -> tuple[int, int]:
    """Provisions one purchase in-process with a counter on every write transaction; returns the
    commits of the whole job (queue receive + saga + queue delete) and of the saga alone."""
    services = open_services(home, **UNTHROTTLED)
    original = database_module.Database.transaction
    counter = {"all": 0}

    @contextmanager
    def counted(self: database_module.Database) -> Iterator[sqlite3.Connection]:
        with original(self) as connection:
            yield connection
        counter["all"] += 1

    try:
        record = services.intake.receive(itn_body("COUNT", 0), "127.0.0.1")
        if record.verdict is not PaymentVerdict.ACCEPTED:
            raise BenchError(f"the counting ITN was {record.verdict.value}: {record.reasons}")
        worker = services.worker
        saga_run = worker._saga.run
        saga_counter = {"commits": 0}

        def counted_saga(job: Any) -> Any:
            before = counter["all"]
            try:
                return saga_run(job)
            finally:
                saga_counter["commits"] = counter["all"] - before

        worker._saga.run = counted_saga  # type: ignore[method-assign]
        database_module.Database.transaction = counted  # type: ignore[method-assign,assignment]
        try:
            if worker.poll_once() != 1:
                raise BenchError("the counting job was not received")
        finally:
            database_module.Database.transaction = original  # type: ignore[method-assign]
        check = reader(home)
        try:
            if finished(check, "COUNT") != {0}:
                raise BenchError("the counting job did not finish")
        finally:
            check.close()
    finally:
        services.close()
    return counter["all"], saga_counter["commits"]


def measure_floor(home: Path, hashes: int, commits: int) -> Floor:
    """Counts one provisioning's commits, then times one argon2id hash (median of `hashes`) and one
    small commit (median of `commits`) on the same database file, each alone."""
    job_commits, saga_commits = count_commits(home)
    settings = settings_for(home)
    hasher = argon2.PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=min(4, settings.password_hash_memory_kib // 8),
        type=argon2.Type.ID,
    )
    hash_times = []
    for _ in range(hashes):
        started = time.perf_counter()
        hasher.hash("Bench-Temporary-Passw0rd!")
        hash_times.append(time.perf_counter() - started)
    connection = sqlite3.connect(home / "tenancy.db", isolation_level=None)
    commit_times = []
    try:
        # The same pragmas as the embedded backend's connections (adapters/local/database.py).
        connection.execute("PRAGMA busy_timeout = 15000")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("CREATE TABLE IF NOT EXISTS bench_commits (id INTEGER PRIMARY KEY, value TEXT)")
        for number in range(commits):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO bench_commits (value) VALUES (?)", (f"commit {number}",))
            connection.execute("COMMIT")
            commit_times.append(time.perf_counter() - started)
        connection.execute("DROP TABLE bench_commits")
    finally:
        connection.close()
    return Floor(median(hash_times) * 1000, median(commit_times) * 1000, job_commits, saga_commits)


@contextmanager
def worker_processes(home: Path, count: int) -> Iterator[None]:
    """`count` real `tenancy worker --concurrency 1` processes on the home's database file."""
    log: IO[bytes] = (home / "worker.log").open("ab")
    processes = [
        subprocess.Popen(
            tenancy_command("worker", "--concurrency", "1"), env=child_env(home), stdout=log, stderr=subprocess.STDOUT
        )
        for _ in range(count)
    ]
    try:
        yield
        for process in processes:
            if process.poll() is not None:
                raise BenchError(f"a tenancy worker exited with {process.returncode}; see {home / 'worker.log'}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def enqueue(services: Any, run: str, numbers: range) -> None:
    for number in numbers:
        record = services.intake.receive(itn_body(run, number), "127.0.0.1")
        if record.verdict is not PaymentVerdict.ACCEPTED:
            raise BenchError(f"ITN {run}{number} was {record.verdict.value}: {record.reasons}")


def throughput(home: Path, workers: int, jobs: int) -> float:
    """Jobs/s with `workers` worker processes: from the first of `jobs` ITNs enqueued (in-process
    intake: payment recorded, journal entry and queue message written) to the last one done."""
    services = open_services(home, **UNTHROTTLED)
    try:
        with worker_processes(home, workers):
            # Warm-up: every process has started and provisioned before the clock starts.
            warm = f"WARM{workers}W"
            enqueue(services, warm, range(2 * workers))
            wait_finished(home, warm, 2 * workers, timeout=120)
            time.sleep(1.0)
            run = f"PT{workers}W"
            with progress_bar(f"provisioning {jobs} tenants, {workers} worker(s)", None):
                started = time.monotonic()
                enqueue(services, run, range(jobs))
                done = wait_finished(home, run, jobs, timeout=60 + jobs * 5)
    finally:
        services.close()
    return jobs / (done - started)


def run(work: Path, jobs: int, hashes: int, commits: int) -> Result:
    home = work / "provision"
    home.mkdir(parents=True, exist_ok=True)
    floor = measure_floor(home, hashes, commits)
    rates = {workers: throughput(home, workers, jobs) for workers in (1, 2)}
    per_job_1 = 1000 / rates[1]
    # With 2 workers each job still takes a worker's time: per-job time is 2 / (jobs/s).
    per_job_2 = 2000 / rates[2]
    ratio = per_job_1 / floor.per_job_ms
    return Result(
        id="provision_throughput",
        figures={
            "jobs_per_s_1_worker": round(rates[1], 2),
            "jobs_per_s_2_workers": round(rates[2], 2),
            "ms_per_job_1_worker": round(per_job_1, 1),
            "worker_ms_per_job_2_workers": round(per_job_2, 1),
            "ratio_2_workers": round(per_job_2 / floor.per_job_ms, 3),
            "jobs": jobs,
            "commits_per_job": floor.commits,
            "saga_commits_per_job": floor.saga_commits,
        },
        floor=floor.document(),
        ratio=ratio,
        target="per-job time (1 worker) <= 1.5x floor",
        met=ratio <= 1.5,
        notes=(
            "real `tenancy worker --concurrency 1` processes on one SQLite file; ratio is 1 worker's "
            "wall time per job over the floor; ratio_2_workers is worker-time per job (2 / jobs_per_s)"
        ),
        extra={
            "argon2_hash_ms": round(floor.hash_ms, 2),
            "commit_ms": round(floor.commit_ms, 4),
            "argon2_time_cost": settings_for(home).password_hash_time_cost,
            "argon2_memory_kib": settings_for(home).password_hash_memory_kib,
        },
    )
