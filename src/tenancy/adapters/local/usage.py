"""Usage and service keys on SQLite.

A usage record is one write transaction: the answer kept for its idempotency key is looked up,
then the tenant's usage is changed by one `UPDATE ... WHERE <quota holds>` (never read and then
written), then the answer is kept. A refused record changes no usage and keeps its answer too.
"""

from __future__ import annotations

import sqlite3

from tenancy.adapters.local import decoding
from tenancy.adapters.local.database import Database
from tenancy.adapters.local.store import usage_json
from tenancy.domain.model import Tenant, TenantStatus, Usage
from tenancy.domain.service_keys import ServiceKey
from tenancy.domain.usage import Metric, UsageChange, UsageOutcome, refusal_reason, usage_in_period
from tenancy.errors import InvalidInputError, ItemAlreadyExistsError, NotFoundError, TenantInactiveError

__all__ = ["SqliteServiceKeyStore", "SqliteUsageStore"]

_WITH_ACCESS = tuple(sorted(status.value for status in TenantStatus if status.has_access))


def _level_sql(metric: Metric) -> str:
    """The metric's level in this period, as SQL over the row (field names are the enum's own)."""
    level = f"COALESCE(json_extract(usage, '$.{metric.usage_field}'), 0)"
    if metric is Metric.GENERATIONS:
        # A count kept for another period counts from zero in this one.
        return f"(CASE WHEN json_extract(usage, '$.period_start') IS ? THEN {level} ELSE 0 END)"
    return level


def _update_sql(metric: Metric, change: UsageChange) -> str:
    """UPDATE that applies `change` where the tenant has access and the quota holds. Parameters:
    [period (generations)], amount, [period (generations)], amount, [period, (generations)],
    tenant_id, the statuses with access, then the limit check's [period], amount, [period], limit."""
    level = _level_sql(metric)
    after = "?" if change.absolute else f"max(0, {level} + ?)"
    assigned = f"json_set(usage, '$.{metric.usage_field}', {after}"
    assigned += ", '$.period_start', ?)" if metric is Metric.GENERATIONS else ")"
    marks = ", ".join("?" for _ in _WITH_ACCESS)
    # After the change, the level is at most what it was, or at most the limit.
    within = f"({after} <= {level} OR {after} <= COALESCE(json_extract(limits, '$.{metric.limit_field}'), 0))"
    return (
        f"UPDATE tenants SET usage = {assigned}, updated_at = ?"  # noqa: S608 - fixed SQL
        f" WHERE tenant_id = ? AND status IN ({marks}) AND {within} RETURNING usage, limits"
    )


def _update_parameters(change: UsageChange, tenant_id: str, period_start: str, at: str) -> tuple[object, ...]:
    generations = change.metric is Metric.GENERATIONS
    period = (period_start,) if generations else ()
    # `after` once in the SET, the level (in `after`, for a delta) and the period mark.
    after = (change.amount,) if change.absolute else (*period, change.amount)
    within = (*after, *period, *after)
    return (*after, *period, at, tenant_id, *_WITH_ACCESS, *within)


class SqliteUsageStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, tenant: Tenant, change: UsageChange, period_start: str, at: str) -> UsageOutcome:
        tenant_id = tenant.tenant_id
        with self._database.transaction() as connection:
            kept = connection.execute(
                "SELECT * FROM usage_answers WHERE tenant_id = ? AND idempotency_key = ?",
                (tenant_id, change.idempotency_key),
            ).fetchone()
            if kept is not None:
                return _replayed(kept, tenant_id, change)
            row = connection.execute(
                _update_sql(change.metric, change), _update_parameters(change, tenant_id, period_start, at)
            ).fetchone()
            applied = row is not None
            if row is None:
                row = _refusal(connection, tenant_id)
            usage, limits = decoding.usage(row["usage"]), decoding.limits(row["limits"])
            # Refused in a new period: its generation count, found for an earlier one, is zero.
            usage = usage_in_period(usage, period_start)
            connection.execute(
                "INSERT INTO usage_answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    change.idempotency_key,
                    change.fingerprint,
                    int(applied),
                    usage_json(usage),
                    row["limits"],
                    at,
                ),
            )
        return UsageOutcome(tenant_id, change, applied, usage, limits, at)

    def correct(self, tenant_id: str, metric: Metric, value: int, period_start: str, at: str) -> Usage:
        assigned = f"json_set(usage, '$.{metric.usage_field}', ?"
        assigned += ", '$.period_start', ?)" if metric is Metric.GENERATIONS else ")"
        period = (period_start,) if metric is Metric.GENERATIONS else ()
        with self._database.transaction() as connection:
            row = connection.execute(
                f"UPDATE tenants SET usage = {assigned}, updated_at = ? WHERE tenant_id = ? RETURNING usage",  # noqa: S608
                (value, *period, at, tenant_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"tenant {tenant_id} not found")
        return decoding.usage(row["usage"])

    def forget_answers(self, before: str) -> int:
        with self._database.transaction() as connection:
            return connection.execute("DELETE FROM usage_answers WHERE created_at < ?", (before,)).rowcount


def _refusal(connection: sqlite3.Connection, tenant_id: str) -> sqlite3.Row:
    """Why the update matched no row: no tenant, no access, else the quota (the row to report)."""
    row: sqlite3.Row | None = connection.execute(
        "SELECT status, usage, limits FROM tenants WHERE tenant_id = ?", (tenant_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"tenant {tenant_id} not found")
    status = decoding.tenant_status(row["status"])
    reason = refusal_reason(status)
    if reason is not None:
        raise TenantInactiveError(status.value, reason)
    return row


def _replayed(kept: sqlite3.Row, tenant_id: str, change: UsageChange) -> UsageOutcome:
    if kept["fingerprint"] != change.fingerprint:
        raise InvalidInputError(f"idempotency key {change.idempotency_key!r} was used for a different usage record")
    return UsageOutcome(
        tenant_id,
        change,
        bool(kept["applied"]),
        decoding.usage(kept["usage"]),
        decoding.limits(kept["limits"]),
        kept["created_at"],
        replayed=True,
    )


class SqliteServiceKeyStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def create(self, key: ServiceKey) -> None:
        with self._database.transaction() as connection:
            try:
                connection.execute(
                    "INSERT INTO service_keys VALUES (?, ?, ?, ?)",
                    (key.name, key.key_hash, key.created_at, key.revoked_at),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"a service key named {key.name} exists") from None

    def get(self, name: str) -> ServiceKey | None:
        rows = self._database.read("SELECT * FROM service_keys WHERE name = ?", (name,))
        return _key(rows[0]) if rows else None

    def all(self) -> list[ServiceKey]:
        return [_key(row) for row in self._database.read("SELECT * FROM service_keys ORDER BY name")]

    def revoke(self, name: str, at: str) -> bool:
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE service_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (at, name)
            )
            return cursor.rowcount == 1


def _key(row: sqlite3.Row) -> ServiceKey:
    return ServiceKey(row["name"], row["key_hash"], row["created_at"], row["revoked_at"])
