"""The dashboard's numbers and hourly series (runbook.dashboard), the chart drawn from them, and the
page an operator reads: counts in the singular when there is one, and why the error rate is not an alert."""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.runbook.dashboard import SERIES_HOURS, Dashboard, HourlySeries, read_dashboard, series_start
from tenancy.runbook.findings import Finding
from tenancy.web.pages.ops import line_chart

from helpers import BrokenTenantStore, make_settings, pay, work
from page_client import page_client, sign_in

NOW = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_base_seconds=600.0))
    yield dataclasses.replace(built, clock=FixedClock(NOW))
    built.close()


def purchase_at(
    services: Services, moment: datetime, *, provision: bool = True, worker: Services | None = None
) -> None:
    assert isinstance(services.clock, FixedClock)
    services.clock.moment = moment
    transaction_id = f"TXN-{uuid.uuid4().hex[:10].upper()}"
    itn = build_itn(
        transaction_id=transaction_id,
        email=f"{transaction_id.lower()}@example.com",
        plan="professional",
        amount=services.plans.get("professional").price_zar,
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
    )
    services.intake.receive(encode_form(itn), "197.97.145.145")
    if provision:
        (worker or services).worker.poll_once()
    services.clock.moment = NOW


def dashboard(services: Services) -> Dashboard:
    return read_dashboard(
        monitor=services.alert_monitor,
        journal=services.journal,
        ledger=services.ledger,
        index=services.findings_index,
        now=NOW,
    )


def test_the_series_ends_with_the_current_hour_and_spans_seven_days() -> None:
    start = series_start(NOW)

    assert start == datetime(2026, 2, 22, 13, 0, tzinfo=UTC)
    assert start + (SERIES_HOURS - 1) * timedelta(hours=1) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_series_buckets_each_hour_and_leaves_out_those_outside(services: Services) -> None:
    start = series_start(NOW)
    for moment in (
        start - timedelta(seconds=1),  # before the first hour
        start,
        start + timedelta(minutes=59, seconds=59),
        start + timedelta(hours=1),
        NOW,  # the current hour: the last bucket
    ):
        purchase_at(services, moment)

    counts = dashboard(services).series.payments

    assert len(counts) == SERIES_HOURS
    assert counts[0] == 2
    assert counts[1] == 1
    assert counts[-1] == 1
    assert sum(counts) == 4


def test_the_dashboard_puts_payments_and_provisioning_in_their_hours(services: Services) -> None:
    three_days_ago = NOW - timedelta(days=3)
    purchase_at(services, three_days_ago)
    purchase_at(services, three_days_ago + timedelta(minutes=5))
    purchase_at(services, NOW - timedelta(minutes=10), provision=False)
    purchase_at(services, NOW - timedelta(days=8))  # before the series: counted as a job, not charted

    numbers = dashboard(services)

    hour = (three_days_ago.replace(minute=0, second=0) - numbers.series.start) // timedelta(hours=1)
    assert numbers.series.payments[hour] == 2
    assert numbers.series.provisioned[hour] == 2
    assert numbers.series.payments[-1] == 1
    assert numbers.series.provisioned[-1] == 0
    assert (numbers.payments, numbers.provisioned) == (3, 2)
    assert (numbers.succeeded, numbers.in_progress) == (3, 1)
    assert (numbers.healthy_purchases, numbers.purchases_in_progress, numbers.with_findings) == (3, 1, 0)
    assert numbers.findings[Finding.HEALTHY] == 3
    assert numbers.last_audit is None
    assert (numbers.queue_depth, numbers.dlq_depth) == (1, 0)
    assert numbers.error_rate.value == 0.0
    by_day = {day.isoformat(): (paid, provisioned) for day, paid, provisioned in numbers.series.by_day()}
    assert by_day["2026-02-26"] == (2, 2)
    assert by_day["2026-03-01"] == (1, 0)
    assert sum(paid for paid, _ in by_day.values()) == 3


