"""The owner's Billing section of the account page and `subscription` in `GET /tenants/me`, through
the real app (TestClient over the embedded backend, offline PayFast with its subscription API
simulator): what the section says for an active, a downgrading, a cancelling and a once-off tenant;
what the plan and cancel forms change; and what a forged, unconfirmed or cross-tenant post does not."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.billing import BillingKind, Subscription, SubscriptionStatus
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import Tenant, TenantStatus, Tokens
from tenancy.errors import TransientError

from helpers import make_settings, work
from page_client import (
    NEW_PASSWORD,
    checkout,
    choose_new_password,
    csrf_token_in,
    page_client,
    sign_in,
    signed_in_customer,
    simulate,
    welcome_password,
)

OWNER = "ada@example.com"
ONCE_OFF_PLANS = """
[plans.lifetime]
display_name = "Lifetime"
price_zar = "1500.00"
billing = "once"
max_sites = 3
max_generations_per_month = 50
max_storage_mb = 300
custom_domain_allowed = true
"""


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
def owner(client: TestClient, offline: Services) -> str:
    """A signed-in owner of a Professional subscription (R299.00 a month); their tenant id."""
    signed_in_customer(client, offline, OWNER)
    return tenant_of(offline, OWNER)


def tenant_of(services: Services, email: str) -> str:
    [job] = services.journal.find(email=email)
    return tenant_id_for(job.transaction_id)


def stored(services: Services, tenant_id: str) -> tuple[Tenant, Subscription]:
    tenant, subscription = services.tenants.get(tenant_id), services.subscriptions.get(tenant_id)
    assert tenant is not None
    assert subscription is not None
    return tenant, subscription


def post(client: TestClient, path: str, **fields: str) -> tuple[int, str, str]:
    """Posts the account page's form (its CSRF token included); status, location and text."""
    token = csrf_token_in(client.get("/account").text)
    response = client.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)
    return response.status_code, response.headers.get("location", ""), response.text


def api_subscription(client: TestClient, services: Services, email: str) -> tuple[int, dict[str, object]]:
    tokens = services.accounts.login(email, NEW_PASSWORD)
    assert isinstance(tokens, Tokens)
    response = client.get("/tenants/me", headers={"Authorization": f"Bearer {tokens.id_token}"})
    return response.status_code, response.json()


# --- What the section says ---


def test_an_active_subscription_shows_its_plan_next_charge_history_and_both_forms(
    client: TestClient, offline: Services, owner: str
) -> None:
    _, subscription = stored(offline, owner)
    last_day = subscription.paid_through.isoformat()
    [first] = subscription.history

    page = client.get("/account").text

    assert 'id="billing-plan">Professional<' in page
    assert 'id="billing-status">Active<' in page
    assert f'id="next-charge">R299.00 on {last_day}<' in page
    assert first.invoice_number is not None
    assert f'<td>First charge: Professional<br><span class="invoice">Invoice {first.invoice_number}</span></td>' in page
    assert '<td class="amount">R299.00</td>' in page
    assert "Starter: R99.00 / month" in page
    assert "(-R200.00 / month)" in page
    assert f"From the next charge on {last_day}: Starter&#39;s limits and R99.00 / month." in page
    assert "Enterprise: R999.00 / month" in page
    assert "(+R700.00 / month)" in page
    assert f"Now: Enterprise&#39;s limits at once; R999.00 / month from the next charge on {last_day}." in page
    assert 'value="professional"' not in page  # no move to the plan it is on
    assert f"Your site stays available until\n  {last_day}, its last day" in page
    assert 'id="cancel-form"' in page


def test_a_pending_downgrade_shows_the_change_and_the_lower_next_charge(
    client: TestClient, offline: Services, owner: str
) -> None:
    _, subscription = stored(offline, owner)
    now = format_timestamp(offline.clock.now())
    offline.subscriptions.save(subscription.evolve(now, pending_plan="starter", recurring_amount=Decimal("99.00")))
    last_day = subscription.paid_through.isoformat()

    page = client.get("/account").text

    assert f'id="pending-plan">Changes to Starter on {last_day}<' in page
    assert f'id="next-charge">R99.00 on {last_day}<' in page
    assert 'value="starter"' not in page  # already on its way there
    assert "Keep Professional: R299.00 / month" in page
    assert "Keeps Professional and drops the pending change" in page
    assert "(+R900.00 / month)" in page  # Enterprise, against the R99.00 charge coming


