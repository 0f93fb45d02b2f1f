"""SigningKeys: one key per keys directory, and a verifier that accepts only what that key signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenancy.adapters.local.signing_keys import SigningKeys
from tenancy.errors import InvalidTokenError

AUDIENCE = "tenancy"
ISSUER = "http://127.0.0.1:8000"


@pytest.fixture
def keys(tmp_path: Path) -> SigningKeys:
    return SigningKeys.load_or_create(tmp_path / "keys")


def _claims(**overrides: object) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **overrides}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _private_key(tmp_path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((tmp_path / "keys" / "signing-key.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_a_second_start_uses_the_same_key(tmp_path: Path, keys: SigningKeys) -> None:
    again = SigningKeys.load_or_create(tmp_path / "keys")

    assert again.kid == keys.kid
    assert again.verify(keys.sign(_claims()), AUDIENCE, ISSUER)["sub"] == "user-1"


@pytest.mark.usefixtures("keys")
def test_the_key_file_is_private(tmp_path: Path) -> None:
    assert stat.S_IMODE((tmp_path / "keys" / "signing-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(4)

    def start() -> str:
        barrier.wait()
        return SigningKeys.load_or_create(tmp_path / "keys").kid

    with ThreadPoolExecutor(4) as pool:
        kids = list(pool.map(lambda _: start(), range(4)))

    assert len(set(kids)) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["signing-key.pem"]


def test_jwks_publishes_the_key_a_client_verifies_with(keys: SigningKeys) -> None:
    (jwk,) = keys.jwks()["keys"]
    token = keys.sign(_claims())

    assert jwk["kid"] == keys.kid == jwt.get_unverified_header(token)["kid"]
    assert {jwk["kty"], jwk["alg"], jwk["use"]} == {"RSA", "RS256", "sig"}
    client_key = jwt.PyJWK(jwk).key
    assert jwt.decode(token, client_key, algorithms=["RS256"], audience=AUDIENCE)["sub"] == "user-1"


def test_a_token_without_aud_verifies_with_no_audience(keys: SigningKeys) -> None:
    claims = _claims()
    del claims["aud"]

    assert keys.verify(keys.sign(claims), None, ISSUER)["sub"] == "user-1"
    with pytest.raises(InvalidTokenError):
        keys.verify(keys.sign(_claims()), None, ISSUER)


def test_alg_none_is_refused(keys: SigningKeys) -> None:
    token = _forge({"alg": "none", "typ": "JWT", "kid": keys.kid}, _claims(), lambda _: b"")

    with pytest.raises(InvalidTokenError):
        keys.verify(token, AUDIENCE, ISSUER)
    with pytest.raises(InvalidTokenError):
        keys.verify(token.rsplit(".", 1)[0] + ".", AUDIENCE, ISSUER)


def test_hs256_signed_with_the_public_key_is_refused(keys: SigningKeys, tmp_path: Path) -> None:
    public_pem = (
        _private_key(tmp_path)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = _forge(
        {"alg": "HS256", "typ": "JWT", "kid": keys.kid},
        _claims(),
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )

    with pytest.raises(InvalidTokenError):
        keys.verify(token, AUDIENCE, ISSUER)


def test_another_kid_is_refused_even_with_a_good_signature(keys: SigningKeys, tmp_path: Path) -> None:
    token = jwt.encode(_claims(), _private_key(tmp_path), algorithm="RS256", headers={"kid": "someone-else"})

    with pytest.raises(InvalidTokenError):
        keys.verify(token, AUDIENCE, ISSUER)


def test_a_token_from_another_rsa_key_is_refused(keys: SigningKeys) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": keys.kid})

    with pytest.raises(InvalidTokenError):
        keys.verify(token, AUDIENCE, ISSUER)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        _claims(aud="someone-else"),
        _claims(iss="https://evil.example"),
        {key: value for key, value in _claims().items() if key != "exp"},
        _claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200),
    ],
    ids=["expired", "wrong-aud", "wrong-iss", "no-exp", "issued-in-the-future"],
)
def test_bad_claims_are_refused(keys: SigningKeys, claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidTokenError):
        keys.verify(keys.sign(claims), AUDIENCE, ISSUER)


def test_expiry_follows_the_callers_clock(keys: SigningKeys) -> None:
    token = keys.sign(_claims())
    later = datetime.now(UTC) + timedelta(hours=1)

    with pytest.raises(InvalidTokenError):
        keys.verify(token, AUDIENCE, ISSUER, now=later)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "e30.e30.", "....."])
def test_garbage_is_refused(keys: SigningKeys, garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        keys.verify(garbage, AUDIENCE, ISSUER)


def test_errors_carry_no_key_material(keys: SigningKeys) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": keys.kid})

    with pytest.raises(InvalidTokenError) as caught:
        keys.verify(token, AUDIENCE, ISSUER)

    assert keys.jwks()["keys"][0]["n"] not in str(caught.value)
    assert "PRIVATE" not in str(caught.value)
