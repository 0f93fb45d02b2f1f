"""Subscriptions on SQLite: one row per tenant in `subscriptions`, the subscription as JSON beside
the columns it is found by (token, transaction id) and the version it was last written at. A
write is conditional on that version, so two writers that read the same subscription cannot both
apply their change: the second gets ConflictError and re-applies on what the first wrote."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal

from tenancy.adapters.local.batches import rows_where_in
from tenancy.adapters.local.database import Database
from tenancy.adapters.subscription_codec import subscription_from_mapping, subscription_to_mapping
from tenancy.domain.billing import Subscription, SubscriptionFigures, SubscriptionStatus, annual_cents
from tenancy.errors import ConflictError, ItemAlreadyExistsError

__all__ = ["SqliteSubscriptionStore", "save_subscription"]


class SqliteSubscriptionStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, tenant_id: str) -> Subscription | None:
        return self._one("SELECT * FROM subscriptions WHERE tenant_id = ?", tenant_id)

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Subscription]:
        rows = rows_where_in(self._database, "SELECT * FROM subscriptions", "tenant_id", tenant_ids)
        return {row["tenant_id"]: _subscription(row) for row in rows}

    def find_by_token(self, token: str) -> Subscription | None:
        return self._one("SELECT * FROM subscriptions WHERE token = ?", token)

    def find_by_transaction(self, transaction_id: str) -> Subscription | None:
        return self._one(
            "SELECT * FROM subscriptions WHERE transaction_id = ? ORDER BY tenant_id LIMIT 1", transaction_id
        )

    def save(self, subscription: Subscription) -> Subscription:
        with self._database.transaction() as connection:
            return save_subscription(connection, subscription)

    def scan(self, batch_size: int = 1000) -> Iterator[list[Subscription]]:
        for rows in self._database.scan("subscriptions", "tenant_id", batch_size):
            yield [_subscription(row) for row in rows]

    def figures(self, since: str) -> SubscriptionFigures:
        # From the tallies the table's triggers keep (schema.SUBSCRIPTIONS_SCHEMA): the same cost
        # at a thousand subscriptions and at a million.
        rows = self._database.read(
            "SELECT name, count FROM tally WHERE name LIKE 'subscriptions:%' OR name = 'annual_cents:active'"
        )
        tallies = {row["name"]: row["count"] for row in rows}
        by_status = {
            status: tallies.get(f"subscriptions:{status.value}", 0)
            for status in SubscriptionStatus
            if tallies.get(f"subscriptions:{status.value}", 0) > 0
        }
        annual = Decimal(tallies.get("annual_cents:active", 0)) / 100
        return SubscriptionFigures(
            by_status=by_status,
            monthly_recurring_revenue=(annual / 12).quantize(Decimal("0.01")),
            renewals=self._counted("renewals", since),
            cancellations=self._counted("cancellations", since),
        )

    def _counted(self, series: str, since: str) -> int:
        # The series' minutes after `since`'s own; of that minute, every entry (a minute's
        # precision is the dashboard's).
        rows = self._database.read(
            "SELECT COALESCE(SUM(count), 0) FROM minutely WHERE series = ? AND minute >= ?", (series, since[:16])
        )
        return int(rows[0][0])

    def _one(self, sql: str, value: str) -> Subscription | None:
        rows = self._database.read(sql, (value,))
        return _subscription(rows[0]) if rows else None


def _subscription(row: sqlite3.Row) -> Subscription:
    return subscription_from_mapping(json.loads(row["data"]), row["version"])


def _at_version(subscription: Subscription, version: int) -> Subscription:
    return replace(subscription, version=version)


def save_subscription(connection: sqlite3.Connection, subscription: Subscription) -> Subscription:
    """`save` inside the caller's write transaction (a lifecycle commit writes it with the tenant)."""
    data = json.dumps(subscription_to_mapping(subscription), separators=(",", ":"))
    version = subscription.version + 1
    try:
        if subscription.version == 0:
            cursor = connection.execute(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING",
                (
                    subscription.tenant_id,
                    subscription.token,
                    subscription.transaction_id,
                    version,
                    data,
                    subscription.status.value,
                    annual_cents(subscription),
                ),
            )
        else:
            cursor = connection.execute(
                """UPDATE subscriptions SET token = ?, transaction_id = ?, version = ?, data = ?,
                       status = ?, annual_cents = ?
                   WHERE tenant_id = ? AND version = ?""",
                (
                    subscription.token,
                    subscription.transaction_id,
                    version,
                    data,
                    subscription.status.value,
                    annual_cents(subscription),
                    subscription.tenant_id,
                    subscription.version,
                ),
            )
    except sqlite3.IntegrityError:
        taken = f"another tenant's subscription has the token of {subscription.tenant_id}'s"
        raise ItemAlreadyExistsError(taken) from None
    if cursor.rowcount != 1:
        raise ConflictError(f"the subscription of {subscription.tenant_id} changed since it was read")
    return _at_version(subscription, version)
