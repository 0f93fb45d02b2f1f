"""A subscribed tenant for the lifecycle's suites (tests/contract): one checkout, its first charge
applied through the real intake and worker, known to PayFast's offline simulator, with the ITNs
PayFast sends next, and the time helpers the suites judge at."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.bootstrap import Services
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import EventType
from tenancy.domain.model import PaymentRecord, PaymentVerdict, TenantStatus
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token

from aws_support import Backend
from helpers import work

__all__ = ["BILLING_DATE", "PAID_THROUGH", "Subscriber", "at", "payfast", "services", "subscriber"]

PAYFAST_ADDRESS = "197.97.145.145"
BILLING_DATE = "2026-12-06"  # paid through 2027-01-06; past due after 2027-01-07
PAID_THROUGH = "2027-01-06"


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def payfast(tmp_path: Path) -> Iterator[SimulatedSubscriptionApi]:
    """PayFast's subscription API, offline, on its own SQLite file (the AWS backend has none)."""
    database = Database(tmp_path / "payfast" / "simulator.sqlite")
    yield SimulatedSubscriptionApi(database)
    database.close()


@pytest.fixture
def services(backend: Backend, payfast: SimulatedSubscriptionApi) -> Services:
    return dataclasses.replace(backend.services, payfast_api=payfast)


class Subscriber:
    """One subscription checkout, its first charge applied, known to PayFast's stand-in."""

    def __init__(self, services: Services, payfast: SimulatedSubscriptionApi, number: int = 1) -> None:
        self.services = services
        self.transaction_id = f"TXN-LIFE{number:04d}"
        self.email = f"lifecycle{number}@example.com"
        self.token = new_subscription_token()
        self.tenant_id = tenant_id_for(self.transaction_id)
        self._number = number
        self._payments = 0
        assert self.itn().verdict is PaymentVerdict.ACCEPTED
        work(services)
        payfast.register(self.token, amount_cents=29900, frequency=3, run_date=PAID_THROUGH)

    def itn(self, status: str = "COMPLETE", **changes: Any) -> PaymentRecord:
        self._payments += 1
        values: dict[str, Any] = {
            "transaction_id": self.transaction_id,
            "email": self.email,
            "plan": "professional",
            "amount": self.services.plans.get("professional").price_zar,
            "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
            "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
            "pf_payment_id": str(9_100_000_000 + self._number * 10_000 + self._payments),
            "status": status,
            "token": self.token,
            "billing_date": BILLING_DATE,
        }
        values.update(changes)
        return self.services.intake.receive(encode_form(build_itn(**values)), PAYFAST_ADDRESS)

    def status(self) -> TenantStatus:
        tenant = self.services.tenants.get(self.tenant_id)
        assert tenant is not None
        return tenant.status

    def moves(self) -> list[tuple[TenantStatus, TenantStatus, EventType]]:
        return [
            (line.from_status, line.to_status, line.event) for line in self.services.lifecycle.history(self.tenant_id)
        ]

    def emails(self, subject: str) -> int:
        return sum(1 for message in self.services.mailer.outbox(self.email) if message.subject == subject)


@pytest.fixture
def subscriber(services: Services, payfast: SimulatedSubscriptionApi) -> Subscriber:
    return Subscriber(services, payfast)
