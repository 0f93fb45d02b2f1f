"""Tenants and users tables on SQLite, with the data contract's fields."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from tenancy.adapters.local import decoding
from tenancy.adapters.local.batches import rows_where_in
from tenancy.adapters.local.database import Database
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import Billing, Tenant, TenantStatus, Usage, UserRecord, UserStatus
from tenancy.domain.plans import Limits
from tenancy.errors import ItemAlreadyExistsError, NotFoundError

__all__ = ["SqliteTenantStore", "SqliteUserStore", "limits_json", "usage_json"]


def tenant_from_row(row: sqlite3.Row) -> Tenant:
    return Tenant(
        tenant_id=row["tenant_id"],
        owner_user_id=row["owner_user_id"],
        name=row["name"],
        plan=row["plan"],
        status=decoding.tenant_status(row["status"]),
        limits=decoding.limits(row["limits"]),
        usage=decoding.usage(row["usage"]),
        storage_prefix=row["storage_prefix"],
        billing=Billing(row["transaction_id"], row["invoice_number"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def limits_json(limits: Limits) -> str:
    return json.dumps(
        {
            "max_sites": limits.max_sites,
            "max_generations_per_month": limits.max_generations_per_month,
            "max_storage_mb": limits.max_storage_mb,
            "custom_domain_allowed": limits.custom_domain_allowed,
        }
    )


def usage_json(usage: Usage) -> str:
    counts: dict[str, object] = {
        "sites_count": usage.sites_count,
        "generations_this_month": usage.generations_this_month,
        "storage_used_mb": usage.storage_used_mb,
    }
    if usage.period_start is not None:
        counts["period_start"] = usage.period_start
    return json.dumps(counts)


class SqliteTenantStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, tenant_id: str) -> Tenant | None:
        rows = self._database.read("SELECT * FROM tenants WHERE tenant_id = ?", (tenant_id,))
        return tenant_from_row(rows[0]) if rows else None

    def create(self, tenant: Tenant) -> None:
        self._write(tenant, "INSERT")

    def put(self, tenant: Tenant) -> None:
        self._write(tenant, "INSERT OR REPLACE")

    def find_by_transaction(self, transaction_id: str) -> Tenant | None:
        # The derived id first (the project's own tenant), then the earliest hand-made one.
        rows = self._database.read(
            "SELECT * FROM tenants WHERE transaction_id = ? ORDER BY tenant_id = ? DESC, created_at LIMIT 1",
            (transaction_id, tenant_id_for(transaction_id)),
        )
        return tenant_from_row(rows[0]) if rows else None

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Tenant]:
        rows = rows_where_in(self._database, "SELECT * FROM tenants", "tenant_id", tenant_ids)
        return {row["tenant_id"]: tenant_from_row(row) for row in rows}

    def find_by_transactions(self, transaction_ids: Sequence[str]) -> dict[str, Tenant]:
        billed: dict[str, list[Tenant]] = {}
        for row in rows_where_in(self._database, "SELECT * FROM tenants", "transaction_id", transaction_ids):
            billed.setdefault(row["transaction_id"], []).append(tenant_from_row(row))
        found: dict[str, Tenant] = {}
        for transaction_id, tenants in billed.items():
            derived = [tenant for tenant in tenants if tenant.tenant_id == tenant_id_for(transaction_id)]
            if derived or len(tenants) == 1:
                found[transaction_id] = (derived or tenants)[0]
                continue
            # Several hand-made ones: the earliest, ties broken as find_by_transaction's own query breaks them.
            chosen = self.find_by_transaction(transaction_id)
            if chosen is not None:
                found[transaction_id] = chosen
        return found

    def scan_created(self, batch_size: int = 1000) -> Iterator[list[tuple[str, str, str]]]:
        # `scan`'s keyset pagination over a subquery of three columns: no tenant built.
        for rows in self._database.scan(
            "(SELECT tenant_id, transaction_id, created_at FROM tenants)", "tenant_id", batch_size
        ):
            yield [(row[0], row[1], row[2]) for row in rows]

    def delete(self, tenant_id: str) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM tenants WHERE tenant_id = ?", (tenant_id,))

    def scan(self, batch_size: int = 1000) -> Iterator[list[Tenant]]:
        for rows in self._database.scan("tenants", "tenant_id", batch_size):
            yield [tenant_from_row(row) for row in rows]

    def _write(self, tenant: Tenant, verb: str) -> None:
        with self._database.transaction() as connection:
            try:
                connection.execute(
                    f"{verb} INTO tenants (tenant_id, owner_user_id, name, plan, status, limits, usage,"
                    " storage_prefix, transaction_id, invoice_number, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant.tenant_id,
                        tenant.owner_user_id,
                        tenant.name,
                        tenant.plan,
                        tenant.status.value,
                        limits_json(tenant.limits),
                        usage_json(tenant.usage),
                        tenant.storage_prefix,
                        tenant.billing.transaction_id,
                        tenant.billing.invoice_number,
                        tenant.created_at,
                        tenant.updated_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"tenant {tenant.tenant_id} exists") from None

    def count_by_status(self) -> dict[TenantStatus, int]:
        # An index scan (tenants_by_status), not a table scan: the console's tenants by state.
        rows = self._database.read("SELECT status, COUNT(*) AS count FROM tenants GROUP BY status")
        return {decoding.tenant_status(row["status"]): row["count"] for row in rows}

    def set_owner(self, tenant_id: str, owner_user_id: str, updated_at: str) -> None:
        self._update(tenant_id, "owner_user_id", owner_user_id, updated_at)

    def set_status(self, tenant_id: str, status: TenantStatus, updated_at: str) -> None:
        self._update(tenant_id, "status", status.value, updated_at)

    def _update(self, tenant_id: str, column: str, value: str, updated_at: str) -> None:
        with self._database.transaction() as connection:
            cursor = connection.execute(
                f"UPDATE tenants SET {column} = ?, updated_at = ? WHERE tenant_id = ?",  # noqa: S608 - fixed names
                (value, updated_at, tenant_id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"tenant {tenant_id} not found")


def _user_from_row(row: sqlite3.Row) -> UserRecord:
    return UserRecord(
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        email=row["email"],
        role=row["role"],
        status=UserStatus(row["status"]),
        created_at=row["created_at"],
        last_sign_in_at=row["last_sign_in_at"],
    )


class SqliteUserStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, user_id: str) -> UserRecord | None:
        rows = self._database.read("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return _user_from_row(rows[0]) if rows else None

    def get_many(self, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        rows = rows_where_in(self._database, "SELECT * FROM users", "user_id", user_ids)
        return {row["user_id"]: _user_from_row(row) for row in rows}

    def find_by_email(self, email: str) -> list[UserRecord]:
        rows = self._database.read(
            "SELECT * FROM users WHERE email = ? ORDER BY created_at, user_id", (email.strip().lower(),)
        )
        return [_user_from_row(row) for row in rows]

    def find_by_tenant(self, tenant_id: str) -> list[UserRecord]:
        rows = self._database.read("SELECT * FROM users WHERE tenant_id = ? ORDER BY created_at, user_id", (tenant_id,))
        return [_user_from_row(row) for row in rows]

    def find_by_emails(self, emails: Sequence[str]) -> dict[str, list[UserRecord]]:
        keys = {email: email.strip().lower() for email in emails}
        by_key: dict[str, list[UserRecord]] = {}
        rows = rows_where_in(self._database, "SELECT * FROM users", "email", keys.values(), "created_at, user_id")
        for row in rows:
            by_key.setdefault(row["email"], []).append(_user_from_row(row))
        return {email: by_key[key] for email, key in keys.items() if key in by_key}

    def create(self, user: UserRecord) -> None:
        self._write(user, "INSERT")

    def put(self, user: UserRecord) -> None:
        self._write(user, "INSERT OR REPLACE")

    def delete(self, user_id: str) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM users WHERE user_id = ?", (user_id,))

    def record_sign_in(self, email: str, at: str) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE users SET last_sign_in_at = ? WHERE email = ? AND status = 'active'",
                (at, email.strip().lower()),
            )

    def scan(self, batch_size: int = 1000) -> Iterator[list[UserRecord]]:
        for rows in self._database.scan("users", "user_id", batch_size):
            yield [_user_from_row(row) for row in rows]

    def _write(self, user: UserRecord, verb: str) -> None:
        with self._database.transaction() as connection:
            try:
                connection.execute(
                    f"{verb} INTO users (user_id, tenant_id, email, role, status, created_at, last_sign_in_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.user_id,
                        user.tenant_id,
                        user.email.lower(),
                        user.role,
                        user.status.value,
                        user.created_at,
                        user.last_sign_in_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"user {user.user_id} exists") from None
