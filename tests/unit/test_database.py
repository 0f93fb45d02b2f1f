"""The embedded database file: a file made by an older version gains the columns added since."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.journal import SqliteJournal
from tenancy.domain.model import JobStatus, ProvisioningJob

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
