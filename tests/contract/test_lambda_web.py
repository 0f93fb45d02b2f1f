"""The whole HTTP app on Lambda (issue 19): `tenancy.lambdas.web_handler` (and `itn_handler`, the
same app) invoked in-process with API Gateway HTTP API (payload format 2.0) events of the
documented shape, against moto. One table of cases runs against both entrypoints, the app as
`tenancy serve` runs it (Starlette's TestClient) and the Lambda handler through Mangum, with the
same assertions: an ITN in and a tenant out, a forged ITN refused with its reason, 413 on a large
body, 405 and 404, sign-in and `/tenants/me` carrying the tenant, 401 without a token, the console
for an operator's cookie and not a customer's, and a form post without its CSRF token refused."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.cookies import SimpleCookie
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from tenancy import lambdas
from tenancy.bootstrap import Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import TenantStatus
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.web.app import create_app

from aws_support import Backend
from helpers import lambda_context, work

PAYFAST_ADDRESS = "197.97.145.145"  # inside PayFast's published 197.97.145.144/28
ORIGIN = "https://testserver"
OWNER_PASSWORD = "Owner-Chosen-Passw0rd!"
OPERATOR = "ops@example.com"
OPERATOR_PASSWORD = "Operator-Passw0rd!"


class Answer(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


class Client(Protocol):
    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> Answer: ...

    def post(
        self,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        json: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer: ...


@dataclass(frozen=True)
class LambdaAnswer:
    status_code: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class LambdaClient:
    """A browser or a program in front of API Gateway: each request is an HTTP API v2 event for
    `handler`, the cookies it sets (Mangum's `cookies`) sent back on the next, as a browser does."""

    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    source_ip: str = "203.0.113.10"
    jar: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> LambdaAnswer:
        return self._send("GET", path, b"", headers or {})

    def post(
        self,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        json: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> LambdaAnswer:
        sent = {**(headers or {})}
        body = content or b""
        if data is not None:
            body, sent["content-type"] = urlencode(data).encode(), "application/x-www-form-urlencoded"
        elif json is not None:
            body, sent["content-type"] = _json_bytes(json), "application/json"
        return self._send("POST", path, body, sent)

    def _send(self, method: str, target: str, body: bytes, headers: Mapping[str, str]) -> LambdaAnswer:
        path, _, query = target.partition("?")
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "cookies": [f"{name}={value}" for name, value in self.jar.items()],
            "headers": {
                "host": "testserver",
                "x-forwarded-proto": "https",
                "x-forwarded-for": self.source_ip,
                "user-agent": "test",
                **{name.lower(): value for name, value in headers.items()},
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api1234567",
                "domainName": "testserver",
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": self.source_ip,
                    "userAgent": "test",
                },
                "requestId": uuid.uuid4().hex,
                "routeKey": "$default",
                "stage": "$default",
                "timeEpoch": 1_768_694_400_000,
            },
            "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True,
        }
        if not event["cookies"]:
            del event["cookies"]
        answer = self.handler(event, lambda_context("web"))
        for cookie in answer.get("cookies", []):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(cookie)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.jar.pop(name, None)
                else:
                    self.jar[name] = morsel.value
        text = answer.get("body", "")
        if answer.get("isBase64Encoded"):
            text = base64.b64decode(text).decode("utf-8", errors="replace")
        return LambdaAnswer(answer["statusCode"], {k.lower(): v for k, v in answer.get("headers", {}).items()}, text)


def _json_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


@pytest.fixture
def services(aws_backend: Backend) -> Iterator[Services]:
    lambdas.use_services(aws_backend.services)
    yield aws_backend.services
    lambdas.use_services(None)


Entrypoint = Callable[[Services, str], Client]


def served_app(services: Services, source_ip: str) -> Client:
    """The app as `tenancy serve` runs it, over the same services."""
    client = TestClient(create_app(services), base_url=ORIGIN, client=(source_ip, 50000), follow_redirects=False)
    return client  # type: ignore[return-value]


