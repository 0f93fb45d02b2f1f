"""A tenant's whole life through the real `tenancy serve` in sandbox mode, with PayFast's validate
endpoint and subscription API played by local stand-ins, real SMTP, the real CLI driving time
(`tenancy lifecycle run --as-of`), and a webhook receiver that checks every event's Standard
Webhooks signature:

subscribe, renew, miss a payment (past due, with the grace date), suspended (403 with the reason;
the account page offers Pay now), pay now (the same tenant id back, the old subscription cancelled
at PayFast), cancel, cancelled, deleted ("Account not found", a tombstone kept). Each move's event
arrives once, signed."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.model import JobStatus
from tenancy.payments.payfast import parameter_string
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token

from helpers import wait_until
from payfast_api_standin import PayfastApiStandIn, running_payfast_api
from purchases import wait_for_job
from servers import (
    PAYFAST_ADDRESS,
    MailCatcher,
    PayfastStandIn,
    RunningServer,
    WebhookReceiver,
    free_port,
    server_env,
    start_server,
    stop_server,
    temporary_password_in,
    tenancy,
    welcome_text,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EMAIL = "lifecycle-owner@example.com"
FIRST_CHECKOUT = "TXN-LIFEE2E1"
PAY_NOW_CHECKOUT = "TXN-LIFEE2E2"
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture(scope="module")
def payfast_api() -> Iterator[PayfastApiStandIn]:
    with running_payfast_api(merchant_id=PAYFAST_SANDBOX_MERCHANT_ID, passphrase=PAYFAST_SANDBOX_PASSPHRASE) as api:
        yield api


@pytest.fixture(scope="module")
def application() -> Iterator[WebhookReceiver]:
    """The Site Builder application's end of the lifecycle webhooks."""
    receiver = WebhookReceiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield receiver
    receiver.shutdown()
    receiver.server_close()


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: tuple[MailCatcher, int],
    payfast: PayfastStandIn,
    payfast_api: PayfastApiStandIn,
    application: WebhookReceiver,
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("lifecycle-home")
    env = server_env(
        home,
        free_port(),
        smtp_server[1],
        payfast.server_address[1],
        TENANCY_PAYFAST_API_URL=payfast_api.url,
        TENANCY_WEBHOOK_URL=f"{application.url}/hooks/tenancy",
        TENANCY_WEBHOOK_SECRET=SECRET,
        TENANCY_NOTICE_POLL_SECONDS="0.2",
    )
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()
    assert SECRET not in running.log_text()


def itn(server: RunningServer, validate: PayfastStandIn, **values: Any) -> httpx.Response:
    fields = build_itn(
        **{
            "email": EMAIL,
            "plan": "professional",
            "amount": "299.00",
            "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
            "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
            "billing_date": "2026-12-06",
            **values,
        }
    )
    validate.genuine.add(parameter_string(fields))
    headers = {**FORM, "X-Forwarded-For": PAYFAST_ADDRESS}
    return httpx.post(
        f"{server.base_url}/payments/payfast/itn", content=encode_form(fields), headers=headers, timeout=30
    )


def accepted(server: RunningServer, validate: PayfastStandIn, **values: Any) -> None:
    """An ITN PayFast sends, answered 200 (kept and acted on)."""
    answer = itn(server, validate, **values)
    assert answer.status_code == 200, answer.text


