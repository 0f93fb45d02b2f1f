"""The console's case and mail pages through the real `tenancy serve` process, run as `make run`
runs it (no SMTP server): what it shows agrees with the runbook, an operator is not a tenant, a
tenant written by hand is found by its id, mail that was only stored says so, and the dashboard
says why an error rate is not an alert, counts one thing in the singular and shows commands as code."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import re
from collections.abc import Iterator

import httpx
import pytest

from tenancy.bootstrap import build

from helpers import BrokenTenantStore, make_settings, pay, work
from runbook_cases import OPERATOR_PASSWORD, hand_written_tenant, operator_account
from servers import RunningServer, plain_http_server

OPERATOR = "ops-lead@example.com"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`tenancy serve` without TENANCY_SMTP_URL, on plain http (cookies without Secure, so httpx
    keeps and sends them); the purchases are made in its own stores."""
    with plain_http_server(tmp_path_factory.mktemp("console-home")) as running:
        yield running


@pytest.fixture(scope="module")
def purchases(console: RunningServer) -> dict[str, str]:
    services = build(make_settings(console.home, payfast_mode="offline"))
    try:
        operator_account(services, OPERATOR)
        healthy = pay(services, "healthy@example.com")
        lost_mail = pay(services, "lost-mail@example.com")
        work(services)
        assert services.database is not None
        with services.database.transaction() as connection:  # RB-001 4.4: the welcome email is lost
            connection.execute("DELETE FROM outbox WHERE to_address = ?", ("lost-mail@example.com",))
        hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")
    finally:
        services.close()
    return {"healthy": healthy, "lost_mail": lost_mail}


@pytest.fixture(scope="module")
def operator(console: RunningServer, purchases: dict[str, str]) -> Iterator[httpx.Client]:
    with signed_in_operator(console) as client:
        yield client


@pytest.fixture(scope="module")
def one_of_each(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A second console whose stores hold one of each thing the dashboard counts: one payment, its
    job dead-lettered (RB-001 4.1: the tenant store refused it), and one active tenant (written by
    hand, with no payment), for an operator signed in."""
    with plain_http_server(tmp_path_factory.mktemp("one-of-each-home")) as running:
        services = build(make_settings(running.home, payfast_mode="offline", retry_max_attempts=1))
        try:
            operator_account(services, OPERATOR)
            pay(services, "stuck@example.com")
            work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
            hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")
        finally:
            services.close()
        with signed_in_operator(running) as client:
            yield client


@contextlib.contextmanager
def signed_in_operator(server: RunningServer) -> Iterator[httpx.Client]:
    # A browser names the page's site in Origin on every form post.
    with httpx.Client(base_url=server.base_url, headers={"Origin": server.base_url}) as client:
        token = _csrf_token(client.get("/auth/login").text)
        form = {"csrf_token": token, "email": OPERATOR, "password": OPERATOR_PASSWORD}
        signed_in = client.post("/auth/login/form", data=form)
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == "/ops"
        yield client


def _csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_a_4_4_case_is_not_shown_as_passing(operator: httpx.Client, purchases: dict[str, str]) -> None:
    response = operator.get(f"/ops/cases/{purchases['lost_mail']}")

    assert response.status_code == 200
    assert 'id="finding">welcome_email_missing<' in response.text
    assert "All checks pass" not in response.text
    assert "welcome email sent to the owner (RB-001 4.4) fail none was sent" in text_of(response.text)


def test_the_operator_s_own_case_is_not_a_tenant_and_has_no_repair(operator: httpx.Client) -> None:
    response = operator.get(f"/ops/cases/{OPERATOR}")

    assert response.status_code == 200
    assert 'id="finding">not_a_tenant<' in response.text
    assert f"{OPERATOR} is an operator account, not a tenant" in text_of(response.text)
    assert 'id="repair-link"' not in response.text
    assert "None" not in text_of(response.text)


def test_a_hand_written_tenant_is_found_by_its_id(operator: httpx.Client) -> None:
    response = operator.get("/ops/cases", params={"q": "ten_NEWID"}, follow_redirects=True)

    assert response.status_code == 200
    assert "<h1>Case TXN-123456</h1>" in response.text
    assert "identity user exists pass hand@example.com" in text_of(response.text)


def test_without_smtp_every_page_has_the_banner_and_stored_mail_says_so(
    operator: httpx.Client, purchases: dict[str, str]
) -> None:
    dashboard = operator.get("/ops").text
    mail = operator.get("/ops/mail").text
    healthy = operator.get(f"/ops/cases/{purchases['healthy']}").text

    for page in (dashboard, mail, healthy):
        assert "No SMTP server is configured" in text_of(page)
    assert "stored, not delivered (no SMTP configured)" in text_of(mail)
    assert 'id="finding">healthy<' in healthy
    assert "welcome email stored, not delivered (no SMTP configured)" in text_of(healthy)
    assert "the owner has not received it" in text_of(healthy)


def test_the_dashboard_says_why_the_error_rate_is_no_alert_counts_one_in_the_singular_and_shows_code(
    one_of_each: httpx.Client,
) -> None:
    page = one_of_each.get("/ops")

    assert page.status_code == 200
    text = text_of(page.text)
    # 1 of 1 job failed: 100%, but the rule waits for its minimum of jobs (error_rate_min_jobs).
    assert "100% error rate, last 60 min (1 of 1 job; the rule waits for 5 jobs in the window)" in text
    assert "(alert firing)" not in text
    assert "1 payment, last 7 days" in text
    assert "1 job dead-lettered" in text
    assert "1 message in the DLQ (0 waiting in the work queue)" in text
    [active] = re.findall(r'<li class="tile" id="tile-tenants-active">(.*?)</li>', page.text, re.DOTALL)
    assert text_of(active) == "1 active"
    assert not re.search(r"\b1 (payments|tenants|jobs|purchases|messages)\b", text)
    assert "(s)" not in text
    [alerts] = re.findall(r'<ul id="alerts-firing">(.*?)</ul>', page.text, re.DOTALL)
    assert "1 job in the dead-letter queue: see <code>tenancy dlq list</code>" in alerts
    assert "`" not in alerts
