"""Following a purchase from a test: the status key of an ITN built here (PayFast echoes the
checkout form's digest of it in custom_str3), and waiting for a job in the server's journal when
there is no key (a `tenancy itn send` demo payment has none, so it has no public status)."""

from __future__ import annotations

import time
from pathlib import Path

from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.bootstrap import build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE, PayfastMode
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import JobStatus, PaymentVerdict, ProvisioningJob
from tenancy.payments.checkout import STATUS_KEY_FIELD, status_key_digest
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token

from helpers import make_settings, work
from servers import RunningServer

__all__ = [
    "SUBSCRIBED_EMAIL",
    "SUBSCRIBED_TENANT_ID",
    "SUBSCRIBED_TRANSACTION_ID",
    "keyed",
    "status_key_for",
    "subscribe_offline",
    "wait_for_job",
]

SUBSCRIBED_TRANSACTION_ID = "TXN-SUBCLI1"
SUBSCRIBED_EMAIL = "owner@example.com"
SUBSCRIBED_TENANT_ID = tenant_id_for(SUBSCRIBED_TRANSACTION_ID)


def status_key_for(transaction_id: str) -> str:
    """The status key the tests give a purchase: any secret works, the server keeps only its digest."""
    return f"test-status-key-{transaction_id}"


def keyed(transaction_id: str) -> dict[str, str]:
    """`build_itn(custom=...)` for an ITN of a checkout whose status key is `status_key_for(transaction_id)`."""
    return {STATUS_KEY_FIELD: status_key_digest(status_key_for(transaction_id))}


def wait_for_job(
    server: RunningServer, transaction_id: str, wanted: JobStatus = JobStatus.SUCCEEDED, timeout: float = 20
) -> ProvisioningJob:
    """The job once it is `wanted`, read from the journal the server writes (as an operator's CLI reads it)."""
    services = server.services()
    try:
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = services.journal.get(transaction_id)
            if job is not None and job.status is wanted:
                return job
            time.sleep(0.05)
    finally:
        services.close()
    raise AssertionError(f"{transaction_id} did not reach {wanted.value}: {job}")


def subscribe_offline(home: Path) -> str:
    """A professional subscription (SUBSCRIBED_SUBSCRIBED_TRANSACTION_ID, SUBSCRIBED_EMAIL) bought through the
    intake and the worker of an embedded home in offline mode, known to its PayFast simulator;
    returns its token."""
    services = build(make_settings(home, payfast_mode=PayfastMode.OFFLINE))
    try:
        token = new_subscription_token()
        itn = build_itn(
            transaction_id=SUBSCRIBED_TRANSACTION_ID,
            email=SUBSCRIBED_EMAIL,
            plan="professional",
            amount="299.00",
            merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
            passphrase=PAYFAST_SANDBOX_PASSPHRASE,
            pf_payment_id="7100000001",
            token=token,
            billing_date="2026-12-06",
        )
        assert services.intake.receive(encode_form(itn), "197.97.145.145").verdict is PaymentVerdict.ACCEPTED
        work(services)
        simulator = services.subscription_api
        assert isinstance(simulator, SimulatedSubscriptionApi)  # offline on the embedded backend
        simulator.register(token, amount_cents=29900, frequency=3, run_date="2027-01-06")
        return token
    finally:
        services.close()
