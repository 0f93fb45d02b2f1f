"""The roles an identity user's `custom:roles` carries: a tenant admin owns one tenant; an
operator runs the operations console and belongs to no tenant."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["OPERATOR_ROLE", "ROLES_CLAIM", "TENANT_ADMIN_ROLE", "roles_of"]

OPERATOR_ROLE = "operator"
TENANT_ADMIN_ROLE = "tenant_admin"
ROLES_CLAIM = "custom:roles"


def roles_of(claims: Mapping[str, object]) -> frozenset[str]:
    """The roles named in the comma-separated `custom:roles` of token claims or user attributes;
    empty when there is none."""
    value = claims.get(ROLES_CLAIM)
    if not isinstance(value, str):
        return frozenset()
    return frozenset(role.strip() for role in value.split(",") if role.strip())
