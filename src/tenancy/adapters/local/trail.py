"""The repair audit trail on SQLite: every repair an operator ran, with the states before and after."""

from __future__ import annotations

import json
import sqlite3

from tenancy.adapters.local.database import Database
from tenancy.domain.model import RepairRecord

__all__ = ["SqliteRepairTrail"]


def _entry_from_row(row: sqlite3.Row) -> RepairRecord:
    return RepairRecord(
        at=row["at"],
        operator=row["operator"],
        transaction_id=row["transaction_id"],
        tenant_id=row["tenant_id"],
        email=row["email"],
        finding=row["finding"],
        actions=tuple(json.loads(row["actions"])),
        before=json.loads(row["before_state"]),
        after=json.loads(row["after_state"]),
        outcome=row["outcome"],
    )


class SqliteRepairTrail:
    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, entry: RepairRecord) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO repair_log (at, operator, transaction_id, tenant_id, email, finding, actions,"
                " before_state, after_state, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.at,
                    entry.operator,
                    entry.transaction_id,
                    entry.tenant_id,
                    entry.email,
                    entry.finding,
                    json.dumps(list(entry.actions)),
                    json.dumps(entry.before, default=str),
                    json.dumps(entry.after, default=str),
                    entry.outcome,
                ),
            )

    def entries(
        self, *, transaction_id: str | None = None, tenant_id: str | None = None, email: str | None = None
    ) -> list[RepairRecord]:
        subjects = {"transaction_id": transaction_id, "tenant_id": tenant_id, "email": email}
        given = {column: value for column, value in subjects.items() if value}
        where = " OR ".join(f"{column} = ?" for column in given) or "1 = 1"
        rows = self._database.read(
            f"SELECT * FROM repair_log WHERE {where} ORDER BY id",  # noqa: S608 - fixed column names
            tuple(given.values()),
        )
        return [_entry_from_row(row) for row in rows]
