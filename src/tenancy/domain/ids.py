"""Identifiers derived deterministically from the transaction id, so a retry never mints a second one."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = [
    "invoice_number_for",
    "new_transaction_id",
    "normalize_email",
    "storage_prefix_for",
    "temporary_password",
    "tenant_id_for",
]

_TRANSACTION_SUFFIX = re.compile(r"^TXN-([A-Za-z0-9_-]+)$")


def _digest_slice(transaction_id: str, purpose: str, length: int) -> str:
    digest = hashlib.sha256(f"{purpose}:{transaction_id}".encode()).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:length]


def tenant_id_for(transaction_id: str) -> str:
    """`ten_` + 16 base32 characters of a hash of the transaction id (80 bits)."""
    return "ten_" + _digest_slice(transaction_id, "tenant", 16)


def invoice_number_for(transaction_id: str) -> str:
    """`TXN-123456` gives `INV-123456` (as RB-001 writes it); other shapes get a hash slice."""
    match = _TRANSACTION_SUFFIX.match(transaction_id)
    if match:
        return f"INV-{match.group(1)}"
    return "INV-" + _digest_slice(transaction_id, "invoice", 12).upper()


def storage_prefix_for(tenant_id: str) -> str:
    return f"tenants/{tenant_id}"


def new_transaction_id() -> str:
    return "TXN-" + secrets.token_hex(8).upper()


def normalize_email(email: str) -> str:
    return email.strip().lower()


_PASSWORD_ALPHABETS = (
    "ABCDEFGHJKLMNPQRSTUVWXYZ",
    "abcdefghijkmnopqrstuvwxyz",
    "23456789",
    # Symbols that survive the AWS CLI's shorthand (RB-001 5: PASSWORD=...), a shell and a URL form.
    "%+-@_.:",
)


def temporary_password(length: int = 16) -> str:
    """A random password with upper, lower, digit and symbol, as Cognito's default policy needs."""
    rng = secrets.SystemRandom()
    characters = [rng.choice(alphabet) for alphabet in _PASSWORD_ALPHABETS]
    pool = "".join(_PASSWORD_ALPHABETS)
    characters += [rng.choice(pool) for _ in range(length - len(characters))]
    rng.shuffle(characters)
    return "".join(characters)
