"""The operations console's case page shows the tenant's usage against its plan's limits (issue
16), read as the service API reads it: each metric used of its limit, the one over it marked, a
generation count of an earlier period shown as zero. Real embedded services, the real app, an
operator signed in through the sign-in page, as in test_ops_pages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.clock import format_timestamp
from tenancy.domain.usage import Metric
from tenancy.runbook.evidence import Selector

from helpers import make_settings, pay, work
from page_client import page_client, sign_in

OPERATOR = "ops-lead@example.com"
PASSWORD = "Operator-Passw0rd!"
TEMPORARY = "Temporary-Passw0rd!"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    # Offline PayFast: the ITNs need no validate endpoint; their signatures and amounts still count.
    built = build(make_settings(tmp_path / "home", payfast_mode="offline"))
    yield built
    built.close()


@pytest.fixture
def operator(services: Services) -> Iterator[TestClient]:
    attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
    services.identity.create_user(OPERATOR, attributes, TEMPORARY)
    services.identity.set_password(OPERATOR, PASSWORD, permanent=True)
    with page_client(services) as client:
        assert sign_in(client, OPERATOR, PASSWORD).status_code == 303
        yield client


def provisioned(services: Services, email: str) -> tuple[str, str]:
    """A professional purchase provisioned and healthy: (transaction id, tenant id)."""
    transaction_id = pay(services, email)
    work(services)
    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))
    assert diagnosis.healthy
    assert diagnosis.tenant_id is not None
    return transaction_id, diagnosis.tenant_id


def usage_row(page: str, metric: Metric) -> str:
    """The text of the usage table's row of `metric`, tags removed."""
    match = re.search(rf'<tr class="usage-row" id="usage-{metric.value}">(.*?)</tr>', page, re.DOTALL)
    assert match, f"no usage row for {metric.value}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_case_page_shows_each_metric_against_its_limit_and_marks_the_one_over_it(
    services: Services, operator: TestClient
) -> None:
    transaction_id, tenant_id = provisioned(services, "over@example.com")
    # professional: 5 sites, 100 generations, 500 MB. Two sites too many, set by hand.
    services.usage.correct(tenant_id, Metric.SITES, 7, reason="imported", operator="alice")
    services.usage.correct(tenant_id, Metric.GENERATIONS, 30, reason="imported", operator="alice")

    page = operator.get(f"/ops/cases/{transaction_id}").text
    period = services.usage.entitlements(tenant_id).period

    assert usage_row(page, Metric.SITES) == "sites 7 of 5 sites 0 over the limit by 2"
    assert usage_row(page, Metric.GENERATIONS) == "generations 30 of 100 generations 70 within the limit"
    assert usage_row(page, Metric.STORAGE_MB) == "storage_mb 0 of 500 MB 500 within the limit"
    assert page.count('class="status failed over-limit"') == 1
    text = text_of(page)
    assert f"Plan professional, period {period.start.isoformat()} to {period.end.isoformat()}" in text
    # The finding agrees with the table, and says what to do: no repair is offered.
    assert 'id="finding">usage_over_limit<' in page
    assert f"tenancy usage show {tenant_id}" in text
    assert 'id="repair-link"' not in page
    assert "None" not in text


def test_a_generation_count_kept_for_an_earlier_period_shows_as_zero(services: Services, operator: TestClient) -> None:
    transaction_id, tenant_id = provisioned(services, "last-month@example.com")
    # 150 generations counted in a period long over, and nothing recorded since.
    at = format_timestamp(services.clock.now())
    services.usage_store.correct(tenant_id, Metric.GENERATIONS, 150, "2000-01-01", at)
    stored = services.tenants.get(tenant_id)
    assert stored is not None
    assert stored.usage.generations_this_month == 150

    page = operator.get(f"/ops/cases/{transaction_id}").text

    assert usage_row(page, Metric.GENERATIONS) == "generations 0 of 100 generations 100 within the limit"
    assert "over-limit" not in page
    assert 'id="finding">healthy<' in page


def test_a_case_without_a_tenant_shows_no_usage(operator: TestClient) -> None:
    page = operator.get("/ops/cases/TXN-NOSUCHTHING").text

    assert 'id="usage-empty"' in page
    assert 'id="usage"' not in page
