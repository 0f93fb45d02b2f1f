"""A signed ITN in, a working tenant out: through real HTTP, real SMTP and a real server process."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import jwt
import pytest

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import tenant_id_for
from tenancy.payments.payfast import parameter_string
from tenancy.payments.simulator import build_itn, encode_form

from helpers import wait_until
from purchases import keyed, status_key_for
from servers import PAYFAST_ADDRESS, MailCatcher, PayfastStandIn, RunningServer, temporary_password_in

PRICES = {"starter": Decimal("99.00"), "professional": Decimal("299.00"), "enterprise": Decimal("999.00")}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def new_purchase(plan: str = "professional", **overrides: object) -> tuple[list[tuple[str, str]], str, str]:
    transaction_id = f"TXN-{uuid.uuid4().hex[:12].upper()}"
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    values: dict[str, object] = {
        "transaction_id": transaction_id,
        "email": email,
        "plan": plan,
        "amount": PRICES.get(plan, Decimal("299.00")),
        "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
        "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
        "custom": keyed(transaction_id),  # as PayFast echoes a checkout form's status key digest
    }
    values.update(overrides)
    return build_itn(**values), transaction_id, email  # type: ignore[arg-type]


def post_itn(
    server: RunningServer, payfast: PayfastStandIn, fields: list[tuple[str, str]], source: str = PAYFAST_ADDRESS
) -> httpx.Response:
    payfast.genuine.add(parameter_string(fields))
    return httpx.post(
        f"{server.base_url}/payments/payfast/itn",
        content=encode_form(fields),
        headers={**FORM, "X-Forwarded-For": source},
        timeout=30,
    )


def provisioning(server: RunningServer, transaction_id: str) -> httpx.Response:
    """`GET /provisioning/{transaction_id}` with the purchase's status key, as its buyer may ask."""
    params = {"key": status_key_for(transaction_id)}
    return httpx.get(f"{server.base_url}/provisioning/{transaction_id}", params=params, timeout=5)


def wait_for_status(server: RunningServer, transaction_id: str, wanted: str = "succeeded") -> dict[str, object]:
    last: dict[str, object] = {}

    def reached() -> bool:
        nonlocal last
        response = provisioning(server, transaction_id)
        if response.status_code == 200:
            last = response.json()
        return last.get("status") == wanted

    wait_until(reached, 30, lambda: f"{transaction_id} to reach {wanted}: {last}", every=0.05)
    return last


def wait_for_email(mail: MailCatcher, address: str, count: int = 1) -> list[str]:
    wait_until(lambda: len(mail.to(address)) >= count, 15, f"a welcome email for {address}", every=0.05)
    return [message.get_payload(0).get_payload(decode=True).decode() for message in mail.to(address)]


def queued_messages(server: RunningServer, transaction_id: str) -> int:
    """Messages for the purchase still in the work queue: waiting, or in a worker's hands."""
    services = server.services()
    try:
        return len(services.queue.messages(transaction_id=transaction_id, dead_lettered=False))
    finally:
        services.close()


def count_rows(server: RunningServer, sql: str, *parameters: object) -> int:
    services = server.services()
    try:
        assert services.database is not None
        return int(services.database.read(sql, parameters)[0][0])
    finally:
        services.close()


