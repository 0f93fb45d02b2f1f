"""The account page's Usage section, through the real app (TestClient over the embedded backend):
a bar per limit with the numbers `services.usage` reads for the current period (a generation
count kept for an earlier period shows 0), the day the generation count resets, "Nearly used up"
from 80% and "Limit reached" at or past 100%, each with the way to upgrade this viewer has."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import Usage
from tenancy.domain.usage import Metric, UsageChange

from helpers import make_settings, work
from page_client import (
    NEW_PASSWORD,
    checkout,
    choose_new_password,
    page_client,
    sign_in,
    signed_in_customer,
    simulate,
    welcome_password,
)

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
def owner(client: TestClient, offline: Services) -> str:
    """A signed-in owner of a Professional subscription (5 sites, 100 generations, 500 MB); their tenant id."""
    signed_in_customer(client, offline, OWNER)
    [job] = offline.journal.find(email=OWNER)
    return tenant_id_for(job.transaction_id)


def bar(page: str, key: str) -> tuple[str, str]:
    """The Usage section's row for `key`: its markup, and its text as read (tags dropped, spaces collapsed)."""
    markup = page.split(f'id="limit-{key}"', 1)[1].split("</li>", 1)[0]
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup.split(">", 1)[1])).split())
    return markup, re.sub(r" ([.,:)])", r"\1", text)


def record(services: Services, tenant_id: str, metric: Metric, amount: int, *, absolute: bool = False) -> None:
    outcome = services.usage.record(tenant_id, UsageChange(metric, amount, f"{metric}-{amount}", absolute=absolute))
    assert outcome.applied


def period_end(services: Services, tenant_id: str) -> str:
    """The subscription's paid-through day: its usage period ends (and generations reset) then."""
    subscription = services.subscriptions.get(tenant_id)
    assert subscription is not None
    return subscription.paid_through.isoformat()


def test_each_limit_shows_its_use_with_a_bar_and_the_generation_count_resets_at_the_period_end(
    client: TestClient, offline: Services, owner: str
) -> None:
    record(offline, owner, Metric.SITES, 2, absolute=True)
    record(offline, owner, Metric.GENERATIONS, 37)
    record(offline, owner, Metric.STORAGE_MB, 120, absolute=True)
    end = period_end(offline, owner)

    page = client.get("/account").text

    sites, sites_text = bar(page, "sites")
    generations, generations_text = bar(page, "generations")
    _, storage_text = bar(page, "storage")
    assert sites_text == "Sites 2 of 5 (40%) 2 of 5"  # the meter's fallback text repeats the numbers
    assert 'max="5"' in sites
    assert 'value="2"' in sites
    assert generations_text == f"Page generations this period 37 of 100 (37%) 37 of 100 Resets on {end}."
    assert 'id="meter-generations" min="0" max="100"' in generations
    assert 'value="37"' in generations
    assert storage_text == "Storage 120 of 500 MB (24%) 120 of 500"
    assert "usage-state" not in page  # nothing near a limit: no state, no upgrade nudge
    assert page.count('class="usage-bar"') == 3
    assert "<table" not in page.split('id="usage"', 1)[1].split("</section>", 1)[0]  # the old table is gone


def test_80_percent_says_nearly_used_up_and_100_says_refused_with_the_change_plan_form(
    client: TestClient, offline: Services, owner: str
) -> None:
    record(offline, owner, Metric.SITES, 4, absolute=True)  # 80% of 5
    record(offline, owner, Metric.GENERATIONS, 100)  # all of 100
    record(offline, owner, Metric.STORAGE_MB, 399, absolute=True)  # 79.8%: not yet near
    end = period_end(offline, owner)

    page = client.get("/account").text

    sites, sites_text = bar(page, "sites")
    generations, generations_text = bar(page, "generations")
    _, storage_text = bar(page, "storage")
    assert 'class="usage-bar near"' in sites
    assert sites_text.endswith("Nearly used up: 1 left. To get more, upgrade: choose a bigger plan under Change plan.")
    assert 'class="usage-bar reached"' in generations
    assert generations_text.endswith(
        f"Limit reached: new page generations are refused until {end}. "
        "To get more, upgrade: choose a bigger plan under Change plan."
    )
    assert '<a href="#change-plan-heading">Change plan</a>' in generations
    assert 'id="change-plan-heading"' in page  # the link's target: the owner's Change plan form
    assert storage_text == "Storage 399 of 500 MB (79%) 399 of 500"