def test_a_once_off_purchase_says_it_never_renews_and_offers_no_cancel(tmp_path: Path) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text(ONCE_OFF_PLANS, encoding="utf-8")
    settings = make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example",
                             plans_file=plans)  # fmt: skip
    services = build(settings)
    try:
        with page_client(services) as client:
            signed_in_customer_of_plan(client, services, "lifetime")
            page = client.get("/account").text
            status, document = api_subscription(client, services, OWNER)
    finally:
        services.close()

    assert 'id="billing-status">Bought once: no renewals<' in page
    assert 'id="cancel-form"' not in page
    assert 'id="change-plan-form"' not in page
    assert "Billing history" not in page
    assert (status, document["subscription"]) == (200, None)


def signed_in_customer_of_plan(client: TestClient, services: Services, plan: str) -> None:
    """As page_client.signed_in_customer, for a plan of another catalogue."""
    simulate(client, checkout(client, plan=plan, email=OWNER))
    work(services)
    challenge = sign_in(client, OWNER, welcome_password(services, OWNER))
    assert choose_new_password(client, challenge.text, NEW_PASSWORD).status_code == 303


# --- Changing the plan ---


def test_the_owner_upgrades_now_and_the_page_says_what_happens(
    client: TestClient, offline: Services, owner: str
) -> None:
    status, location, _ = post(client, "/account/billing/plan", plan="enterprise")

    tenant, subscription = stored(offline, owner)
    assert (status, location) == (303, "/account?billing=upgraded")
    assert (tenant.plan, tenant.limits.max_sites) == ("enterprise", 50)
    assert (subscription.plan, subscription.recurring_amount, subscription.pending_plan) == (
        "enterprise", Decimal("999.00"), None,
    )  # fmt: skip
    assert offline.subscription_api.fetch(subscription.token).amount_cents == 99900
    page = client.get(location).text
    assert "Your plan is now Enterprise, with its limits from now on." in page
    assert f"R999.00 / month from your next charge on {subscription.paid_through.isoformat()}" in page
    [entry] = offline.trail.entries(tenant_id=tenant.tenant_id)
    assert entry.operator == f"owner {OWNER}"  # an owner's own change, told apart from an operator's


def test_the_owner_downgrades_from_the_next_charge_keeping_the_limits_until_then(
    client: TestClient, offline: Services, owner: str
) -> None:
    status, location, _ = post(client, "/account/billing/plan", plan="starter")

    tenant, subscription = stored(offline, owner)
    last_day = subscription.paid_through.isoformat()
    assert (status, location) == (303, "/account?billing=downgrade_scheduled")
    assert (tenant.plan, tenant.limits.max_sites) == ("professional", 5)
    assert (subscription.pending_plan, subscription.recurring_amount) == ("starter", Decimal("99.00"))
    page = client.get(location).text
    assert f"Your plan changes to Starter on {last_day}" in page
    assert "You keep Professional until that day." in page


def test_keeping_the_plan_in_effect_drops_a_pending_downgrade(
    client: TestClient, offline: Services, owner: str
) -> None:
    assert post(client, "/account/billing/plan", plan="starter")[:2] == (303, "/account?billing=downgrade_scheduled")

    status, location, _ = post(client, "/account/billing/plan", plan="professional")

    _, subscription = stored(offline, owner)
    assert (status, location) == (303, "/account?billing=upgraded")
    assert (subscription.plan, subscription.pending_plan, subscription.recurring_amount) == (
        "professional", None, Decimal("299.00"),
    )  # fmt: skip
    assert "Your plan is now Professional" in client.get(location).text


