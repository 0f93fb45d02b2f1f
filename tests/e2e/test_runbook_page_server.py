"""The runbook page through the real `tenancy serve` process: an operator reads RB-001 with every
section at its anchor, anyone else is refused, a case page links its finding to its section, and
the link `tenancy diagnose` prints opens that section of the page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tenancy.bootstrap import build
from tenancy.runbook.findings import Finding
from tenancy.runbook.runbook_doc import ALERT_SECTIONS, RunbookDocument, anchor_of, load_runbook

from helpers import make_settings, pay, work
from runbook_cases import OPERATOR_PASSWORD, operator_account
from servers import RunningServer, cli_env, plain_http_server, tenancy

OPERATOR = "ops-reader@example.com"
OWNER = "owner-reader@example.com"
OWNER_PASSWORD = "Owner-Chosen-Passw0rd!"
LOST_MAIL = "lost-mail-reader@example.com"
NO_IDENTITY = "no-identity-reader@example.com"


@pytest.fixture(scope="module")
def document() -> RunbookDocument:
    shipped = load_runbook()
    assert shipped is not None, "docs/runbooks/RB-001.md is missing"
    return shipped


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with plain_http_server(tmp_path_factory.mktemp("runbook-page-home")) as running:
        yield running


@pytest.fixture(scope="module")
def purchases(console: RunningServer) -> dict[str, str]:
    services = build(make_settings(console.home, payfast_mode="offline"))
    try:
        operator_account(services, OPERATOR)
        pay(services, OWNER)
        lost_mail = pay(services, LOST_MAIL)
        no_identity = pay(services, NO_IDENTITY)
        work(services)
        # The owner chose a password: a tenant admin who can sign in, but is no operator.
        services.identity.set_password(OWNER, OWNER_PASSWORD, permanent=True)
        assert services.database is not None
        with services.database.transaction() as connection:  # RB-001 4.4: the welcome email is lost
            connection.execute("DELETE FROM outbox WHERE to_address = ?", (LOST_MAIL,))
        services.identity.delete_user(NO_IDENTITY)  # RB-001 4.2: the identity user is gone
    finally:
        services.close()
    return {"lost_mail": lost_mail, "no_identity": no_identity}


@contextmanager
def signed_in(console: RunningServer, email: str, password: str) -> Iterator[httpx.Client]:
    # A browser names the page's site in Origin on every form post.
    with httpx.Client(base_url=console.base_url, headers={"Origin": console.base_url}) as client:
        match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/auth/login").text)
        assert match
        form = {"csrf_token": match.group(1), "email": email, "password": password}
        response = client.post("/auth/login/form", data=form)
        assert response.status_code == 303, response.text
        yield client


@pytest.fixture(scope="module")
def operator(console: RunningServer, purchases: dict[str, str]) -> Iterator[httpx.Client]:
    with signed_in(console, OPERATOR, OPERATOR_PASSWORD) as client:
        yield client


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_an_operator_reads_the_runbook_with_every_section_at_its_anchor(
    operator: httpx.Client, document: RunbookDocument
) -> None:
    response = operator.get("/ops/runbook")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for part in document.sections:
        heading = re.search(rf'<h{part.level} id="{part.anchor}">(.*?)</h{part.level}>', page)
        assert heading, f"no heading with id {part.anchor}"
        assert text_of(heading.group(1)).startswith(part.number)
        assert f'<a href="#{part.anchor}">' in page  # the contents list leads to it
    # Every section a finding or an alert links to is there to land on.
    linked = {finding.runbook_section for finding in Finding if finding.runbook_section} | set(ALERT_SECTIONS.values())
    for number in linked:
        assert f'id="{anchor_of(number)}"' in page
    assert 'aria-current="page">Runbook<' in page  # the console's navigation says where we are
    assert document.title in text_of(page)


def test_a_tenant_admin_is_refused_the_runbook_page(console: RunningServer, purchases: dict[str, str]) -> None:
    with signed_in(console, OWNER, OWNER_PASSWORD) as owner:
        response = owner.get("/ops/runbook")

    assert response.status_code == 403
    assert "for operators only" in text_of(response.text)
    assert 'id="4-2"' not in response.text


def test_without_signing_in_the_runbook_page_asks_to_sign_in(console: RunningServer) -> None:
    response = httpx.get(f"{console.base_url}/ops/runbook")

    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=/ops/runbook"


def test_a_case_page_links_its_finding_to_its_section_with_the_section_s_title(
    operator: httpx.Client, purchases: dict[str, str], document: RunbookDocument
) -> None:
    lost_mail = operator.get(f"/ops/cases/{purchases['lost_mail']}").text
    no_identity = operator.get(f"/ops/cases/{purchases['no_identity']}").text

    assert 'id="finding">welcome_email_missing<' in lost_mail
    assert '<a id="scenario-link" href="/ops/runbook#4-4"><span id="scenario">4.4</span>' in lost_mail
    assert f"RB-001 scenario 4.4 {document.section('4.4').title}" in text_of(lost_mail)  # type: ignore[union-attr]
    assert 'id="finding">identity_user_missing<' in no_identity
    assert 'href="/ops/runbook#4-2"' in no_identity


def test_the_dashboard_links_each_open_finding_s_scenario_to_its_section(operator: httpx.Client) -> None:
    page = operator.get("/ops").text

    row = re.search(r'<tr id="finding-welcome_email_missing">(.*?)</tr>', page, re.DOTALL)
    assert row
    assert '<a href="/ops/runbook#4-4">4.4</a>' in row.group(1)


def test_the_link_diagnose_prints_opens_that_section_of_the_page(
    console: RunningServer, operator: httpx.Client, purchases: dict[str, str]
) -> None:
    env = cli_env(console.home, TENANCY_PUBLIC_URL=console.base_url)

    diagnosed = tenancy(env, "diagnose", "--transaction-id", purchases["no_identity"])

    assert diagnosed.returncode == 1
    printed = re.search(r"^runbook: RB-001 4\.2 .* — (\S+)$", diagnosed.stdout, re.MULTILINE)
    assert printed, diagnosed.stdout
    link = httpx.URL(printed.group(1))
    assert (str(link.copy_with(fragment=None)), link.fragment) == (f"{console.base_url}/ops/runbook", "4-2")
    page = operator.get(link.path).text
    assert '<h3 id="4-2">' in page
