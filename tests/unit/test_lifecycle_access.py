"""Access follows the tenant's state, through the real app: past due keeps full access with a
warning and the grace date; suspended and cancelled sign in but reach only billing (403 with the
reason and where to pay for every tenant API); Pay now buys a new subscription for the same tenant,
which comes back active on the same id while the old subscription is cancelled at PayFast."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.lifecycle import EventType
from tenancy.domain.model import TenantStatus

from helpers import make_settings, work
from page_client import NEW_PASSWORD, csrf_token_in, page_client, signed_in_customer, simulate

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


@pytest.fixture
def tenant_id(client: TestClient, offline: Services) -> str:
    signed_in_customer(client, offline, OWNER)
    [record] = offline.users.find_by_email(OWNER)
    return record.tenant_id


def days_after_paid_through(services: Services, tenant_id: str, days: int) -> datetime:
    subscription = services.subscriptions.get(tenant_id)
    assert subscription is not None
    return datetime.combine(subscription.paid_through + timedelta(days=days), time(9), tzinfo=UTC)


def move_to(services: Services, tenant_id: str, status: TenantStatus) -> None:
    """Lets time run out as far as `status` (2 days after paid through: past due; 10: suspended)."""
    days = {TenantStatus.PAST_DUE: 2, TenantStatus.SUSPENDED: 10, TenantStatus.CANCELLED: 40}[status]
    services.lifecycle_sweep.run(days_after_paid_through(services, tenant_id, days))
    tenant = services.tenants.get(tenant_id)
    assert tenant is not None
    assert tenant.status is status


def api_get(client: TestClient, services: Services, path: str = "/tenants/me") -> tuple[int, dict[str, object]]:
    tokens = services.accounts.login(OWNER, NEW_PASSWORD)
    assert tokens.id_token is not None
    answer = client.get(path, headers={"Authorization": f"Bearer {tokens.id_token}", "Accept": "application/json"})
    return answer.status_code, answer.json()


def test_a_past_due_tenant_keeps_full_access_with_its_grace_date_and_a_warning(
    client: TestClient, offline: Services, tenant_id: str
) -> None:
    move_to(offline, tenant_id, TenantStatus.PAST_DUE)
    subscription = offline.subscriptions.get(tenant_id)
    assert subscription is not None

    status, body = api_get(client, offline)
    page = client.get("/account")

    assert status == 200
    assert body["status"] == "past_due"
    assert body["paid_through"] == subscription.paid_through.isoformat()
    assert body["grace_until"] == (subscription.paid_through + timedelta(days=8)).isoformat()
    assert page.status_code == 200
    assert 'id="past-due-notice"' in page.text
    assert f"did not go through. Your site keeps working until {body['grace_until']}" in page.text
    assert 'id="pay-now"' in page.text


def test_a_suspended_tenant_signs_in_but_every_tenant_api_answers_403_with_where_to_pay(
    client: TestClient, offline: Services, tenant_id: str
) -> None:
    move_to(offline, tenant_id, TenantStatus.SUSPENDED)

    tokens = offline.accounts.login(OWNER, NEW_PASSWORD)  # sign-in succeeds
    status, body = api_get(client, offline)
    page = client.get("/account")

    claims = jwt.decode(tokens.id_token or "", options={"verify_signature": False})
    assert claims["custom:tenant_status"] == "suspended"
    assert status == 403
    assert body == {
        "detail": "Tenant suspended",
        "reason": "payment overdue",
        "billing_url": "https://shop.example/account",
    }
    assert page.status_code == 403
    assert "Your site is suspended" in page.text
    assert 'id="pay-now"' in page.text


def test_a_cancelled_tenant_is_told_so_and_offered_to_subscribe_again(
    client: TestClient, offline: Services, tenant_id: str
) -> None:
    move_to(offline, tenant_id, TenantStatus.CANCELLED)

    status, body = api_get(client, offline)
    page = client.get("/account")

    assert (status, body["detail"], body["reason"]) == (403, "Tenant cancelled", "subscription ended")
    assert "Your subscription has ended" in page.text
    assert "Subscribe again" in page.text


def test_pay_now_brings_the_suspended_tenant_back_on_the_same_id_and_ends_the_old_subscription(
    client: TestClient, offline: Services, tenant_id: str
) -> None:
    move_to(offline, tenant_id, TenantStatus.SUSPENDED)
    old = offline.subscriptions.get(tenant_id)
    assert old is not None

    shown = client.get("/checkout?plan=professional").text
    posted = client.post(
        "/checkout",
        data={"csrf_token": csrf_token_in(shown), "plan": "professional", "name": "Ada Lovelace", "email": OWNER},
    )
    simulate(client, posted.text)
    work(offline)

    tenant = offline.tenants.get(tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE
    new = offline.subscriptions.get(tenant_id)
    assert new is not None
    assert new.token != old.token
    assert offline.subscription_api.fetch(old.token).status_text == "CANCELLED"
    assert offline.subscription_api.fetch(new.token).status_text == "ACTIVE"
    last = offline.lifecycle.history(tenant_id)[-1]
    assert (last.from_status, last.to_status, last.event) == (
        TenantStatus.SUSPENDED,
        TenantStatus.ACTIVE,
        EventType.REACTIVATED,
    )
    assert len(offline.users.find_by_email(OWNER)) == 1
    status, body = api_get(client, offline)
    assert (status, body["tenant_id"], body["status"]) == (200, tenant_id, "active")