def test_a_downgrade_the_usage_exceeds_is_refused_with_what_to_do(
    client: TestClient, offline: Services, owner: str
) -> None:
    tenant, before = stored(offline, owner)
    offline.tenants.put(dataclasses.replace(tenant, usage=dataclasses.replace(tenant.usage, sites_count=3)))

    status, _, page = post(client, "/account/billing/plan", plan="starter")

    assert status == 400
    assert "Your plan was not changed: you use more than Starter allows (3 sites, the plan allows 1)." in page
    assert "Delete sites or files until you are within its limits, then choose Starter again." in page
    assert 'value="starter" aria-describedby="plan-starter-effect" checked' in page.replace("\n        ", " ")
    assert stored(offline, owner)[1] == before


def test_a_plan_change_with_no_plan_chosen_is_refused(client: TestClient, offline: Services, owner: str) -> None:
    _, before = stored(offline, owner)

    status, _, page = post(client, "/account/billing/plan")

    assert status == 400
    assert "Choose the plan to move to, then press Change plan." in page
    assert stored(offline, owner)[1] == before


def test_payfast_not_answering_changes_nothing_and_says_to_try_again(
    client: TestClient, offline: Services, owner: str
) -> None:
    class Unreachable:
        def __getattr__(self, name: str) -> object:
            def fail(*_args: object, **_kwargs: object) -> None:
                raise TransientError("PayFast timed out")

            return fail

    _, before = stored(offline, owner)
    offline.__dict__.pop("subscription_changes", None)  # rebuilt over the unreachable API
    offline.subscription_api = Unreachable()  # type: ignore[assignment]

    status, _, page = post(client, "/account/billing/plan", plan="enterprise")

    assert status == 503
    assert "PayFast did not answer in time" in page
    assert "Reload this page in a few minutes" in page
    assert stored(offline, owner)[1] == before


# --- Cancelling ---


def test_the_owner_cancels_and_keeps_access_until_the_paid_through_date(
    client: TestClient, offline: Services, owner: str
) -> None:
    status, location, _ = post(client, "/account/billing/cancel", confirm="yes")

    tenant, subscription = stored(offline, owner)
    last_day = subscription.paid_through.isoformat()
    assert (status, location) == (303, "/account?billing=cancelled")
    assert tenant.status is TenantStatus.CANCELLING
    assert subscription.status is SubscriptionStatus.CANCELLING
    assert subscription.history[-1].kind is BillingKind.CANCELLATION
    assert offline.subscription_api.fetch(subscription.token).status_text == "CANCELLED"
    page = client.get(location)
    assert page.status_code == 200  # a cancelling tenant still has its account page
    assert f"Your site stays available until {last_day}." in page.text
    assert f'id="billing-status">Cancelled: access until {last_day}<' in page.text
    assert 'id="next-charge"' not in page.text
    assert 'id="cancel-form"' not in page.text
    assert 'id="change-plan-form"' not in page.text


def test_a_cancel_without_the_confirmation_ticked_changes_nothing(
    client: TestClient, offline: Services, owner: str
) -> None:
    status, _, page = post(client, "/account/billing/cancel")

    assert status == 400
    assert "Tick the box to confirm that you want to cancel" in page
    tenant, subscription = stored(offline, owner)
    assert (tenant.status, subscription.status) == (TenantStatus.ACTIVE, SubscriptionStatus.ACTIVE)


def test_a_success_notice_the_stored_subscription_does_not_bear_out_is_not_shown(
    client: TestClient, owner: str
) -> None:
    page = client.get("/account?billing=cancelled").text

    assert 'id="billing-notice"' not in page
    assert 'id="billing-status">Active<' in page


# --- Forgeries and other tenants ---


@pytest.mark.parametrize("path", ["/account/billing/plan", "/account/billing/cancel"])
@pytest.mark.parametrize("forgery", ["no token", "other site"])
def test_a_forged_billing_post_is_refused_and_changes_nothing(
    client: TestClient, offline: Services, owner: str, path: str, forgery: str
) -> None:
    tenant_before, before = stored(offline, owner)
    token = csrf_token_in(client.get("/account").text)
    fields = {"plan": "enterprise", "confirm": "yes"}
    headers = {}
    if forgery == "no token":
        headers["origin"] = "https://testserver"
    else:
        fields["csrf_token"] = token
        headers["origin"] = "https://evil.example"

    response = client.post(path, data=fields, headers=headers, follow_redirects=False)

    assert response.status_code == 403
    assert "We did not accept this form" in response.text
    assert stored(offline, owner) == (tenant_before, before)


