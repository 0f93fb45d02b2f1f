"""Identifiers derived deterministically from the transaction id, so a retry never mints a second one."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata

from tenancy.errors import InvalidInputError

__all__ = [
    "invoice_number_for",
    "new_transaction_id",
    "normalize_email",
    "normalized_email_or_none",
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


# Characters that show nothing, or nothing but space, yet make a different string: controls,
# format characters (zero-width space and joiners, bidi marks and overrides, the BOM, soft hyphen),
# line and paragraph separators, every space but U+0020, surrogates, private-use and unassigned
# code points, and the default-ignorable letters and marks Unicode lists (Hangul fillers, the
# combining grapheme joiner, variation selectors, Khmer inherent vowels).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs", "Cs", "Co", "Cn"})
_DEFAULT_IGNORABLE_RANGES = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0000, 0xE0FFF),
)


# Printable ASCII without the space: what every address that needs no further check is made of.
_PLAIN_ASCII = re.compile(r"[!-~]*")


def _invisible(character: str) -> bool:
    if character == " ":
        return False  # a visible (if invalid) character; the address checks refuse it
    code = ord(character)
    return unicodedata.category(character) in _INVISIBLE_CATEGORIES or any(
        low <= code <= high for low, high in _DEFAULT_IGNORABLE_RANGES
    )


def _described(character: str) -> str:
    return f"U+{ord(character):04X} {unicodedata.name(character, 'unnamed character')}"


def _folded(text: str) -> str:
    """Unicode's compatibility-caseless form: NFKC, case folded, NFKC again (folding can undo NFKC)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def normalize_email(email: str) -> str:
    """The one spelling of an email address that names an account, used for every sign-up,
    sign-in, password reset and lookup: surrounding whitespace stripped, then Unicode's
    compatibility-caseless form (NFKC, casefold, NFKC). "" for a blank address (callers decide
    what blank means).

    InvalidInputError, with a message a person can act on, for an address that holds an
    invisible character (zero-width, bidi, control, a non-breaking space...) or any character
    outside ASCII. Refusing rather than mapping is deliberate: NFKC alone would turn the Kelvin
    sign and full-width letters into ASCII (so "\u212aate@" would sign in as "kate@"), while the
    dotless i, Cyrillic and Greek lookalikes, or "ß" (which casefolds to "ss"), would stay apart or
    fold onto another mailbox's name. Either way two spellings would reach one account, or one
    person would see two accounts that look the same, and mail would go to an address nobody typed.
    With ASCII only, what is stored, what signs in and where mail goes are the same string, case
    aside (for ASCII, NFKC changes nothing and casefold is lower()). Internationalised addresses
    are refused; an IDN domain can be given in its ASCII (xn--) form.
    """
    stripped = email.strip()
    if _PLAIN_ASCII.fullmatch(stripped):
        # Printable ASCII only (the common case, and a hot path): nothing invisible, nothing to fold
        # but case.
        return stripped.lower()
    invisible = next((character for character in stripped if _invisible(character)), None)
    if invisible is not None:
        raise InvalidInputError(
            f"The email address contains an invisible character ({_described(invisible)}); type it again without it"
        )
    if not stripped.isascii():
        foreign = next(character for character in stripped if not character.isascii())
        message = (
            f"The email address contains {foreign!r} ({_described(foreign)}): email addresses must be "
            "typed in plain ASCII letters, digits and symbols"
        )
        # Only a compatibility variant of plain ASCII (full-width letters, the Kelvin sign) is
        # suggested; casefold-only mappings (ß -> ss) name another mailbox, so they are not.
        compatible = unicodedata.normalize("NFKC", stripped)
        if compatible.isascii():
            message += f" (did you mean {compatible.lower()}?)"
        raise InvalidInputError(message)
    return _folded(stripped)


def normalized_email_or_none(email: str | None) -> str | None:
    """`normalize_email`, or None for a blank or refused address: for reading what others wrote
    (an ITN, a stored record), where a refusal must mark the address unusable rather than fail."""
    try:
        return normalize_email(email or "") or None
    except InvalidInputError:
        return None


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