def lifecycle_run(server: RunningServer, as_of: str) -> dict[str, Any]:
    result = tenancy(server.env, "lifecycle", "run", "--as-of", as_of, "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def tenant_api(server: RunningServer, password: str) -> httpx.Response:
    signed_in = httpx.post(f"{server.base_url}/auth/login", json={"email": EMAIL, "password": password}, timeout=30)
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["id_token"]
    return httpx.get(f"{server.base_url}/tenants/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def events_of(application: WebhookReceiver) -> list[str]:
    """Every event received, its signature verified as the application verifies it."""
    verifier = Webhook(SECRET)
    with application.lock:
        received = list(application.received)
    types = []
    for delivery in received:
        payload = verifier.verify(delivery.raw, delivery.headers)
        assert delivery.headers["webhook-id"].startswith("evt_")
        types.append(payload["type"])
    return types


def test_a_tenant_from_subscription_to_cancellation_with_every_move_signed_to_the_application(
    live_server: RunningServer,
    payfast: PayfastStandIn,
    payfast_api: PayfastApiStandIn,
    smtp_server: tuple[MailCatcher, int],
    application: WebhookReceiver,
) -> None:
    catcher = smtp_server[0]
    first_token, second_token = new_subscription_token(), new_subscription_token()
    payfast_api.add(first_token, amount=29900, run_date="2027-01-06")

    # Subscribe, and set a password from the welcome email's temporary one.
    accepted(live_server, payfast, transaction_id=FIRST_CHECKOUT, pf_payment_id="9300000001", token=first_token)
    wait_for_job(live_server, FIRST_CHECKOUT, JobStatus.SUCCEEDED)
    services = live_server.services()
    try:
        job = services.journal.get(FIRST_CHECKOUT)
        assert job is not None
        tenant_id = job.tenant_id
    finally:
        services.close()
    temporary = temporary_password_in(welcome_text(catcher, EMAIL))
    challenge = httpx.post(
        f"{live_server.base_url}/auth/login", json={"email": EMAIL, "password": temporary}, timeout=30
    )
    password = "Lifecycle-Passw0rd!"
    chosen = httpx.post(
        f"{live_server.base_url}/auth/challenge",
        json={"email": EMAIL, "session": challenge.json()["session"], "new_password": password},
        timeout=30,
    )
    assert chosen.status_code == 200, chosen.text

    # A renewal: paid through 2027-02-06; PayFast's next charge is then on that date.
    accepted(live_server, payfast, transaction_id=FIRST_CHECKOUT, pf_payment_id="9300000002", token=first_token)
    payfast_api.add(first_token, amount=29900, run_date="2027-02-06", cycles_complete=1)
    wait_until(lambda: tenant_api(live_server, password).json()["paid_through"] == "2027-02-06", 10, "the renewal")

    # The next charge fails: PayFast's run date stays on 2027-02-06. Past due after a day's slack.
    assert lifecycle_run(live_server, "2027-02-07T12:00:00Z")["applied"] == []
    [past_due] = lifecycle_run(live_server, "2027-02-08T09:00:00Z")["applied"]
    assert (past_due["from"], past_due["to"]) == ("active", "past_due")
    me = tenant_api(live_server, password)
    assert me.status_code == 200
    assert (me.json()["status"], me.json()["grace_until"]) == ("past_due", "2027-02-14")

    # Grace over: suspended. Sign-in works; the API and the account page say why and where to pay.
    [suspended] = lifecycle_run(live_server, "2027-02-15T09:00:00Z")["applied"]
    assert suspended["to"] == "suspended"
    refused = tenant_api(live_server, password)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Tenant suspended"
    assert refused.json()["reason"] == "payment overdue"
    assert refused.json()["billing_url"].endswith("/account")
    assert any("suspended" in message["Subject"] for message in catcher.to(EMAIL))

    # Pay now: a new subscription bought for this very tenant (custom_str2). Same tenant id, active,
    # and the subscription it replaces is cancelled at PayFast.
    payfast_api.add(second_token, amount=29900, run_date="2027-03-15")
    paid = itn(
        live_server,
        payfast,
        transaction_id=PAY_NOW_CHECKOUT,
        pf_payment_id="9300000003",
        token=second_token,
        billing_date="2027-02-15",
        custom={"custom_str2": tenant_id},
    )
    assert paid.status_code == 200
    wait_until(lambda: tenant_api(live_server, password).status_code == 200, 20, "the tenant back")
    back = tenant_api(live_server, password).json()
    assert (back["tenant_id"], back["status"]) == (tenant_id, "active")
    assert payfast_api.subscription(first_token)["status_text"] == "CANCELLED"

    # Cancelled at PayFast: cancelling until paid through, then cancelled.
    accepted(
        live_server,
        payfast,
        transaction_id=PAY_NOW_CHECKOUT,
        pf_payment_id="9300000004",
        token=second_token,
        status="CANCELLED",
        billing_date="2027-02-15",
        custom={"custom_str2": tenant_id},
    )
    wait_until(lambda: tenant_api(live_server, password).json()["status"] == "cancelling", 10, "cancelling")
    [cancelled] = lifecycle_run(live_server, "2027-03-16T09:00:00Z")["applied"]
    assert (cancelled["from"], cancelled["to"]) == ("cancelling", "cancelled")
    gone = tenant_api(live_server, password)
    assert (gone.status_code, gone.json()["detail"]) == (403, "Tenant cancelled")

    # Retention over (90 days after the cancellation): deleted. "Account not found"; a tombstone.
    [deleted] = lifecycle_run(live_server, "2027-06-15T09:00:00Z")["applied"]
    assert (deleted["from"], deleted["to"]) == ("cancelled", "deleted")
    signed_out = httpx.post(
        f"{live_server.base_url}/auth/login", json={"email": EMAIL, "password": password}, timeout=30
    )
    assert (signed_out.status_code, signed_out.json()["detail"]) == (401, "Account not found")
    services = live_server.services()
    try:
        stone = services.lifecycle.tombstone(tenant_id)
        tenant = services.tenants.get(tenant_id)
    finally:
        services.close()
    assert stone is not None
    assert stone.owner_email_hash.startswith("sha256:")
    assert EMAIL not in repr(stone)
    assert tenant is not None
    assert tenant.status.value == "deleted"

    history = tenancy(live_server.env, "lifecycle", "history", tenant_id, "--json")
    assert history.returncode == 0, history.stderr
    moves = [(line["from"], line["to"]) for line in json.loads(history.stdout)["history"]]
    assert moves == [
        ("provisioning", "active"),
        ("active", "active"),
        ("active", "past_due"),
        ("past_due", "suspended"),
        ("suspended", "active"),
        ("active", "cancelling"),
        ("cancelling", "cancelled"),
        ("cancelled", "deleted"),
    ]
    expected = [
        "tenant.activated",
        "tenant.renewed",
        "tenant.past_due",
        "tenant.suspended",
        "tenant.reactivated",
        "tenant.cancelling",
        "tenant.cancelled",
        "tenant.deleted",
    ]
    wait_until(lambda: len(events_of(application)) >= len(expected), 20, "every event delivered")
    assert sorted(events_of(application)) == sorted(expected)
