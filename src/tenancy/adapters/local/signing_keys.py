"""The embedded identity provider's RS256 key: one RSA key on disk, shared by every process.

Tokens are verified with the same rules a Cognito client applies: RS256 only, a known
`kid`, the expected issuer and audience, and an unexpired `exp`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenancy.errors import ConfigurationError, InvalidTokenError
from tenancy.private_files import private_directory, tighten

__all__ = ["SigningKeys"]

_KEY_FILE = "signing-key.pem"
_ALGORITHM = "RS256"
_KEY_BITS = 2048
_CLOCK_SKEW_SECONDS = 60


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKeys:
    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()
        numbers = self._public_key.public_numbers()
        self._n = _b64url_uint(numbers.n)
        self._e = _b64url_uint(numbers.e)
        # RFC 7638 thumbprint: stable across restarts and processes, and changes with the key.
        canonical = json.dumps({"e": self._e, "kty": "RSA", "n": self._n}, separators=(",", ":"), sort_keys=True)
        self.kid = _b64url(hashlib.sha256(canonical.encode("ascii")).digest())

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> SigningKeys:
        """The key in `keys_dir/signing-key.pem`, generated (mode 0600) on first start."""
        # 0700, and so is TENANCY_HOME when it is made here (parents=True would make it 0755).
        private_directory(keys_dir)
        path = keys_dir / _KEY_FILE
        if not path.exists():
            _write_new_key(path)
        else:
            tighten(path)  # a key copied in (or restored) with a looser mode
        try:
            private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError):
            raise ConfigurationError(f"cannot read the signing key at {path}") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"the signing key at {path} is not an RSA key")
        return cls(private_key)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private_key, algorithm=_ALGORITHM, headers={"kid": self.kid})

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public key as a JSON Web Key Set, for `/.well-known/jwks.json`."""
        return {"keys": [{"kty": "RSA", "n": self._n, "e": self._e, "kid": self.kid, "alg": _ALGORITHM, "use": "sig"}]}

    def verify(self, token: str, audience: str | None, issuer: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The claims of a token this key signed; InvalidTokenError for anything else.

        `audience=None` accepts only tokens without an `aud` (access tokens carry
        `client_id` instead). `now` lets a caller with its own clock judge expiry.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError() from None
        # Checked before decoding so a token naming another key or algorithm never reaches a verifier.
        if header.get("alg") != _ALGORITHM or header.get("kid") != self.kid:
            raise InvalidTokenError()
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=[_ALGORITHM],
                audience=audience,
                issuer=issuer,
                # Time is judged below, against the caller's clock rather than PyJWT's.
                options={"require": ["exp", "iat", "iss"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise InvalidTokenError() from None
        _check_times(claims, (now or datetime.now(UTC)).timestamp())
        return claims


def _check_times(claims: dict[str, Any], now: float) -> None:
    exp, iat = claims.get("exp"), claims.get("iat")
    if not _is_number(exp) or not _is_number(iat) or now >= exp or iat > now + _CLOCK_SKEW_SECONDS:
        raise InvalidTokenError()


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _write_new_key(path: Path) -> None:
    """Writes a fresh key unless another process got there first; both then use the winner's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL with mode 0600: the key is never readable by others, not even for an instant.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        # link() fails if the final name exists, so a concurrent starter's key is never replaced.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