def test_the_dashboard_s_alerts_are_the_alert_monitor_s(services: Services) -> None:
    broken = dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants))
    for minutes in range(5):
        purchase_at(services, NOW - timedelta(minutes=minutes + 1))
    for minutes in range(2):
        purchase_at(services, NOW - timedelta(minutes=minutes + 10), worker=broken)  # retrying after a failure

    numbers = dashboard(services)
    monitor = services.alert_monitor.check()

    assert numbers.error_rate.firing
    assert numbers.error_rate.value == round(2 / 7, 4)
    assert [(r.rule, r.firing, r.value, r.message) for r in numbers.alerts.results] == [
        (r.rule, r.firing, r.value, r.message) for r in monitor.results
    ]


def test_the_chart_scales_to_an_even_ceiling_and_marks_each_midnight() -> None:
    start = series_start(NOW)
    payments = tuple(3 if index == 10 else 0 for index in range(SERIES_HOURS))
    provisioned = tuple(1 if index == 10 else 0 for index in range(SERIES_HOURS))

    chart = line_chart(HourlySeries(start, payments, provisioned))

    assert [value for _, value in chart.y_ticks] == [0, 2, 4]
    assert len(chart.payments.split()) == SERIES_HOURS
    assert chart.payments.split()[0] == f"{chart.left}.0,{chart.bottom}.0"
    assert chart.payments.split()[10].endswith(f",{chart.bottom - (chart.bottom - chart.top) * 3 / 4}")
    assert [label for _, label in chart.x_ticks] == [
        "23 Feb", "24 Feb", "25 Feb", "26 Feb", "27 Feb", "28 Feb", "01 Mar"
    ]  # fmt: skip


def test_an_empty_week_still_draws_a_flat_chart() -> None:
    empty = (0,) * SERIES_HOURS

    chart = line_chart(HourlySeries(series_start(NOW), empty, empty))

    assert [value for _, value in chart.y_ticks] == [0, 1, 2]
    assert {point.split(",")[1] for point in chart.provisioned.split()} == {f"{chart.bottom}.0"}


def test_the_error_rate_says_how_many_jobs_it_judged_and_what_the_rule_needs(services: Services) -> None:
    empty = dashboard(services)
    broken = dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants))
    purchase_at(services, NOW - timedelta(minutes=5))
    purchase_at(services, NOW - timedelta(minutes=3), worker=broken)  # retrying after a failure

    few = dashboard(services)

    assert empty.error_rate_note == "no jobs yet; the rule waits for 5 jobs in the window"
    assert few.error_rate.value == 0.5
    assert not few.error_rate.firing
    assert few.error_rate_note == "1 of 2 jobs; the rule waits for 5 jobs in the window"


def test_an_error_rate_judged_names_the_threshold_it_is_held_to(services: Services) -> None:
    broken = dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants))
    for minutes in range(5):
        purchase_at(services, NOW - timedelta(minutes=minutes + 1))
    purchase_at(services, NOW - timedelta(minutes=10), worker=broken)
    calm = dashboard(services)
    purchase_at(services, NOW - timedelta(minutes=11), worker=broken)

    firing = dashboard(services)

    assert not calm.error_rate.firing
    assert calm.error_rate_note == "1 of 6 jobs; the rule fires above 20%"
    assert firing.error_rate.firing
    assert firing.error_rate_note == "2 of 7 jobs; the rule fires above 20%"


# --- The dashboard page, as an operator reads it -------------------------------------------------

OPERATOR = "ops-lead@example.com"
PASSWORD = "Operator-Passw0rd!"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Services, TestClient]]:
    """Real embedded services (and clock) and the real app, with an operator signed in."""
    built = build(make_settings(tmp_path / "console-home", payfast_mode="offline", retry_max_attempts=1))
    attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
    built.identity.create_user(OPERATOR, attributes, "Temporary-Passw0rd!")
    built.identity.set_password(OPERATOR, PASSWORD, permanent=True)
    with page_client(built) as client:
        assert sign_in(client, OPERATOR, PASSWORD).status_code == 303
        yield built, client
    built.close()


def page_text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_a_50_percent_error_rate_that_is_not_an_alert_says_why(console: tuple[Services, TestClient]) -> None:
    services, client = console
    pay(services)
    work(services)
    pay(services)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))  # dead-lettered

    text = page_text(client.get("/ops").text)

    assert "50% error rate, last 60 min (1 of 2 jobs; the rule waits for 5 jobs in the window)" in text
    assert "(alert firing)" not in text