def lambda_web(services: Services, source_ip: str) -> Client:
    return LambdaClient(lambdas.web_handler, source_ip)


ENTRYPOINTS: dict[str, Entrypoint] = {"app": served_app, "lambda": lambda_web}


def payfast(services: Services, entrypoint: str) -> Client:
    return ENTRYPOINTS[entrypoint](services, PAYFAST_ADDRESS)


def browser(services: Services, entrypoint: str) -> Client:
    return ENTRYPOINTS[entrypoint](services, "203.0.113.10")


def itn(transaction_id: str, email: str, **overrides: Any) -> bytes:
    values: dict[str, Any] = {
        "transaction_id": transaction_id,
        "email": email,
        "plan": "professional",
        "amount": Decimal("299.00"),
        "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
        "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
        **overrides,
    }
    return encode_form(build_itn(**values))


def provisioned(services: Services, entrypoint: str) -> tuple[str, str]:
    """A purchase through the ITN route, worked to a tenant; the owner's password set. (tenant id, email)"""
    transaction_id, email = f"TXN-{uuid.uuid4().hex[:10].upper()}", f"owner-{uuid.uuid4().hex[:8]}@example.com"
    answer = payfast(services, entrypoint).post(
        "/payments/payfast/itn", content=itn(transaction_id, email), headers=_form_headers()
    )
    assert (answer.status_code, answer.text) == (200, "OK")
    work(services)
    services.identity.set_password(email, OWNER_PASSWORD, permanent=True)
    return tenant_id_for(transaction_id), email


def _form_headers() -> dict[str, str]:
    return {"content-type": "application/x-www-form-urlencoded"}


