"""Tenants and users tables on SQLite, with the data contract's fields."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from tenancy.adapters.local.database import Database
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import Billing, Tenant, TenantStatus, Usage, UserRecord, UserStatus
from tenancy.domain.plans import Limits
from tenancy.errors import ItemAlreadyExistsError, NotFoundError

__all__ = ["SqliteTenantStore", "SqliteUserStore"]


def tenant_from_row(row: sqlite3.Row) -> Tenant:
    return Tenant(
        tenant_id=row["tenant_id"],
        owner_user_id=row["owner_user_id"],
        name=row["name"],
        plan=row["plan"],
        status=TenantStatus(row["status"]),
        limits=Limits(**json.loads(row["limits"])),
        usage=Usage(**json.loads(row["usage"])),
        storage_prefix=row["storage_prefix"],
        billing=Billing(row["transaction_id"], row["invoice_number"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _limits_json(limits: Limits) -> str:
    return json.dumps(
        {
            "max_sites": limits.max_sites,
            "max_generations_per_month": limits.max_generations_per_month,
            "max_storage_mb": limits.max_storage_mb,
            "custom_domain_allowed": limits.custom_domain_allowed,
        }
    )


def _usage_json(usage: Usage) -> str:
    return json.dumps(
        {
            "sites_count": usage.sites_count,
            "generations_this_month": usage.generations_this_month,
            "storage_used_mb": usage.storage_used_mb,
        }
    )


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
                        _limits_json(tenant.limits),
                        _usage_json(tenant.usage),
                        tenant.storage_prefix,
                        tenant.billing.transaction_id,
                        tenant.billing.invoice_number,
                        tenant.created_at,
                        tenant.updated_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"tenant {tenant.tenant_id} exists") from None

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
    )


class SqliteUserStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def get(self, user_id: str) -> UserRecord | None:
        rows = self._database.read("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return _user_from_row(rows[0]) if rows else None

    def find_by_email(self, email: str) -> list[UserRecord]:
        rows = self._database.read(
            "SELECT * FROM users WHERE email = ? ORDER BY created_at, user_id", (email.strip().lower(),)
        )
        return [_user_from_row(row) for row in rows]

    def create(self, user: UserRecord) -> None:
        self._write(user, "INSERT")

    def put(self, user: UserRecord) -> None:
        self._write(user, "INSERT OR REPLACE")

    def delete(self, user_id: str) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM users WHERE user_id = ?", (user_id,))

    def scan(self, batch_size: int = 1000) -> Iterator[list[UserRecord]]:
        for rows in self._database.scan("users", "user_id", batch_size):
            yield [_user_from_row(row) for row in rows]

    def _write(self, user: UserRecord, verb: str) -> None:
        with self._database.transaction() as connection:
            try:
                connection.execute(
                    f"{verb} INTO users (user_id, tenant_id, email, role, status, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (user.user_id, user.tenant_id, user.email.lower(), user.role, user.status.value, user.created_at),
                )
            except sqlite3.IntegrityError:
                raise ItemAlreadyExistsError(f"user {user.user_id} exists") from None