def test_one_of_each_thing_is_counted_in_the_singular(console: tuple[Services, TestClient]) -> None:
    services, client = console
    pay(services)
    work(services)

    text = page_text(client.get("/ops").text)

    assert "1 payment, last 7 days" in text
    assert "1 tenant provisioned, last 7 days" in text
    assert "1 succeeded job (all time)" in text
    assert "0 jobs in progress" in text
    assert "1 purchase judged: 1 healthy, 0 in progress, 0 with a finding." in text
    assert "1 payment and 1 tenant provisioned in total" in text
    assert not re.search(r"\b1 (payments|tenants|jobs|purchases|messages)\b", text)


def test_the_dashboard_says_when_the_full_audit_last_ran_and_what_it_found(
    console: tuple[Services, TestClient],
) -> None:
    services, client = console
    broken = pay(services, email="gone@example.com")
    work(services)
    services.identity.delete_user("gone@example.com")  # outside the system: only an audit sees it

    before = page_text(client.get("/ops").text)
    audit = client.get("/ops/audit")
    after = page_text(client.get("/ops").text)

    assert "No full audit has run yet" in before
    assert "1 purchase judged: 1 healthy, 0 in progress, 0 with a finding." in before
    assert audit.status_code == 200
    assert re.search(r"The last full audit \(console\) finished \d+s ago", after)
    assert "over 1 purchase;" in after
    assert "1 purchase judged: 0 healthy, 0 in progress, 1 with a finding." in after
    row = re.search(r'<tr id="finding-identity_user_missing">(.*?)</tr>', client.get("/ops").text, re.DOTALL)
    assert row is not None
    assert '<td class="count">1</td>' in row.group(1)
    assert broken in client.get("/ops/jobs?finding=identity_user_missing").text


def test_a_firing_alert_shows_its_commands_as_code_not_markdown(console: tuple[Services, TestClient]) -> None:
    services, client = console
    pay(services, email="stuck@example.com")
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))

    page = client.get("/ops").text

    assert "1 job dead-lettered" in page_text(page)
    assert "1 message in the DLQ (0 waiting in the work queue)" in page_text(page)
    [alert] = re.findall(r'<ul id="alerts-firing">(.*?)</ul>', page, re.DOTALL)
    assert "1 job in the dead-letter queue: see <code>tenancy dlq list</code>" in alert
    assert "`" not in alert


def test_the_case_page_shows_the_runbook_s_commands_as_code_too(console: tuple[Services, TestClient]) -> None:
    services, client = console
    transaction_id = pay(services, email="owner@example.com")
    work(services)  # no SMTP server here: the welcome email is stored, not delivered

    page = client.get(f"/ops/cases/{transaction_id}").text

    [diagnosis] = re.findall(r'<dl class="facts" id="diagnosis">(.*?)</dl>', page, re.DOTALL)
    assert "<code>tenancy mail list --to owner@example.com</code>" in diagnosis
    assert "`" not in diagnosis


def test_the_dashboard_shows_the_subscription_business(console: tuple[Services, TestClient]) -> None:
    services, client = console
    for number, plan in enumerate(("professional", "enterprise")):
        token = f"00000000-0000-4000-8000-00000000000{number}"
        transaction_id = f"TXN-SUBDASH{number}"
        for payment in (1, 2):  # the first charge, then a renewal once provisioned
            itn = build_itn(
                transaction_id=transaction_id,
                email=f"dash{number}@example.com",
                plan=plan,
                amount=services.plans.get(plan).price_zar,
                merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
                passphrase=PAYFAST_SANDBOX_PASSPHRASE,
                pf_payment_id=f"55500{number}{payment}",
                token=token,
                billing_date="2026-03-01",
            )
            services.intake.receive(encode_form(itn), "197.97.145.145")
            work(services)

    text = page_text(client.get("/ops").text)

    assert "2 active subscriptions" in text
    assert "R1,298.00 monthly recurring revenue" in text  # 299.00 + 999.00 a month
    assert "2 renewals, last 7 days" in text
    assert "0 cancellations, last 7 days" in text
