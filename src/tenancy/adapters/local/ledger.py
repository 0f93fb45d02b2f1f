"""The payment ledger on SQLite: every ITN kept, dedupe by a unique index, job and queue
message written in the same transaction as the ledger entry."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace

from tenancy.adapters.local import decoding
from tenancy.adapters.local.batches import rows_where_in
from tenancy.adapters.local.database import Database, counted_since, hourly_series
from tenancy.adapters.local.journal import insert_job
from tenancy.adapters.local.queue import enqueue
from tenancy.domain.model import PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.ports import Clock

__all__ = ["SqliteLedger"]


def _insert(connection: sqlite3.Connection, payment: PaymentRecord) -> None:
    connection.execute(
        "INSERT INTO payments (received_at, source_ip, fields, verdict, reasons, pf_payment_id, transaction_id,"
        " payment_status, email, plan, amount_gross, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            payment.received_at,
            payment.source_ip,
            json.dumps([list(pair) for pair in payment.fields]),
            payment.verdict.value,
            json.dumps(list(payment.reasons)),
            payment.pf_payment_id,
            payment.transaction_id,
            payment.payment_status,
            payment.email,
            payment.plan,
            payment.amount_gross,
            payment.token,
        ),
    )


# Every column of `payments` but the raw ITN fields.
_COLUMNS_BUT_FIELDS = (
    "id", "received_at", "source_ip", "verdict", "reasons", "pf_payment_id", "transaction_id",
    "payment_status", "email", "plan", "amount_gross", "token",
)  # fmt: skip


def _payment_from_row(row: sqlite3.Row) -> PaymentRecord:
    return PaymentRecord(
        received_at=row["received_at"],
        source_ip=row["source_ip"],
        fields=tuple(map(tuple, json.loads(row["fields"]))),
        verdict=decoding.payment_verdict(row["verdict"]),
        reasons=decoding.reasons(row["reasons"]),
        pf_payment_id=row["pf_payment_id"],
        transaction_id=row["transaction_id"],
        payment_status=row["payment_status"],
        email=row["email"],
        plan=row["plan"],
        amount_gross=row["amount_gross"],
        token=row["token"],
    )


class SqliteLedger:
    def __init__(self, database: Database, *, clock: Clock) -> None:
        self._database = database
        self._clock = clock  # when an accepted payment's job message becomes visible

    def record(self, payment: PaymentRecord, job: ProvisioningJob | None) -> PaymentRecord:
        with self._database.transaction() as connection:
            if payment.verdict is PaymentVerdict.ACCEPTED:
                try:
                    _insert(connection, payment)
                except sqlite3.IntegrityError:
                    payment = replace(payment, verdict=PaymentVerdict.DUPLICATE, reasons=("already processed",))
                    _insert(connection, payment)
                    return payment
                if job is not None and insert_job(connection, job):
                    enqueue(connection, job.transaction_id, now=self._clock.now())
                return payment
            _insert(connection, payment)
            return payment

    def find(
        self, *, transaction_id: str | None = None, pf_payment_id: str | None = None, email: str | None = None
    ) -> list[PaymentRecord]:
        filters = {"transaction_id": transaction_id, "pf_payment_id": pf_payment_id, "email": email}
        given = {column: value for column, value in filters.items() if value is not None}
        where = " AND ".join(f"{column} = ?" for column in given) or "1 = 1"
        rows = self._database.read(
            f"SELECT * FROM payments WHERE {where} ORDER BY id",  # noqa: S608 - column names are fixed above
            tuple(given.values()),
        )
        return [_payment_from_row(row) for row in rows]

    def find_many(
        self, transaction_ids: Sequence[str], *, with_fields: bool = True
    ) -> dict[str, list[PaymentRecord]]:
        found: dict[str, list[PaymentRecord]] = {}
        # Without the raw fields the (large) `fields` column is not even read.
        select = "SELECT *" if with_fields else f"SELECT {', '.join(_COLUMNS_BUT_FIELDS)}, '[]' AS fields"
        rows = rows_where_in(self._database, f"{select} FROM payments", "transaction_id", transaction_ids, "id")
        for row in rows:
            found.setdefault(row["transaction_id"], []).append(_payment_from_row(row))
        return found

    def scan_transactions(
        self, since: str | None = None, batch_size: int = 1000
    ) -> Iterator[list[tuple[str | None, PaymentVerdict, str]]]:
        # `scan`'s keyset pagination by id, reading three columns instead of building entries.
        condition, parameters = ("received_at >= ?", (since,)) if since else ("1 = 1", ())
        select = "SELECT id, transaction_id, verdict, received_at FROM payments WHERE"
        rows = self._database.read(f"{select} {condition} ORDER BY id LIMIT ?", (*parameters, batch_size))
        while rows:
            yield [(row[1], decoding.payment_verdict(row[2]), row[3]) for row in rows]
            rows = self._database.read(
                f"{select} {condition} AND id > ? ORDER BY id LIMIT ?",
                (*parameters, rows[-1]["id"], batch_size),
            )

    def scan(self, since: str | None = None, batch_size: int = 1000) -> Iterator[list[PaymentRecord]]:
        where, parameters = ("received_at >= ?", (since,)) if since else ("", ())
        for rows in self._database.scan("payments", "id", batch_size, where, parameters):
            yield [_payment_from_row(row) for row in rows]

    def paid_by_hour(self, since: str) -> dict[str, int]:
        return hourly_series(self._database, "paid", since)

    def count_by_verdict(self, since: str | None = None) -> dict[PaymentVerdict, int]:
        if since is None:
            # The triggers' tally (schema.TALLY_SCHEMA): a few rows, however large the ledger.
            rows = self._database.read("SELECT name, count FROM tally WHERE name LIKE 'payments:%' AND count > 0")
            return {PaymentVerdict(row["name"].removeprefix("payments:")): row["count"] for row in rows}
        # Each verdict's per-minute tally, so a window costs its minutes, not its entries.
        counted = {
            verdict: counted_since(
                self._database,
                f"payments:{verdict.value}",
                since,
                "SELECT COUNT(*) FROM payments WHERE verdict = ? AND received_at >= ? AND received_at < ?",
                (verdict.value,),
            )
            for verdict in PaymentVerdict
        }
        return {verdict: count for verdict, count in counted.items() if count}

    def with_verdict(self, verdict: str, since: str) -> list[PaymentRecord]:
        rows = self._database.read(
            "SELECT * FROM payments WHERE verdict = ? AND received_at >= ? ORDER BY received_at, id",
            (verdict, since),
        )
        return [_payment_from_row(row) for row in rows]
