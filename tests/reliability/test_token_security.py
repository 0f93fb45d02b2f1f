"""Tokens through real HTTP: forged, expired, misdirected and tampered tokens are refused, and a
token never reads another tenant's data, on every tenant-scoped route."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenancy.adapters.local.signing_keys import SigningKeys
from tenancy.domain.model import JobStatus

from purchases import wait_for_job
from servers import RunningServer, cli_env, free_port, start_server, stop_server, tenancy


@dataclass(frozen=True)
class Owner:
    email: str
    tenant_id: str
    id_token: str


@pytest.fixture(scope="module")
def two_tenants_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Owner, Owner]]:
    home = tmp_path_factory.mktemp("token-home")
    env = cli_env(home, TENANCY_PORT=str(free_port()), TENANCY_PAYFAST_MODE="offline")
    running = start_server(home, env)
    try:
        yield running, signed_in_owner(running, "alpha"), signed_in_owner(running, "beta")
    finally:
        stop_server(running)


def signed_in_owner(server: RunningServer, name: str) -> Owner:
    email = f"{name}-{uuid.uuid4().hex[:6]}@example.com"
    sent = tenancy(server.env, "itn", "send", "--plan", "starter", "--email", email, "--json")
    wait_for_job(server, json.loads(sent.stdout)["transaction_id"], JobStatus.SUCCEEDED)
    outbox = json.loads(tenancy(server.env, "mail", "list", "--to", email, "--json").stdout)
    temporary = re.search(r"Temporary password: (\S+)", outbox[0]["text"])
    assert temporary
    challenge = httpx.post(f"{server.base_url}/auth/login", json={"email": email, "password": temporary.group(1)})
    tokens = httpx.post(
        f"{server.base_url}/auth/challenge",
        json={"email": email, "session": challenge.json()["session"], "new_password": "Own-Passw0rd!"},
    ).json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    return Owner(email, claims["custom:tenant_id"], tokens["id_token"])


def tenant_scoped_paths(server: RunningServer) -> list[str]:
    """Every GET operation that takes the caller's bearer token, read from the served OpenAPI
    document, so a new tenant-scoped route cannot escape this matrix."""
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    return [
        path
        for path, operations in document["paths"].items()
        if "get" in operations and any("HTTPBearer" in scheme for scheme in operations["get"].get("security", []))
    ]


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def server_keys(server: RunningServer) -> SigningKeys:
    return SigningKeys.load_or_create(server.home / "keys")


def get(server: RunningServer, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}".strip()})


def test_the_matrix_covers_the_tenant_routes(two_tenants_server: tuple[RunningServer, Owner, Owner]) -> None:
    server, _, _ = two_tenants_server
    assert "/tenants/me" in tenant_scoped_paths(server)


def test_each_token_reads_only_its_own_tenant_on_every_tenant_route(
    two_tenants_server: tuple[RunningServer, Owner, Owner],
) -> None:
    server, alpha, beta = two_tenants_server
    for path in tenant_scoped_paths(server):
        for owner, other in ((alpha, beta), (beta, alpha)):
            response = get(server, path, owner.id_token)
            assert response.status_code == 200, (path, response.text)
            assert owner.tenant_id in response.text
            assert other.tenant_id not in response.text
            assert other.email not in response.text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """The algorithm-confusion attack, built by hand: PyJWT itself refuses to use a PEM as an HMAC key."""
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def forgeries(server: RunningServer, alpha: Owner, beta: Owner) -> dict[str, str]:
    keys = server_keys(server)
    claims = claims_of(alpha.id_token)
    private_key = serialization.load_pem_private_key((server.home / "keys" / "signing-key.pem").read_bytes(), None)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, _, signature = alpha.id_token.split(".")
    tampered_claims = {**claims, "custom:tenant_id": beta.tenant_id}
    tampered_payload = _b64(json.dumps(tampered_claims).encode())
    unsigned = jwt.encode(tampered_claims, key=None, algorithm="none")  # type: ignore[arg-type]
    now = int(time.time())
    return {
        "alg none": unsigned,
        "alg none, no signature part": unsigned.rstrip("."),
        "HS256 signed with the public key": hs256_with(public_pem, claims, header_of(alpha.id_token)["kid"]),
        "wrong kid": jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "not-our-kid"}),
        "our kid, another key": jwt.encode(
            claims, stranger, algorithm="RS256", headers={"kid": header_of(alpha.id_token)["kid"]}
        ),
        "expired": keys.sign({**claims, "iat": now - 7200, "exp": now - 3600}),
        "wrong audience": keys.sign({**claims, "aud": "another-app"}),
        "wrong issuer": keys.sign({**claims, "iss": "https://evil.example"}),
        "access token used as ID token": keys.sign({**claims, "token_use": "access"}),
        "tampered custom:tenant_id": f"{header}.{tampered_payload}.{signature}",
        "garbage": "not.a.token",
        "empty": "",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "alg none, no signature part",
        "HS256 signed with the public key",
        "wrong kid",
        "our kid, another key",
        "expired",
        "wrong audience",
        "wrong issuer",
        "access token used as ID token",
        "tampered custom:tenant_id",
        "garbage",
        "empty",
    ],
)
def test_forged_and_misdirected_tokens_are_refused_on_every_tenant_route(
    two_tenants_server: tuple[RunningServer, Owner, Owner], case: str
) -> None:
    server, alpha, beta = two_tenants_server
    token = forgeries(server, alpha, beta)[case]
    for path in tenant_scoped_paths(server):
        response = get(server, path, token)
        assert response.status_code == 401, (case, path, response.text)
        assert beta.tenant_id not in response.text
        assert alpha.tenant_id not in response.text


def test_a_genuine_token_signed_by_the_server_key_still_works(
    two_tenants_server: tuple[RunningServer, Owner, Owner],
) -> None:
    server, alpha, _ = two_tenants_server
    resigned = server_keys(server).sign(claims_of(alpha.id_token))
    assert get(server, "/tenants/me", resigned).status_code == 200
