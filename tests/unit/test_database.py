"""The embedded database file: a file made by an older version gains the columns added since."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.journal import SqliteJournal
from tenancy.domain.model import JobStatus, ProvisioningJob
from tenancy.errors import PermanentError

OLD_PROVISIONING_TABLE = """CREATE TABLE provisioning (
    transaction_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, invoice_number TEXT NOT NULL,
    email TEXT NOT NULL, plan TEXT NOT NULL, tenant_name TEXT NOT NULL, status TEXT NOT NULL,
    pf_payment_id TEXT, completed_steps TEXT NOT NULL, attempts INTEGER NOT NULL,
    owner_user_id TEXT, last_error TEXT, review_reason TEXT, next_attempt_at TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""


def test_an_older_database_gains_the_claim_column_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "tenancy.db"
    with sqlite3.connect(path) as old:
        old.execute(OLD_PROVISIONING_TABLE)
        old.execute(
            "INSERT INTO provisioning VALUES ('TXN-OLD', 'ten_x', 'INV-OLD', 'a@example.com', 'starter', 'A',"
            " 'queued', NULL, '[]', 0, NULL, NULL, NULL, NULL, '2026-01-18T00:00:00Z', '2026-01-18T00:00:00Z')"
        )

    database = Database(path)
    journal = SqliteJournal(database)
    job = journal.get("TXN-OLD")
    claimed = journal.save_claimed(
        ProvisioningJob("TXN-OLD", "ten_x", "INV-OLD", "a@example.com", "starter", "A", JobStatus.RUNNING,
                        "2026-01-18T00:00:00Z", "2026-01-18T00:00:01Z", attempts=1, claim="run-1"),
        expected_claim=None,
    )  # fmt: skip
    Database(path)  # opening again adds nothing twice

    assert job is not None
    assert job.claim is None
    assert claimed
    assert journal.get("TXN-OLD") is not None
    assert journal.get("TXN-OLD").claim == "run-1"  # type: ignore[union-attr]


def test_writers_of_one_process_take_turns_without_meeting_sqlites_busy_lock(tmp_path: Path) -> None:
    # With SQLite's busy handler off (a busy database fails at once), 16 threads writing at the
    # same time all succeed: they wait for each other in the process, never in SQLite.
    database = Database(tmp_path / "tenancy.db")
    with database.transaction() as connection:
        connection.execute("CREATE TABLE counter (value INTEGER NOT NULL)")
        connection.execute("INSERT INTO counter VALUES (0)")
    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def write() -> None:
        database.connection().execute("PRAGMA busy_timeout = 0")
        start.wait()
        try:
            for _ in range(25):
                with database.transaction() as connection:
                    connection.execute("UPDATE counter SET value = value + 1")
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert database.read("SELECT value FROM counter")[0]["value"] == 16 * 25


def test_a_write_transaction_inside_another_is_refused_rather_than_waiting_forever(tmp_path: Path) -> None:
    database = Database(tmp_path / "tenancy.db")
    with database.transaction(), pytest.raises(PermanentError, match="inside another"), database.transaction():
        pass
    with database.transaction() as connection:  # the lock was let go
        connection.execute("SELECT 1")

