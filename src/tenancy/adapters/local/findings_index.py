"""The findings index on SQLite: one row per purchase in `findings`, counted by finding in the
`tally` its triggers keep (schema.TALLY_SCHEMA), the full audits in `audit_runs`, and the
scheduled audit's claim in `audit_claim`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tenancy.adapters.local.database import Database
from tenancy.domain.model import AuditRun, IndexedPurchase

__all__ = ["SqliteFindingsIndex"]

_PREFIX = "findings:"
# SQLite's limit on host parameters is 32766 since 3.32; a page of look-ups stays well below it.
_PAGE = 500


class SqliteFindingsIndex:
    def __init__(self, database: Database) -> None:
        self._database = database

    def put(self, entry: IndexedPurchase) -> None:
        # One statement: the row and (through the triggers) the tally change in one transaction.
        with self._database.transaction() as connection:
            connection.execute(
                """INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (transaction_id) DO UPDATE SET finding = excluded.finding,
                       classified_at = excluded.classified_at, changed_at = excluded.changed_at,
                       email = excluded.email, tenant_id = excluded.tenant_id, job_status = excluded.job_status""",
                (
                    entry.transaction_id,
                    entry.finding,
                    entry.classified_at,
                    entry.changed_at,
                    entry.email,
                    entry.tenant_id,
                    entry.job_status,
                ),
            )

    def get(self, transaction_id: str) -> IndexedPurchase | None:
        rows = self._database.read("SELECT * FROM findings WHERE transaction_id = ?", (transaction_id,))
        return _entry(rows[0]) if rows else None

    def get_many(self, transaction_ids: Sequence[str]) -> dict[str, IndexedPurchase]:
        found: dict[str, IndexedPurchase] = {}
        wanted = list(dict.fromkeys(transaction_ids))
        for start in range(0, len(wanted), _PAGE):
            page = wanted[start : start + _PAGE]
            marks = ", ".join("?" * len(page))
            rows = self._database.read(f"SELECT * FROM findings WHERE transaction_id IN ({marks})", tuple(page))  # noqa: S608
            found.update((row["transaction_id"], _entry(row)) for row in rows)
        return found

    def count_by_finding(self) -> dict[str, int]:
        rows = self._database.read(f"SELECT name, count FROM tally WHERE name LIKE '{_PREFIX}%' AND count > 0")  # noqa: S608
        return {row["name"].removeprefix(_PREFIX): row["count"] for row in rows}

    def with_finding(self, finding: str, limit: int = 100) -> list[IndexedPurchase]:
        rows = self._database.read(
            "SELECT * FROM findings WHERE finding = ? ORDER BY changed_at DESC, transaction_id LIMIT ?",
            (finding, limit),
        )
        return [_entry(row) for row in rows]

    def without_job(self, excluding: Sequence[str], limit: int = 100) -> list[IndexedPurchase]:
        # Fixed SQL with one placeholder per excluded finding.
        others = f" AND finding NOT IN ({', '.join('?' * len(excluding))})" if excluding else ""
        sql = f"SELECT * FROM findings INDEXED BY findings_without_job WHERE job_status IS NULL{others}"  # noqa: S608
        rows = self._database.read(f"{sql} ORDER BY changed_at DESC, transaction_id LIMIT ?", (*excluding, limit))
        return [_entry(row) for row in rows]

    def record_audit(self, run: AuditRun) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO audit_runs (started_at, finished_at, trigger, since, purchases, findings)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run.started_at, run.finished_at, run.trigger, run.since, run.purchases, run.findings),
            )

    def claim_audit(self, now: str, until: str) -> bool:
        with self._database.transaction() as connection:
            claimed = connection.execute(
                """INSERT INTO audit_claim (name, until) VALUES ('scheduled', ?)
                   ON CONFLICT (name) DO UPDATE SET until = excluded.until WHERE audit_claim.until <= ?""",
                (until, now),
            )
            return claimed.rowcount == 1

    def last_audit(self) -> AuditRun | None:
        rows = self._database.read("SELECT * FROM audit_runs ORDER BY finished_at DESC, id DESC LIMIT 1")
        if not rows:
            return None
        row = rows[0]
        return AuditRun(
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            trigger=row["trigger"],
            since=row["since"],
            purchases=row["purchases"],
            findings=row["findings"],
        )


def _entry(row: sqlite3.Row) -> IndexedPurchase:
    return IndexedPurchase(
        transaction_id=row["transaction_id"],
        finding=row["finding"],
        classified_at=row["classified_at"],
        changed_at=row["changed_at"],
        email=row["email"],
        tenant_id=row["tenant_id"],
        job_status=row["job_status"],
    )
