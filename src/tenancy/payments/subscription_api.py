"""PayFast's subscription API signature and signed headers (`payfast-subscriptions.md`).

Pure functions, no I/O: the HTTP client (`adapters.payfast_api`) and the tests' stand-in of
PayFast both sign and check through them, so the two can never disagree on the rule.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from tenancy.payments.payfast import encode_value

__all__ = [
    "API_VERSION",
    "UNSIGNED_KEYS",
    "FieldValue",
    "api_signature",
    "api_signature_matches",
    "api_timestamp",
    "signed_headers",
    "signing_string",
]

API_VERSION = "v1"
# `signature` cannot sign itself, and PayFast leaves the sandbox switch out of what is signed.
UNSIGNED_KEYS = frozenset({"signature", "testing"})

FieldValue = str | int


def signing_string(data: Mapping[str, str], passphrase: str | None) -> str:
    """What is signed: every key of `data` but `signature` and `testing`, plus `passphrase` when
    there is one, sorted by key in byte order, joined as `key=urlencode(value)` with `&`."""
    signed = {key: value for key, value in data.items() if key not in UNSIGNED_KEYS}
    if passphrase is not None:
        signed["passphrase"] = passphrase
    # Byte order (PHP's ksort on ASCII keys), not Python's code-point order, is the rule.
    keys = sorted(signed, key=lambda key: key.encode("utf-8"))
    return "&".join(f"{key}={encode_value(signed[key])}" for key in keys)


def api_signature(data: Mapping[str, str], passphrase: str | None) -> str:
    """The `signature` header for `data` (the headers merchant-id, version and timestamp, the
    query parameters and the body fields): MD5 of the signing string, lower-case hex."""
    # MD5 is PayFast's choice of signature, not ours; it protects nothing secret here.
    return hashlib.md5(signing_string(data, passphrase).encode("utf-8"), usedforsecurity=False).hexdigest()


def api_timestamp(moment: datetime) -> str:
    """`2026-12-06T13:45:00+0200`: the `timestamp` header for an aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the timestamp header needs a timezone-aware datetime")
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def _as_text(fields: Mapping[str, FieldValue]) -> dict[str, str]:
    # Amounts travel as JSON integers but are signed as their decimal text.
    return {key: str(value) for key, value in fields.items()}


def signed_headers(
    *, merchant_id: str, passphrase: str | None, timestamp: str, fields: Mapping[str, FieldValue] | None = None
) -> dict[str, str]:
    """The four headers of one call: merchant-id, version, timestamp and the signature over them
    and `fields` (the call's body fields and query parameters; `testing` is left unsigned)."""
    headers = {"merchant-id": merchant_id, "version": API_VERSION, "timestamp": timestamp}
    overlap = set(headers) & set(fields or {})
    if overlap:
        raise ValueError(f"a field may not be named like a header: {', '.join(sorted(overlap))}")
    signature = api_signature({**headers, **_as_text(fields or {})}, passphrase)
    return {**headers, "signature": signature}


def api_signature_matches(headers: Mapping[str, str], fields: Mapping[str, FieldValue], passphrase: str | None) -> bool:
    """Whether `headers["signature"]` signs the headers merchant-id, version and timestamp and
    `fields` with `passphrase`: what PayFast checks of every call."""
    signed = {key: headers.get(key, "") for key in ("merchant-id", "version", "timestamp")}
    expected = api_signature({**signed, **_as_text(fields)}, passphrase)
    return hmac.compare_digest(headers.get("signature", "").encode("utf-8"), expected.encode("ascii"))