def test_paid_itn_becomes_a_tenant_the_owner_can_log_into(
    server: RunningServer, smtp_server: tuple[MailCatcher, int], payfast: PayfastStandIn
) -> None:
    mail, _ = smtp_server
    fields, transaction_id, email = new_purchase("professional")

    response = post_itn(server, payfast, fields)

    assert response.status_code == 200
    assert parameter_string(fields) in payfast.asked
    wait_for_status(server, transaction_id)
    (welcome,) = wait_for_email(mail, email)
    message = mail.to(email)[0]
    assert message["Subject"] == "Welcome to Site Builder"
    assert message["From"] == "noreply@kimmyai.io"
    assert f"{server.base_url}/auth/login" in welcome

    login = httpx.post(
        f"{server.base_url}/auth/login", json={"email": email, "password": temporary_password_in(welcome)}
    )
    assert login.status_code == 200
    assert login.json()["challenge"] == "NEW_PASSWORD_REQUIRED"
    tokens = httpx.post(
        f"{server.base_url}/auth/challenge",
        json={"email": email, "session": login.json()["session"], "new_password": "Brand-new-Passw0rd!"},
    )
    assert tokens.status_code == 200
    body = tokens.json()
    assert set(body) == {"id_token", "access_token", "refresh_token", "expires_in", "token_type"}

    tenant_id = tenant_id_for(transaction_id)
    jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(body["id_token"], key, algorithms=["RS256"], audience="tenancy")
    assert claims["custom:tenant_id"] == tenant_id
    assert claims["email"] == email
    assert claims["custom:roles"] == "tenant_admin"
    assert claims["token_use"] == "id"

    me = httpx.get(f"{server.base_url}/tenants/me", headers={"Authorization": f"Bearer {body['id_token']}"})
    assert me.status_code == 200
    tenant = me.json()
    assert tenant["tenant_id"] == tenant_id
    assert tenant["status"] == "active"
    assert tenant["plan"] == "professional"
    assert tenant["limits"] == {
        "max_sites": 5,
        "max_generations_per_month": 100,
        "max_storage_mb": 500,
        "custom_domain_allowed": True,
    }

    again = httpx.post(f"{server.base_url}/auth/login", json={"email": email, "password": "Brand-new-Passw0rd!"})
    assert again.status_code == 200
    assert "id_token" in again.json()


