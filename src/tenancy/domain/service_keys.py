"""Service keys: the credentials another service (the Site Builder application) calls the
service API with.

A key reads `tnc_<name>.<secret>`: the name says whose it is (in a config file, in a log of the
caller's), the secret is 32 random bytes. Only a keyed hash of the secret is kept (HMAC-SHA256
with a pepper held outside the store): a key this random cannot be guessed from its hash, so a
slow password hash would only slow every request, while the pepper means a copy of the store
alone cannot even confirm a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["KEY_PREFIX", "ServiceKey", "check_name", "hash_secret", "new_secret", "parse_key", "render_key"]

KEY_PREFIX = "tnc_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True, slots=True)
class ServiceKey:
    name: str
    key_hash: str  # hex HMAC-SHA256 of the secret
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_name(name: str) -> str:
    """The name, or ValueError saying what a name may be."""
    if not _NAME.match(name):
        raise ValueError(
            "a key's name is 1 to 40 lower-case letters, digits and dashes, starting with a letter or digit"
        )
    return name


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def render_key(name: str, secret: str) -> str:
    return f"{KEY_PREFIX}{name}.{secret}"


def parse_key(text: str) -> tuple[str, str] | None:
    """(name, secret) of a well-formed key, else None."""
    if not text.startswith(KEY_PREFIX):
        return None
    name, dot, secret = text[len(KEY_PREFIX) :].partition(".")
    if not dot or not _NAME.match(name) or not _SECRET.match(secret):
        return None
    return name, secret


def hash_secret(secret: str, pepper: bytes) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()