def signed_in(client: Client, email: str, password: str) -> Answer:
    page = client.get("/auth/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text[:300]
    form = {"csrf_token": token.group(1), "email": email, "password": password, "next": ""}
    return client.post("/auth/login/form", data=form, headers={"origin": ORIGIN})


# --- The cases: each runs against both entrypoints ---------------------------------------------


def an_itn_in_is_a_tenant_out(services: Services, entrypoint: str) -> None:
    tenant_id, email = provisioned(services, entrypoint)

    tenant = services.tenants.get(tenant_id)
    assert tenant is not None
    assert (tenant.status, tenant.plan) == (TenantStatus.ACTIVE, "professional")
    owner = services.identity.get_user(email)
    assert owner is not None
    assert owner.tenant_id == tenant_id


def a_forged_itn_is_refused_with_its_reason(services: Services, entrypoint: str) -> None:
    transaction_id = f"TXN-{uuid.uuid4().hex[:10].upper()}"
    forged = itn(transaction_id, "forger@example.com").replace(b"amount_gross=299.00", b"amount_gross=1.00")

    answer = payfast(services, entrypoint).post("/payments/payfast/itn", content=forged, headers=_form_headers())

    assert (answer.status_code, answer.json()) == (400, {"detail": "signature mismatch"})
    assert services.journal.get(transaction_id) is None


def a_large_body_is_413(services: Services, entrypoint: str) -> None:
    answer = payfast(services, entrypoint).post(
        "/payments/payfast/itn", content=b"a=" + b"x" * 20_000, headers=_form_headers()
    )

    assert (answer.status_code, answer.json()) == (413, {"detail": "body too large"})


def the_wrong_method_is_405_and_an_unknown_path_404(services: Services, entrypoint: str) -> None:
    client = browser(services, entrypoint)

    assert client.get("/payments/payfast/itn", headers={"accept": "application/json"}).status_code == 405
    assert client.get("/no/such/page", headers={"accept": "application/json"}).status_code == 404


def sign_in_gives_a_token_that_carries_the_tenant(services: Services, entrypoint: str) -> None:
    tenant_id, email = provisioned(services, entrypoint)
    client = browser(services, entrypoint)

    tokens = client.post("/auth/login", json={"email": email, "password": OWNER_PASSWORD})
    me = client.get("/tenants/me", headers={"authorization": f"Bearer {tokens.json()['id_token']}"})

    assert tokens.status_code == 200
    assert me.status_code == 200
    assert (me.json()["tenant_id"], me.json()["plan"]) == (tenant_id, "professional")


def no_token_is_401(services: Services, entrypoint: str) -> None:
    answer = browser(services, entrypoint).get("/tenants/me")

    assert answer.status_code == 401


def an_operators_cookie_opens_the_console(services: Services, entrypoint: str) -> None:
    attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
    if services.identity.get_user(OPERATOR) is None:
        services.identity.create_user(OPERATOR, attributes, "Temporary-Passw0rd!")
    services.identity.set_password(OPERATOR, OPERATOR_PASSWORD, permanent=True)
    client = browser(services, entrypoint)

    signed = signed_in(client, OPERATOR, OPERATOR_PASSWORD)
    console = client.get("/ops")

    assert signed.status_code == 303
    assert console.status_code == 200
    assert "Operations" in console.text


def a_customers_cookie_is_refused_the_console(services: Services, entrypoint: str) -> None:
    _, email = provisioned(services, entrypoint)
    client = browser(services, entrypoint)

    signed = signed_in(client, email, OWNER_PASSWORD)
    console = client.get("/ops", headers={"accept": "application/json"})

    assert (signed.status_code, urlsplit(signed.headers["location"]).path) == (303, "/account")
    assert console.status_code == 403


def a_form_post_without_its_csrf_token_is_refused(services: Services, entrypoint: str) -> None:
    _, email = provisioned(services, entrypoint)
    client = browser(services, entrypoint)
    client.get("/auth/login")  # the CSRF cookie is set; the token is left out of the form

    answer = client.post(
        "/auth/login/form", data={"email": email, "password": OWNER_PASSWORD}, headers={"origin": ORIGIN}
    )

    assert answer.status_code == 403
    assert "session" not in " ".join(getattr(client, "jar", {}))  # no session was started


CASES = [
    an_itn_in_is_a_tenant_out,
    a_forged_itn_is_refused_with_its_reason,
    a_large_body_is_413,
    the_wrong_method_is_405_and_an_unknown_path_404,
    sign_in_gives_a_token_that_carries_the_tenant,
    no_token_is_401,
    an_operators_cookie_opens_the_console,
    a_customers_cookie_is_refused_the_console,
    a_form_post_without_its_csrf_token_is_refused,
]


@pytest.mark.parametrize("entrypoint", sorted(ENTRYPOINTS))
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_the_app_answers_alike_served_and_on_lambda(
    services: Services, entrypoint: str, case: Callable[[Services, str], None]
) -> None:
    case(services, entrypoint)


def test_the_itn_function_serves_the_itn_route_of_the_same_app_and_nothing_else(services: Services) -> None:
    transaction_id = f"TXN-{uuid.uuid4().hex[:10].upper()}"
    payfast_client = LambdaClient(lambdas.itn_handler, PAYFAST_ADDRESS)

    paid = payfast_client.post(
        "/payments/payfast/itn", content=itn(transaction_id, "itn-fn@example.com"), headers=_form_headers()
    )
    too_large = payfast_client.post("/payments/payfast/itn", content=b"a=" + b"x" * 20_000, headers=_form_headers())
    elsewhere = payfast_client.get("/tenants/me", headers={"accept": "application/json"})
    console = payfast_client.get("/ops", headers={"accept": "application/json"})

    assert (paid.status_code, paid.text) == (200, "OK")
    assert services.journal.get(transaction_id) is not None  # the job, queued as the route queues it
    assert (too_large.status_code, too_large.json()) == (413, {"detail": "body too large"})
    # Its Function URL and IAM policy are PayFast's alone: the rest of the app is the web function's.
    assert (elsewhere.status_code, console.status_code) == (404, 404)