def test_duplicate_itns_sequential_and_concurrent_make_one_tenant_one_user_one_email(
    server: RunningServer, smtp_server: tuple[MailCatcher, int], payfast: PayfastStandIn
) -> None:
    mail, _ = smtp_server
    fields, transaction_id, email = new_purchase("starter")

    statuses = [post_itn(server, payfast, fields).status_code for _ in range(3)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses += list(pool.map(lambda _: post_itn(server, payfast, fields).status_code, range(10)))

    assert statuses == [200] * 13
    wait_for_status(server, transaction_id)
    wait_for_email(mail, email)
    # Every message queued for the purchase, a wrongly queued second one too, is handled before counting.
    handled = f"every queued message for {transaction_id} to be handled"
    wait_until(lambda: queued_messages(server, transaction_id) == 0, 15, handled, every=0.05)
    assert len(mail.to(email)) == 1
    assert count_rows(server, "SELECT COUNT(*) FROM tenants WHERE transaction_id = ?", transaction_id) == 1
    assert count_rows(server, "SELECT COUNT(*) FROM users WHERE email = ?", email) == 1
    assert count_rows(server, "SELECT COUNT(*) FROM identity_users WHERE username = ?", email) == 1
    assert count_rows(server, "SELECT COUNT(*) FROM provisioning WHERE transaction_id = ?", transaction_id) == 1
    verdicts = server.services().ledger.find(transaction_id=transaction_id)
    assert [entry.verdict.value for entry in verdicts].count("accepted") == 1
    assert len(verdicts) == 13


@pytest.mark.parametrize(
    ("case", "change", "reason"),
    [
        ("forged signature", {"passphrase": "not-our-passphrase"}, "signature"),
        ("wrong amount", {"amount": Decimal("1.00")}, "amount"),
        ("wrong merchant", {"merchant_id": "10000999"}, "merchant"),
        ("unknown plan", {"plan": "platinum"}, "plan"),
    ],
)
def test_invalid_itn_is_refused_with_400_and_provisions_nothing(
    server: RunningServer,
    smtp_server: tuple[MailCatcher, int],
    payfast: PayfastStandIn,
    case: str,
    change: dict[str, object],
    reason: str,
) -> None:
    mail, _ = smtp_server
    fields, transaction_id, email = new_purchase(**change)  # type: ignore[arg-type]

    response = post_itn(server, payfast, fields)

    assert response.status_code == 400, case
    assert reason in response.json()["detail"]
    # An accepted ITN is journalled and queued in the request's own transaction, and only a queued
    # message is ever provisioned: with nothing queued by now, nothing can follow later.
    assert queued_messages(server, transaction_id) == 0
    assert count_rows(server, "SELECT COUNT(*) FROM provisioning WHERE transaction_id = ?", transaction_id) == 0
    assert provisioning(server, transaction_id).status_code == 404
    assert mail.to(email) == []
    assert count_rows(server, "SELECT COUNT(*) FROM tenants WHERE transaction_id = ?", transaction_id) == 0
    (entry,) = server.services().ledger.find(transaction_id=transaction_id)
    assert entry.verdict.value == "rejected"


def test_itn_from_outside_payfast_ranges_is_refused(server: RunningServer, payfast: PayfastStandIn) -> None:
    fields, transaction_id, _ = new_purchase()

    response = post_itn(server, payfast, fields, source="8.8.8.8")

    assert response.status_code == 400
    assert "8.8.8.8" in response.json()["detail"]
    assert count_rows(server, "SELECT COUNT(*) FROM provisioning WHERE transaction_id = ?", transaction_id) == 0


def test_itn_payfast_does_not_confirm_is_refused(server: RunningServer, payfast: PayfastStandIn) -> None:
    fields, transaction_id, _ = new_purchase()

    response = httpx.post(
        f"{server.base_url}/payments/payfast/itn",
        content=encode_form(fields),
        headers={**FORM, "X-Forwarded-For": PAYFAST_ADDRESS},
    )  # not registered with the stand-in: it answers INVALID

    assert response.status_code == 400
    assert "confirm" in response.json()["detail"]
    assert count_rows(server, "SELECT COUNT(*) FROM provisioning WHERE transaction_id = ?", transaction_id) == 0


def test_failed_and_pending_payments_are_recorded_but_not_provisioned(
    server: RunningServer, payfast: PayfastStandIn
) -> None:
    for status in ("FAILED", "PENDING"):
        fields, transaction_id, _ = new_purchase(status=status)
        assert post_itn(server, payfast, fields).status_code == 200
        (entry,) = server.services().ledger.find(transaction_id=transaction_id)
        assert entry.payment_status == status
        assert provisioning(server, transaction_id).status_code == 404


def test_login_answers_follow_rb001_symptoms(server: RunningServer) -> None:
    unknown = httpx.post(
        f"{server.base_url}/auth/login", json={"email": "nobody@example.com", "password": "Whatever-1!"}
    )
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == "Account not found"

    services = server.services()
    try:
        services.identity.create_user(
            "orphan@example.com",
            {"email": "orphan@example.com", "custom:tenant_id": "ten_missing", "custom:roles": "tenant_admin"},
            "Orphan-Passw0rd!",
        )
    finally:
        services.close()
    wrong = httpx.post(f"{server.base_url}/auth/login", json={"email": "orphan@example.com", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "Incorrect email or password"
    orphan = httpx.post(
        f"{server.base_url}/auth/login", json={"email": "orphan@example.com", "password": "Orphan-Passw0rd!"}
    )
    assert orphan.status_code == 403
    assert orphan.json()["detail"] == "Tenant not found"


def test_tenants_me_refuses_missing_and_forged_tokens(server: RunningServer) -> None:
    assert httpx.get(f"{server.base_url}/tenants/me").status_code == 401
    forged = jwt.encode(
        {"custom:tenant_id": "ten_other", "token_use": "id"}, "a-secret-of-at-least-32-bytes-long!", algorithm="HS256"
    )
    response = httpx.get(f"{server.base_url}/tenants/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_healthz_answers_a_get_and_a_head_probe(server: RunningServer) -> None:
    assert httpx.get(f"{server.base_url}/healthz").json() == {"status": "ok"}
    probe = httpx.head(f"{server.base_url}/healthz")
    assert probe.status_code == 200
    assert probe.content == b""


def test_oversized_and_unreadable_bodies_are_refused(server: RunningServer) -> None:
    url = f"{server.base_url}/payments/payfast/itn"
    assert httpx.post(url, content=b"a=" + b"x" * 100_000, headers=FORM).status_code == 413
    unreadable = httpx.post(url, content=b"m_payment_id=\xff\xfe", headers=FORM)
    assert unreadable.status_code == 400
    assert "UTF-8" in unreadable.json()["detail"]


def test_openapi_document_describes_every_route(server: RunningServer) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json").json()

    assert set(document["paths"]) >= {
        "/payments/payfast/itn",
        "/auth/login",
        "/auth/challenge",
        "/auth/refresh",
        "/tenants/me",
        "/.well-known/jwks.json",
        "/healthz",
        "/provisioning/{transaction_id}",
    }
