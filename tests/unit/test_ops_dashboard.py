"""The dashboard's numbers and hourly series (runbook.dashboard) and the chart drawn from them."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tenancy.bootstrap import Services, build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.runbook.dashboard import SERIES_HOURS, Dashboard, HourlySeries, hourly_counts, read_dashboard, series_start
from tenancy.web.pages.ops import line_chart

from helpers import BrokenTenantStore, make_settings

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
        (worker or services).worker().poll_once()
    services.clock.moment = NOW


def dashboard(services: Services) -> Dashboard:
    return read_dashboard(
        journal=services.journal,
        ledger=services.ledger,
        tenants=services.tenants,
        queue=services.queue,
        thresholds=services.alert_monitor.thresholds,
        now=NOW,
    )


def test_the_series_ends_with_the_current_hour_and_spans_seven_days() -> None:
    start = series_start(NOW)

    assert start == datetime(2026, 2, 22, 13, 0, tzinfo=UTC)
    assert start + (SERIES_HOURS - 1) * timedelta(hours=1) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_hourly_counts_bucket_each_moment_and_ignore_those_outside() -> None:
    start = series_start(NOW)
    moments = [
        start - timedelta(seconds=1),  # before the first hour
        start,
        start + timedelta(minutes=59, seconds=59),
        start + timedelta(hours=1),
        NOW,  # the current hour: the last bucket
        NOW + timedelta(hours=1),  # the future
    ]

    counts = hourly_counts(moments, start)

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
    assert (numbers.succeeded, numbers.active_tenants, numbers.in_progress) == (3, 3, 1)
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
