"""The provisioning journal on SQLite: one row per transaction id, the saga's progress."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from tenancy.adapters.local import decoding
from tenancy.adapters.local.batches import rows_where_in
from tenancy.adapters.local.database import Database, counted_since, hourly_series
from tenancy.domain.model import JobStatus, ProvisioningJob

__all__ = ["SqliteJournal", "insert_job"]

# The `minutely` series (schema.TALLY_SCHEMA) of succeeded jobs with at least this many attempts.
_TALLIED_ATTEMPTS = {0: "succeeded", 2: "succeeded_retried"}

_COLUMNS = (
    "transaction_id", "tenant_id", "invoice_number", "email", "plan", "tenant_name", "status",
    "pf_payment_id", "completed_steps", "attempts", "owner_user_id", "last_error", "review_reason",
    "next_attempt_at", "created_at", "updated_at", "claim", "is_returning",
)  # fmt: skip


def _values(job: ProvisioningJob) -> tuple[object, ...]:
    return (
        job.transaction_id,
        job.tenant_id,
        job.invoice_number,
        job.email,
        job.plan,
        job.tenant_name,
        job.status.value,
        job.pf_payment_id,
        json.dumps([step.value for step in job.completed_steps]),
        job.attempts,
        job.owner_user_id,
        job.last_error,
        job.review_reason,
        job.next_attempt_at,
        job.created_at,
        job.updated_at,
        job.claim,
        int(job.returning),
    )


def _job_from_row(row: sqlite3.Row) -> ProvisioningJob:
    return ProvisioningJob(
        transaction_id=row["transaction_id"],
        tenant_id=row["tenant_id"],
        invoice_number=row["invoice_number"],
        email=row["email"],
        plan=row["plan"],
        tenant_name=row["tenant_name"],
        status=decoding.job_status(row["status"]),
        pf_payment_id=row["pf_payment_id"],
        completed_steps=decoding.steps(row["completed_steps"]),
        attempts=row["attempts"],
        owner_user_id=row["owner_user_id"],
        last_error=row["last_error"],
        review_reason=row["review_reason"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        claim=row["claim"],
        returning=bool(row["is_returning"]),
    )


def insert_job(connection: sqlite3.Connection, job: ProvisioningJob) -> bool:
    """Inserts the job inside the caller's transaction unless its transaction id exists."""
    placeholders = ", ".join("?" for _ in _COLUMNS)
    cursor = connection.execute(
        f"INSERT OR IGNORE INTO provisioning ({', '.join(_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608
        _values(job),
    )
    return cursor.rowcount == 1


class SqliteJournal:
    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, transaction_id: str) -> ProvisioningJob | None:
        rows = self._database.read("SELECT * FROM provisioning WHERE transaction_id = ?", (transaction_id,))
        return _job_from_row(rows[0]) if rows else None

    def get_many(self, transaction_ids: Sequence[str]) -> dict[str, ProvisioningJob]:
        rows = rows_where_in(self._database, "SELECT * FROM provisioning", "transaction_id", transaction_ids)
        return {row["transaction_id"]: _job_from_row(row) for row in rows}

    def tenant_ids(self, transaction_ids: Sequence[str]) -> dict[str, str]:
        select = "SELECT transaction_id, tenant_id FROM provisioning"
        return {row[0]: row[1] for row in rows_where_in(self._database, select, "transaction_id", transaction_ids)}

    def create(self, job: ProvisioningJob) -> bool:
        with self._database.transaction() as connection:
            return insert_job(connection, job)

    def stale_jobs(self, status: str, updated_before: str, limit: int = 1000) -> list[ProvisioningJob]:
        rows = self._database.read(
            "SELECT * FROM provisioning WHERE status = ? AND updated_at < ? ORDER BY updated_at LIMIT ?",
            (status, updated_before, limit),
        )
        return [_job_from_row(row) for row in rows]

    def save_claimed(self, job: ProvisioningJob, *, expected_claim: str | None) -> bool:
        assignments = ", ".join(f"{column} = ?" for column in _COLUMNS[1:])
        with self._database.transaction() as connection:
            cursor = connection.execute(
                # `IS` compares NULL with NULL as equal: an unclaimed job matches expected None.
                f"UPDATE provisioning SET {assignments} WHERE transaction_id = ? AND claim IS ?",  # noqa: S608
                (*_values(job)[1:], job.transaction_id, expected_claim),
            )
            return cursor.rowcount == 1

    def save(self, job: ProvisioningJob) -> None:
        assignments = ", ".join(f"{column} = ?" for column in _COLUMNS[1:])
        with self._database.transaction() as connection:
            connection.execute(
                f"UPDATE provisioning SET {assignments} WHERE transaction_id = ?",  # noqa: S608
                (*_values(job)[1:], job.transaction_id),
            )

    def list_jobs(self, status: str | None = None, limit: int = 100) -> list[ProvisioningJob]:
        if status is None:
            rows = self._database.read("SELECT * FROM provisioning ORDER BY updated_at DESC LIMIT ?", (limit,))
        else:
            rows = self._database.read(
                "SELECT * FROM provisioning WHERE status = ? ORDER BY updated_at DESC LIMIT ?", (status, limit)
            )
        return [_job_from_row(row) for row in rows]

    def find(self, *, email: str | None = None, tenant_id: str | None = None) -> list[ProvisioningJob]:
        filters = {"email": email.strip().lower() if email else None, "tenant_id": tenant_id}
        given = {column: value for column, value in filters.items() if value is not None}
        where = " AND ".join(f"{column} = ?" for column in given) or "1 = 1"
        rows = self._database.read(
            f"SELECT * FROM provisioning WHERE {where} ORDER BY created_at, transaction_id",  # noqa: S608
            tuple(given.values()),
        )
        return [_job_from_row(row) for row in rows]

    def scan(self, batch_size: int = 1000) -> Iterator[list[ProvisioningJob]]:
        for rows in self._database.scan("provisioning", "transaction_id", batch_size):
            yield [_job_from_row(row) for row in rows]

    def count_by_status(self) -> dict[JobStatus, int]:
        # The triggers' tally (schema.TALLY_SCHEMA): a few rows, however many jobs.
        rows = self._database.read("SELECT name, count FROM tally WHERE name LIKE 'jobs:%' AND count > 0")
        return {JobStatus(row["name"].removeprefix("jobs:")): row["count"] for row in rows}

    def succeeded_by_hour(self, since: str) -> dict[str, int]:
        return hourly_series(self._database, "succeeded", since)

    def count_updated_since(self, status: str, updated_since: str, *, min_attempts: int = 0) -> int:
        if status == JobStatus.SUCCEEDED.value and min_attempts in _TALLIED_ATTEMPTS:
            # Succeeded jobs, the many: their per-minute tally, so the alert window costs its minutes.
            return counted_since(
                self._database,
                _TALLIED_ATTEMPTS[min_attempts],
                updated_since,
                "SELECT COUNT(*) FROM provisioning"
                " WHERE status = ? AND attempts >= ? AND updated_at >= ? AND updated_at < ?",
                (status, min_attempts),
            )
        # A range of provisioning_by_status; `attempts` (not in the index) is read only when asked about.
        sql = "SELECT COUNT(*) FROM provisioning WHERE status = ? AND updated_at >= ?"
        parameters: tuple[object, ...] = (status, updated_since)
        if min_attempts > 0:
            sql, parameters = f"{sql} AND attempts >= ?", (*parameters, min_attempts)
        return int(self._database.read(sql, parameters)[0][0])