def test_a_post_acts_on_the_sessions_tenant_never_on_one_named_in_the_form(
    client: TestClient, offline: Services, owner: str
) -> None:
    with page_client(offline) as other_client:
        signed_in_customer(other_client, offline, "grace@example.com")
        other = tenant_of(offline, "grace@example.com")
        other_before = stored(offline, other)
        token = csrf_token_in(other_client.get("/account").text)
        form = {"csrf_token": token, "confirm": "yes", "tenant_id": owner, "tenant": owner}

        response = other_client.post("/account/billing/cancel", data=form, follow_redirects=False)

    assert response.status_code == 303
    assert stored(offline, owner)[0].status is TenantStatus.ACTIVE
    assert stored(offline, owner)[1].status is SubscriptionStatus.ACTIVE
    assert stored(offline, other)[1].status is SubscriptionStatus.CANCELLING
    assert other_before[1].status is SubscriptionStatus.ACTIVE


def test_a_member_who_is_not_the_owner_sees_no_billing_and_cannot_cancel(
    client: TestClient, offline: Services, owner: str
) -> None:
    # The users record is the truth the pages and the API read (domain.members.manages_team).
    [record] = offline.users.find_by_email(OWNER)
    offline.users.put(dataclasses.replace(record, role="editor"))  # no tenant_admin
    offline.identity.update_attributes(OWNER, {"custom:roles": "editor"})
    client.cookies.clear()
    assert sign_in(client, OWNER, NEW_PASSWORD).status_code == 303

    page = client.get("/account").text
    status, _, refused = post(client, "/account/billing/cancel", confirm="yes")

    assert "Your site's owner sees and changes its billing: ask them for any change." in page
    assert 'id="cancel-form"' not in page
    assert 'id="billing-history"' not in page
    assert status == 403
    assert "Only the owner of a site can change its billing." in refused
    assert stored(offline, owner)[1].status is SubscriptionStatus.ACTIVE


def test_signed_out_billing_posts_go_to_sign_in_and_change_nothing(
    client: TestClient, offline: Services, owner: str
) -> None:
    _, before = stored(offline, owner)
    token = csrf_token_in(client.get("/account").text)
    client.cookies.clear()

    response = client.post("/account/billing/cancel", data={"csrf_token": token, "confirm": "yes"},
                           follow_redirects=False)  # fmt: skip

    assert (response.status_code, response.headers["location"]) == (303, "/auth/login")
    assert stored(offline, owner)[1] == before


# --- GET /tenants/me ---


def test_tenants_me_carries_the_subscription_without_its_payfast_token(
    client: TestClient, offline: Services, owner: str
) -> None:
    _, subscription = stored(offline, owner)
    [first] = subscription.history

    status, document = api_subscription(client, offline, OWNER)

    assert status == 200
    assert document["subscription"] == {
        "status": "active",
        "plan": "professional",
        "pending_plan": None,
        "frequency": "monthly",
        "recurring_amount": "299.00",
        "paid_through": subscription.paid_through.isoformat(),
        "next_billing_date": subscription.paid_through.isoformat(),
        "history": [
            {
                "kind": "first_charge",
                "at": first.at,
                "amount": "299.00",
                "invoice_number": first.invoice_number,
                "plan": first.plan,
                "note": first.note,
            }
        ],
    }
    raw = json.dumps(document)
    assert subscription.token not in raw
    assert "token" not in raw
    assert first.pf_payment_id is not None
    assert first.pf_payment_id not in raw


def test_tenants_me_answers_a_cancelling_tenant_with_no_next_charge(
    client: TestClient, offline: Services, owner: str
) -> None:
    assert post(client, "/account/billing/cancel", confirm="yes")[0] == 303

    status, document = api_subscription(client, offline, OWNER)

    assert status == 200
    assert document["status"] == "cancelling"
    subscription = document["subscription"]
    assert isinstance(subscription, dict)
    assert (subscription["status"], subscription["next_billing_date"]) == ("cancelling", None)
    assert subscription["history"][-1]["kind"] == "cancellation"
