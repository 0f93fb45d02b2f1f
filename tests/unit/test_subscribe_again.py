"""An owner whose subscription is cancelled subscribes again for the same site from the pricing
page, through the real app and the simulated payment: the checkout carries the session's tenant
(signed, in custom_str2) and the owner's own email, and the payment reactivates that tenant: no
second tenant, account or welcome email. An owner whose subscription runs is still told to change
plan from the account instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.billing import SubscriptionStatus
from tenancy.domain.model import TenantStatus
from tenancy.provisioning.welcome import WELCOME_SUBJECT

from helpers import make_settings, work
from page_client import csrf_token_in, form_fields, page_client, signed_in_customer, simulate

OWNER = "ada@example.com"


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Services]:
    services = build(make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example"))
    yield services
    services.close()


@pytest.fixture
def client(offline: Services) -> Iterator[TestClient]:
    with page_client(offline) as client:
        yield client


def tenant_of(services: Services) -> str:
    [record] = services.users.find_by_email(OWNER)
    return record.tenant_id


def test_an_owner_whose_subscription_runs_is_sent_to_the_account_to_change_plan(
    client: TestClient, offline: Services
) -> None:
    signed_in_customer(client, offline, OWNER)

    page = client.get("/checkout?plan=enterprise").text

    assert "You already have the Professional plan" in page
    assert "Subscribe again" not in client.get("/pricing").text


def test_a_cancelled_owner_subscribes_again_for_the_same_site(client: TestClient, offline: Services) -> None:
    signed_in_customer(client, offline, OWNER)
    tenant_id = tenant_of(offline)
    offline.subscription_changes.cancel(tenant_id, actor="test", dry_run=False)

    pricing = client.get("/pricing").text
    shown = client.get("/checkout?plan=enterprise").text
    posted = client.post(
        "/checkout",
        data={"csrf_token": csrf_token_in(shown), "plan": "enterprise", "name": "Ada Lovelace",
              "email": "someone-else@example.com"},  # the form's email is not the one that pays
    )  # fmt: skip
    fields = dict(form_fields(posted.text, "simulate-form"))
    simulate(client, posted.text)
    work(offline)

    assert 'aria-label="Subscribe again to Enterprise"' in pricing
    assert "Subscribe again: Enterprise" in shown
    assert OWNER in shown
    assert (fields["email_address"], fields["custom_str2"]) == (OWNER, tenant_id)
    tenant = offline.tenants.get(tenant_id)
    assert tenant is not None
    assert (tenant.status, tenant.plan) == (TenantStatus.ACTIVE, "enterprise")
    subscription = offline.subscriptions.get(tenant_id)
    assert subscription is not None
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert subscription.plan == "enterprise"
    assert len(offline.users.find_by_email(OWNER)) == 1
    assert [message.subject for message in offline.mailer.outbox(OWNER)].count(WELCOME_SUBJECT) == 1
    assert {job.tenant_id for job in offline.journal.find(email=OWNER)} == {tenant_id}