def test_a_generation_count_of_an_earlier_period_shows_0_and_a_level_over_the_limit_shows_reached(
    client: TestClient, offline: Services, owner: str
) -> None:
    tenant = offline.tenants.get(owner)
    assert tenant is not None
    # As a downgrade or a hand edit leaves it: 7 sites on a plan of 5; 80 generations counted in 2026-01.
    usage = Usage(sites_count=7, generations_this_month=80, storage_used_mb=0, period_start="2026-01-01")
    offline.tenants.put(dataclasses.replace(tenant, usage=usage))

    page = client.get("/account").text

    _, generations_text = bar(page, "generations")
    _, sites_text = bar(page, "sites")
    assert generations_text.startswith("Page generations this period 0 of 100 (0%)")
    assert "Limit reached" not in generations_text
    assert "Nearly used up" not in generations_text
    assert sites_text.startswith("Sites 7 of 5 (140%)")
    assert "Limit reached: new sites are refused. You use more than your plan allows." in sites_text


def test_a_member_who_is_not_the_owner_is_told_to_ask_the_owner(
    client: TestClient, offline: Services, owner: str
) -> None:
    record(offline, owner, Metric.GENERATIONS, 90)
    # The users record is the truth the pages read (domain.members.manages_team).
    [member] = offline.users.find_by_email(OWNER)
    offline.users.put(dataclasses.replace(member, role="editor"))  # no tenant_admin
    offline.identity.update_attributes(OWNER, {"custom:roles": "editor"})
    client.cookies.clear()
    assert sign_in(client, OWNER, NEW_PASSWORD).status_code == 303

    _, text = bar(client.get("/account").text, "generations")

    assert "Nearly used up: 10 left until" in text
    assert text.endswith("To get more, ask your site's owner to upgrade the plan.")


def test_a_once_off_owner_at_a_limit_is_told_to_email_support(tmp_path: Path) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text(
        '[plans.lifetime]\ndisplay_name = "Lifetime"\nprice_zar = "1500.00"\nbilling = "once"\n'
        "max_sites = 3\nmax_generations_per_month = 50\nmax_storage_mb = 300\ncustom_domain_allowed = true\n",
        encoding="utf-8",
    )
    settings = make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example",
                             plans_file=plans)  # fmt: skip
    services = build(settings)
    try:
        with page_client(services) as client:
            transaction_id = simulate(client, checkout(client, plan="lifetime", email=OWNER))
            work(services)
            challenge = sign_in(client, OWNER, welcome_password(services, OWNER))
            assert choose_new_password(client, challenge.text, NEW_PASSWORD).status_code == 303
            tenant_id = tenant_id_for(transaction_id)
            record(services, tenant_id, Metric.SITES, 3, absolute=True)
            page = client.get("/account").text
        support = services.settings.effective_support_email
        today = services.clock.now().date()
    finally:
        services.close()

    sites, text = bar(page, "sites")
    _, generations_text = bar(page, "generations")
    assert text.endswith(
        f"Limit reached: new sites are refused. To get more, upgrade: email {support} to change your plan."
    )
    assert f'<a href="mailto:{support}">{support}</a>' in sites
    # No subscription: the calendar month (UTC) is the period.
    first = today.replace(day=1)
    next_first = (first + timedelta(days=32)).replace(day=1)
    assert generations_text.endswith(f"Resets on {next_first.isoformat()}.")
    assert f"This period: {first.isoformat()} to {(next_first - timedelta(days=1)).isoformat()}." in page
