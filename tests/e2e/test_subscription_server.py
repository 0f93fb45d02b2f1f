"""A subscription's life through the real `tenancy serve` in sandbox mode, with PayFast's validate
endpoint and its subscription API played by local stand-ins (the API stand-in checks every call's
signature), real SMTP and the real CLI for the operator's changes:

subscribe, renew twice (one welcome email, two receipts, paid through two periods on), upgrade
(PayFast's amount raised, limits at once), downgrade applied at the next renewal, cancel, and
replayed and hostile ITNs (a wrong amount, a forged token, a cancellation without our signature)
that change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.billing import SubscriptionStatus, add_months
from tenancy.domain.model import JobStatus, TenantStatus
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
    free_port,
    server_env,
    start_server,
    stop_server,
    tenancy,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TRANSACTION_ID = "TXN-SUBLIFE1"
EMAIL = "subscriber@example.com"


@pytest.fixture(scope="module")
def payfast_api() -> Iterator[PayfastApiStandIn]:
    with running_payfast_api(merchant_id=PAYFAST_SANDBOX_MERCHANT_ID, passphrase=PAYFAST_SANDBOX_PASSPHRASE) as api:
        yield api


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: tuple[MailCatcher, int],
    payfast: PayfastStandIn,
    payfast_api: PayfastApiStandIn,
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("subscription-home")
    env = server_env(
        home, free_port(), smtp_server[1], payfast.server_address[1], TENANCY_PAYFAST_API_URL=payfast_api.url
    )
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


class PayFast:
    """What PayFast sends for one subscription: each ITN told to the validate stand-in first."""

    def __init__(self, server: RunningServer, validate: PayfastStandIn, token: str) -> None:
        self.server, self.validate, self.token = server, validate, token
        self.payments = 0

    def itn(self, status: str = "COMPLETE", amount: str = "299.00", **changes: Any) -> httpx.Response:
        self.payments += 1
        values: dict[str, Any] = {
            "transaction_id": TRANSACTION_ID,
            "email": EMAIL,
            "plan": "professional",
            "amount": amount,
            "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
            "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
            "pf_payment_id": str(9_100_000_000 + self.payments),
            "status": status,
            "token": self.token,
            "billing_date": "2026-12-06",
        }
        values.update(changes)
        fields = build_itn(**values)
        self.validate.genuine.add(parameter_string(fields))
        return self.post(encode_form(fields))

    def post(self, body: bytes) -> httpx.Response:
        headers = {**FORM, "X-Forwarded-For": PAYFAST_ADDRESS}
        return httpx.post(f"{self.server.base_url}/payments/payfast/itn", content=body, headers=headers, timeout=30)


def show(server: RunningServer) -> dict[str, Any]:
    result = tenancy(server.env, "subscription", "show", EMAIL, "--json")
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def test_a_subscription_from_first_charge_to_cancellation(
    live_server: RunningServer,
    payfast: PayfastStandIn,
    payfast_api: PayfastApiStandIn,
    smtp_server: tuple[MailCatcher, int],
) -> None:
    catcher = smtp_server[0]
    token = new_subscription_token()
    payfast_api.add(token, amount=29900, run_date="2027-01-06")
    pay = PayFast(live_server, payfast, token)

    # Subscribe: one tenant, one welcome email.
    assert pay.itn().status_code == 200
    wait_for_job(live_server, TRANSACTION_ID, JobStatus.SUCCEEDED)
    services = live_server.services()
    try:
        job = services.journal.get(TRANSACTION_ID)
        assert job is not None
        tenant_id = job.tenant_id
        wait_until(lambda: services.subscriptions.get(tenant_id) is not None, 10, "the subscription")
        started = services.subscriptions.get(tenant_id)
        assert started is not None
        assert started.paid_through == date(2027, 1, 6)

        # Two renewals, and a replay of the second: two receipts, paid through two periods on.
        first_renewal = pay.itn()
        second = build_itn(
            transaction_id=TRANSACTION_ID,
            email=EMAIL,
            plan="professional",
            amount="299.00",
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            pf_payment_id="9100000099",
            token=token,
            billing_date="2026-12-06",
        )
        payfast.genuine.add(parameter_string(second))
        statuses = [first_renewal.status_code, pay.post(encode_form(second)).status_code]
        statuses.append(pay.post(encode_form(second)).status_code)  # PayFast's retry: a duplicate
        assert statuses == [200, 200, 200]
        renewed = services.subscriptions.get(tenant_id)
        assert renewed is not None
        assert renewed.paid_through == add_months(started.billing_date, 3)
        wait_until(lambda: len(_receipts(catcher)) == 2, 10, "two receipts by SMTP")
        assert len([message for message in catcher.to(EMAIL) if message["Subject"] == "Welcome to Site Builder"]) == 1

        # Hostile: a renewal with the wrong amount, one with a forged token, and a cancellation
        # signed without our passphrase; all refused, nothing changed.
        assert pay.itn(amount="99.00").status_code == 400
        assert pay.itn(token=new_subscription_token()).status_code == 400
        assert pay.itn("CANCELLED", passphrase="not-our-passphrase").status_code == 400
        unchanged = services.subscriptions.get(tenant_id)
        assert unchanged is not None
        assert unchanged.periods_paid == renewed.periods_paid
        assert unchanged.status is SubscriptionStatus.ACTIVE

        # Upgrade through the CLI: PayFast's amount from the next charge, the limits now.
        upgrade = tenancy(live_server.env, "subscription", "change-plan", EMAIL, "enterprise", "--yes")
        assert upgrade.returncode == 0, upgrade.stderr
        assert payfast_api.subscription(token)["amount"] == 99900
        tenant = services.tenants.get(tenant_id)
        assert tenant is not None
        assert tenant.plan == "enterprise"
        assert show(live_server)["recurring_amount"] == "999.00"

        # Downgrade: pending until the next renewal, which must carry the new amount.
        downgrade = tenancy(live_server.env, "subscription", "change-plan", EMAIL, "starter", "--yes")
        assert downgrade.returncode == 0, downgrade.stderr
        assert payfast_api.subscription(token)["amount"] == 9900
        assert show(live_server)["pending_plan"] == "starter"
        still = services.tenants.get(tenant_id)
        assert still is not None
        assert still.plan == "enterprise"  # limits never drop mid-period
        assert pay.itn(amount="99.00").status_code == 200
        downgraded = services.tenants.get(tenant_id)
        assert downgraded is not None
        assert downgraded.plan == "starter"
        assert downgraded.limits.max_sites == 1

        # Cancel: PayFast cancels, access until paid through, then PayFast's CANCELLED ITN changes nothing.
        cancel = tenancy(live_server.env, "subscription", "cancel", EMAIL, "--yes")
        assert cancel.returncode == 0, cancel.stderr
        assert payfast_api.subscription(token)["status_text"] == "CANCELLED"
        assert pay.itn("CANCELLED").status_code == 200
        ended = services.subscriptions.get(tenant_id)
        tenant = services.tenants.get(tenant_id)
        assert ended is not None
        assert ended.status is SubscriptionStatus.CANCELLING
        assert tenant is not None
        assert tenant.status is TenantStatus.CANCELLING
        assert ended.recurring_amount == Decimal("99.00")
        assert len(services.journal.find(email=EMAIL)) == 1

        # Every call Tenancy made to PayFast's API was signed right (the stand-in answers 401 else).
        assert {call.path.rsplit("/", 1)[-1] for call in payfast_api.recorded()} >= {"update", "cancel"}
        assert all(call.status == 200 for call in payfast_api.recorded())
        assert all(call.query.get("testing") == "true" for call in payfast_api.recorded())
    finally:
        services.close()


def _receipts(catcher: MailCatcher) -> list[Any]:
    return [message for message in catcher.to(EMAIL) if str(message["Subject"]).startswith("Your Site Builder receipt")]
