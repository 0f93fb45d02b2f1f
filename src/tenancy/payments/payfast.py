"""PayFast's ITN format: parsing that keeps order and blanks, signatures, and source addresses.

Pure functions; the facts are in `shared/spec/payfast-itn.md` (with test vectors).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, quote_plus

from tenancy.errors import InvalidInputError

__all__ = [
    "CHECKOUT_FIELD_ORDER",
    "Fields",
    "checkout_signature",
    "client_address",
    "encode_value",
    "field_value",
    "in_ranges",
    "itn_signature",
    "parameter_string",
    "parse_itn",
    "signature_matches",
    "unsigned_fields",
]

Fields = Sequence[tuple[str, str]]

# The documented order of the checkout form's fields (the signature depends on it).
CHECKOUT_FIELD_ORDER = (
    "merchant_id", "merchant_key", "return_url", "cancel_url", "notify_url",
    "name_first", "name_last", "email_address", "cell_number",
    "m_payment_id", "amount", "item_name", "item_description",
    "custom_int1", "custom_int2", "custom_int3", "custom_int4", "custom_int5",
    "custom_str1", "custom_str2", "custom_str3", "custom_str4", "custom_str5",
    "email_confirmation", "confirmation_address", "payment_method",
    "subscription_type", "billing_date", "recurring_amount", "frequency", "cycles",
)  # fmt: skip


def parse_itn(body: bytes) -> list[tuple[str, str]]:
    """The posted fields in the order received, blanks kept; InvalidInputError if unreadable."""
    try:
        text = body.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError("body is not UTF-8") from None
    try:
        fields = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError("body is not UTF-8 (a percent-escape decodes to invalid bytes)") from None
    except ValueError:
        raise InvalidInputError("body is not form-urlencoded") from None
    if not fields:
        raise InvalidInputError("body is empty")
    keys = [key for key, _ in fields]
    if not all(keys):
        raise InvalidInputError("a field has no name")
    if len(keys) != len(set(keys)):
        raise InvalidInputError("a field appears more than once")
    return fields


def field_value(fields: Fields, name: str) -> str | None:
    for key, value in fields:
        if key == name:
            return value
    return None


def encode_value(value: str) -> str:
    """PHP's urlencode: spaces to '+', uppercase hex, only A-Z a-z 0-9 _ . - left as they are."""
    return quote_plus(value, safe="").replace("~", "%7E")


def parameter_string(fields: Fields) -> str:
    """`key=value&...` of the fields before `signature`, blanks included: what PayFast signed
    and what its validate endpoint is asked about."""
    parts: list[str] = []
    for key, value in fields:
        if key == "signature":
            break
        parts.append(f"{key}={encode_value(value)}")
    return "&".join(parts)


def _with_passphrase(base: str, passphrase: str | None) -> str:
    if passphrase is None:
        return base
    return f"{base}&passphrase={encode_value(passphrase)}"


def itn_signature(fields: Fields, passphrase: str | None) -> str:
    """The ITN signature: MD5 of the parameter string plus the passphrase, lowercase hex."""
    base = _with_passphrase(parameter_string(fields), passphrase)
    # MD5 is PayFast's choice of signature, not ours; it is not used for anything secret here.
    return hashlib.md5(base.encode("utf-8"), usedforsecurity=False).hexdigest()


def unsigned_fields(fields: Fields) -> list[str]:
    """The names of the fields after `signature`: PayFast signs nothing there, and sends nothing
    there either (its signature is always the last field)."""
    names = [key for key, _ in fields]
    return names[names.index("signature") + 1 :] if "signature" in names else []


def signature_matches(fields: Fields, passphrase: str | None) -> bool:
    """Whether the signature covers the whole ITN: it matches what precedes it, and nothing
    follows it (a field after the signature would be taken unsigned)."""
    if unsigned_fields(fields):
        return False
    received = field_value(fields, "signature") or ""
    expected = itn_signature(fields, passphrase)
    return hmac.compare_digest(received.encode("utf-8"), expected.encode("ascii"))


def checkout_signature(fields: Iterable[tuple[str, str]], passphrase: str | None) -> str:
    """The checkout form's signature: empty values dropped, values trimmed, passphrase appended."""
    parts = [f"{key}={encode_value(value.strip())}" for key, value in fields if value.strip() != ""]
    base = _with_passphrase("&".join(parts), passphrase)
    return hashlib.md5(base.encode("utf-8"), usedforsecurity=False).hexdigest()


def in_ranges(address: str, ranges: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in ranges)


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: Sequence[str]) -> str:
    """The address that sent the request: the socket peer, unless the peer is a trusted
    proxy, in which case X-Forwarded-For is read right to left past every trusted proxy."""
    address = peer
    if forwarded_for is None or not in_ranges(peer, trusted_proxies):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        address = hop
        if not in_ranges(hop, trusted_proxies):
            break
    return address
