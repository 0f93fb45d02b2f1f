"""The owner's emails near a limit, through `services.usage.record` over the embedded backend
with a ManualClock: one "used 80%" email and one "reached" email per metric and usage period,
however many records cross the line (one record past both lines: only "reached"); none for a
replayed idempotency key; the same warnings again in the next period; and each email says what
to do next, with the account page and the support address."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.lifecycle import NoticeStatus
from tenancy.domain.model import OutboxMessage
from tenancy.domain.usage import Metric, UsageChange

from helpers import ManualClock, make_settings, pay, work

OWNER = "ada@example.com"
ACCOUNT_URL = "https://shop.example/account"
NEAR = "You have used 80% of your plan's page generations this period"
REACHED = "You have reached your plan's limit of 20 page generations this period"


@pytest.fixture
def clock() -> ManualClock:
    # Once-off purchases count generations by calendar month (UTC): this one runs December 2026.
    return ManualClock(datetime(2026, 12, 7, 10, tzinfo=UTC))


@pytest.fixture
def services(tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    settings = make_settings(tmp_path / "home", payfast_mode="offline", public_url="https://shop.example")
    built = build(settings, clock=clock)
    yield built
    built.close()


@pytest.fixture
def tenant_id(services: Services) -> str:
    """A provisioned Starter tenant (20 generations a month) bought once: no subscription."""
    transaction_id = pay(services, OWNER, plan="starter")
    work(services)
    assert services.subscriptions.get(tenant_id_for(transaction_id)) is None
    return tenant_id_for(transaction_id)


def generations(services: Services, tenant_id: str, amount: int, key: str) -> int:
    """Records `amount` generations under idempotency `key`; the count after it."""
    outcome = services.usage.record(tenant_id, UsageChange(Metric.GENERATIONS, amount, key))
    assert outcome.applied
    return outcome.used


def warnings_to(services: Services, address: str) -> list[OutboxMessage]:
    """The usage warnings sent to `address`, oldest first."""
    return [mail for mail in reversed(services.mailer.outbox(address)) if mail.tags.get("kind") == "usage_warning"]


def subjects(services: Services) -> list[str]:
    return [mail.subject for mail in warnings_to(services, OWNER)]


def test_reaching_80_percent_sends_the_owner_one_email_and_more_below_100_sends_nothing(
    services: Services, tenant_id: str
) -> None:
    assert generations(services, tenant_id, 15, "g1") == 15  # 75%: nothing yet
    assert subjects(services) == []

    assert generations(services, tenant_id, 1, "g2") == 16  # 80%

    [near] = warnings_to(services, OWNER)
    assert near.subject == NEAR
    # Delivered at once by the record, not left for the worker's notice loop.
    queued = [notice for notice in services.lifecycle.notices() if notice.body.get("subject") == NEAR]
    assert [notice.status for notice in queued] == [NoticeStatus.DELIVERED]
    assert generations(services, tenant_id, 1, "g3") == 17
    assert generations(services, tenant_id, 2, "g4") == 19
    assert subjects(services) == [NEAR]


def test_reaching_the_limit_sends_one_reached_email_and_a_refused_record_sends_nothing(
    services: Services, tenant_id: str
) -> None:
    generations(services, tenant_id, 16, "g1")
    assert generations(services, tenant_id, 4, "g2") == 20

    assert subjects(services) == [NEAR, REACHED]
    refused = services.usage.record(tenant_id, UsageChange(Metric.GENERATIONS, 1, "g3"))
    assert not refused.applied
    generations(services, tenant_id, -1, "g4")  # a correction down, then up to the limit again
    generations(services, tenant_id, 1, "g5")
    assert subjects(services) == [NEAR, REACHED]


def test_a_replayed_idempotency_key_sends_nothing(services: Services, tenant_id: str) -> None:
    generations(services, tenant_id, 16, "g1")
    assert subjects(services) == [NEAR]

    replay = services.usage.record(tenant_id, UsageChange(Metric.GENERATIONS, 16, "g1"))

    assert (replay.replayed, replay.used) == (True, 16)
    assert subjects(services) == [NEAR]


def test_the_next_period_warns_again_once(services: Services, tenant_id: str, clock: ManualClock) -> None:
    generations(services, tenant_id, 20, "dec")  # past both lines at once: told only that it is reached
    assert subjects(services) == [REACHED]

    clock.advance(days=26)  # 2027-01-02: January's count starts from zero
    assert generations(services, tenant_id, 16, "jan-1") == 16
    generations(services, tenant_id, 1, "jan-2")

    assert subjects(services) == [REACHED, NEAR]
    assert "until the count starts again on 2027-02-01," in warnings_to(services, OWNER)[-1].text


def test_the_emails_say_what_to_do_next_with_the_account_page_and_support(services: Services, tenant_id: str) -> None:
    generations(services, tenant_id, 16, "g1")
    generations(services, tenant_id, 4, "g2")
    near, reached = warnings_to(services, OWNER)
    support = services.settings.effective_support_email

    assert near.text.split("\n\n") == [
        "Your Site Builder plan allows 20 page generations this period; you have used 16.",
        "When the limit is reached, new page generations are refused until the count starts again on "
        "2027-01-01, or until you upgrade to a bigger plan.",
        f"To upgrade, or to see your usage: {ACCOUNT_URL}",
        f"Questions? Write to {support}.\n",
    ]
    assert reached.text.split("\n\n") == [
        "Your Site Builder plan allows 20 page generations this period, and you have used 20.",
        "New page generations are refused until the count starts again on 2027-01-01, "
        "or until you upgrade to a bigger plan.",
        f"To upgrade, or to see your usage: {ACCOUNT_URL}",
        f"Questions? Write to {support}.\n",
    ]


def test_a_level_warns_once_per_threshold_and_only_the_owner_hears(services: Services, tenant_id: str) -> None:
    # Starter's storage: 100 MB, a level the Site Builder application sets.
    services.usage.record(tenant_id, UsageChange(Metric.STORAGE_MB, 85, "m1", absolute=True))
    services.usage.record(tenant_id, UsageChange(Metric.STORAGE_MB, 90, "m2", absolute=True))
    services.usage.record(tenant_id, UsageChange(Metric.STORAGE_MB, 100, "m3", absolute=True))

    assert subjects(services) == [
        "You have used 80% of your plan's MB of storage",
        "You have reached your plan's limit of 100 MB of storage",
    ]
    assert [mail.to for mail in services.mailer.outbox() if mail.tags.get("kind") == "usage_warning"] == [OWNER] * 2


def test_a_limit_of_one_site_is_named_in_the_singular_with_what_frees_room(services: Services, tenant_id: str) -> None:
    services.usage.record(tenant_id, UsageChange(Metric.SITES, 1, "s1", absolute=True))  # Starter: 1 site

    # 1 of 1 is past both lines at once: the owner is told once, that the limit is reached.
    [reached] = warnings_to(services, OWNER)
    assert reached.subject == "You have reached your plan's limit of 1 site"
    assert "New sites are refused until you upgrade to a bigger plan (or delete a site you no longer need)." in (
        reached.text
    )
