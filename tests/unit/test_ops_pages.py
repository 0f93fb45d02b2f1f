"""The operations console as an operator uses it: real embedded services, the real app, signed in
through the sign-in page; purchases made with signed ITNs and broken the way RB-001 describes."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tenancy.bootstrap import Services, build
from tenancy.domain.lifecycle import LifecycleEvent, NoticeStatus
from tenancy.domain.model import IndexedPurchase, JobStatus
from tenancy.errors import PermanentError
from tenancy.runbook.audit_export import CSV_COLUMNS
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding

from helpers import BrokenTenantStore, make_settings, pay, work
from page_client import csrf_token_in, page_client, sign_in
from runbook_cases import hand_written_tenant

OPERATOR = "ops-lead@example.com"
PASSWORD = "Operator-Passw0rd!"
TEMPORARY = "Temporary-Passw0rd!"

GET_URLS = (
    "/ops",
    "/ops/jobs",
    "/ops/cases?q=TXN-1",
    "/ops/cases/TXN-1",
    "/ops/cases/TXN-1/repair",
    "/ops/dlq",
    "/ops/notices",
    "/ops/mail",
    "/ops/audit",
    "/ops/audit.csv",
    "/ops/runbook",
)
POST_URLS = (
    "/ops/cases/TXN-1/repair",
    "/ops/dlq/msg-1/redrive",
    "/ops/dlq/redrive-all",
    "/ops/notices/evt_1/redeliver",
)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    # Offline PayFast: the ITNs need no validate endpoint; their signatures and amounts still count.
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_max_attempts=2))
    yield built
    built.close()


@pytest.fixture
def browser(services: Services) -> Iterator[TestClient]:
    with page_client(services) as client:
        yield client


@pytest.fixture
def operator(services: Services, browser: TestClient) -> TestClient:
    attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
    services.identity.create_user(OPERATOR, attributes, TEMPORARY)
    services.identity.set_password(OPERATOR, PASSWORD, permanent=True)
    signed_in(browser, OPERATOR, PASSWORD)
    return browser


def signed_in(browser: TestClient, email: str, password: str) -> None:
    response = sign_in(browser, email, password)
    assert response.status_code == 303, response.text


def healthy_tenant(services: Services, email: str) -> str:
    transaction_id = pay(services, email)
    work(services)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).healthy
    return transaction_id


def dead_lettered(services: Services, email: str) -> str:
    transaction_id = pay(services, email)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    assert services.journal.get(transaction_id).status is JobStatus.DEAD_LETTERED  # type: ignore[union-attr]
    return transaction_id


def identity_user_missing(services: Services, email: str) -> str:
    """RB-001 4.2: the tenant exists, the identity user does not. It was deleted outside the
    system (as in the Cognito console), which only a full audit sees: the weekly one runs."""
    transaction_id = healthy_tenant(services, email)
    services.identity.delete_user(email)
    services.scheduled_audit.run()
    return transaction_id


def tile(page: str, name: str) -> str:
    match = re.search(rf'id="tile-{name}"><span class="value">([^<]+)</span>', page)
    assert match, f"no tile {name}"
    return match.group(1)


def finding_count(page: str, finding: Finding) -> int:
    match = re.search(rf'id="finding-{finding.value}">.*?<td class="count">(\d+)</td>', page, re.DOTALL)
    assert match, f"no row for {finding.value}"
    return int(match.group(1))


def listed_transactions(page: str) -> list[str]:
    return re.findall(r'class="job-row" data-transaction-id="([^"]+)"', page)


def text_of(page: str) -> str:
    """The page's text, tags removed and entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# --- Who may enter -----------------------------------------------------------------------------


def test_an_anonymous_browser_is_sent_to_sign_in_from_every_ops_url(browser: TestClient) -> None:
    for url in GET_URLS:
        response = browser.get(url, follow_redirects=False)
        assert response.status_code == 303, url
        assert response.headers["location"].startswith("/auth/login?next=/ops"), url
    for url in POST_URLS:
        response = browser.post(url, data={}, follow_redirects=False)
        assert response.status_code == 303, url
        assert response.headers["location"].startswith("/auth/login"), url


def test_a_tenant_admin_is_refused_every_ops_url(services: Services, browser: TestClient) -> None:
    transaction_id = dead_lettered(services, "victim@example.com")
    owner = "owner@example.com"
    healthy_tenant(services, owner)
    services.identity.set_password(owner, "Owner-Passw0rd!", permanent=True)
    signed_in(browser, owner, "Owner-Passw0rd!")
    token = csrf_token_in(browser.get("/account").text)

    for url in GET_URLS:
        response = browser.get(url, follow_redirects=False)
        assert response.status_code == 403, url
        assert "for operators only" in response.text, url
    (message,) = services.runbook.dead_letters()
    for url in (*POST_URLS, f"/ops/dlq/{message.message_id}/redrive", f"/ops/cases/{transaction_id}/repair"):
        response = browser.post(url, data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 403, url

    assert services.queue.depth() == (0, 1)
    assert services.trail.entries() == []


def test_an_operator_demoted_or_disabled_since_signing_in_loses_the_console(
    services: Services, operator: TestClient
) -> None:
    assert operator.get("/ops").status_code == 200

    services.identity.update_attributes(OPERATOR, {"custom:roles": ""})  # demoted; the session still says operator
    demoted = operator.get("/ops")
    services.identity.update_attributes(OPERATOR, {"custom:roles": "operator"})
    # The demotion ended the session for good: the role given back does not bring it back.
    after_restoring = operator.get("/ops", follow_redirects=False)
    signed_in(operator, OPERATOR, PASSWORD)
    signed_in_again = operator.get("/ops")
    services.identity.delete_user(OPERATOR)
    removed = operator.get("/ops/jobs")
    after_removal = operator.get("/ops", follow_redirects=False)

    assert (demoted.status_code, signed_in_again.status_code, removed.status_code) == (403, 200, 403)
    assert after_restoring.status_code == 303
    assert after_restoring.headers["location"].startswith("/auth/login")
    assert after_removal.status_code == 303


# --- Dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_counts_payments_provisioning_failures_and_the_dlq(
    services: Services, operator: TestClient
) -> None:
    healthy_tenant(services, "one@example.com")
    healthy_tenant(services, "two@example.com")
    dead_lettered(services, "stuck@example.com")
    identity_user_missing(services, "lost@example.com")

    response = operator.get("/ops")

    assert response.status_code == 200
    page = response.text
    assert tile(page, "payments") == "4"
    assert tile(page, "provisioned") == "3"
    assert tile(page, "succeeded") == "3"
    assert tile(page, "in-progress") == "0"
    assert tile(page, "dead-lettered") == "1"
    assert tile(page, "needs-review") == "0"
    assert tile(page, "dlq") == "1"
    # 1 of 4 jobs failed an attempt, but fewer than the minimum sample of 5 is not judged.
    assert tile(page, "error-rate") == "25%"
    assert "dlq_not_empty" in page  # the alert firing, as `tenancy alerts check` would say
    assert finding_count(page, Finding.PROVISIONING_FAILED) == 1
    assert finding_count(page, Finding.IDENTITY_USER_MISSING) == 1
    assert finding_count(page, Finding.TENANT_RECORD_MISSING) == 0
    assert '<title id="chart-title">' in page
    assert page.count("<polyline") == 2
    assert 'class="legend-payments"' in page
    assert 'class="legend-provisioned"' in page
    day_rows = re.findall(r"<tr><th scope=\"row\">\d{4}-\d\d-\d\d</th><td>(\d+)</td><td>(\d+)</td></tr>", page)
    assert sum(int(paid) for paid, _ in day_rows) == 4
    assert sum(int(provisioned) for _, provisioned in day_rows) == 3


def test_every_page_has_a_heading_and_the_console_nav(services: Services, operator: TestClient) -> None:
    transaction_id = healthy_tenant(services, "one@example.com")

    for url in ("/ops", "/ops/jobs", f"/ops/cases/{transaction_id}", "/ops/dlq", "/ops/mail", "/ops/audit"):
        page = operator.get(url).text
        assert page.count("<h1>") == 1, url
        assert 'aria-label="Operations console"' in page, url
        assert 'aria-current="page"' in page, url
        # The Content-Security-Policy forbids inline styles: they would be ignored.
        assert " style=" not in page, url
        assert "<style" not in page, url


# --- Jobs --------------------------------------------------------------------------------------


def test_the_jobs_list_narrows_by_status_finding_and_search(services: Services, operator: TestClient) -> None:
    healthy = healthy_tenant(services, "one@example.com")
    stuck = dead_lettered(services, "stuck@example.com")
    lost = identity_user_missing(services, "lost@example.com")

    everything = listed_transactions(operator.get("/ops/jobs").text)
    by_status = listed_transactions(operator.get("/ops/jobs", params={"status": "dead_lettered"}).text)
    by_finding = listed_transactions(operator.get("/ops/jobs", params={"finding": "identity_user_missing"}).text)
    healthy_only = listed_transactions(operator.get("/ops/jobs", params={"finding": "healthy"}).text)
    by_email = listed_transactions(operator.get("/ops/jobs", params={"q": "Stuck@Example.com"}).text)
    tenant_id = services.tenants.find_by_transaction(lost).tenant_id  # type: ignore[union-attr]
    by_tenant = listed_transactions(operator.get("/ops/jobs", params={"q": tenant_id}).text)
    by_transaction = listed_transactions(operator.get("/ops/jobs", params={"q": healthy}).text)
    nothing = listed_transactions(operator.get("/ops/jobs", params={"q": "nobody@example.com"}).text)

    assert sorted(everything) == sorted([healthy, stuck, lost])
    assert by_status == [stuck]
    assert by_finding == [lost]
    assert healthy_only == [healthy]
    assert by_email == [stuck]
    assert by_tenant == [lost]
    assert by_transaction == [healthy]
    assert nothing == []


def test_a_long_list_shows_the_newest_fifty_and_offers_more(services: Services, operator: TestClient) -> None:
    for number in range(55):
        stamp = f"2026-12-01T10:{number:02d}:00Z"
        services.findings_index.put(IndexedPurchase(f"TXN-REVIEW{number:03d}", "needs_review", stamp, stamp))

    first = operator.get("/ops/jobs", params={"finding": "needs_review"}).text
    [more] = re.findall(r'<a id="show-more" href="([^"]+)"', first)
    everything = operator.get(html.unescape(more)).text

    assert listed_transactions(first) == [f"TXN-REVIEW{number:03d}" for number in range(54, 4, -1)]
    assert "55 purchases" not in text_of(first)
    assert "50 purchases: the newest 50. Show more" in text_of(first)
    assert html.unescape(more) == "/ops/jobs?finding=needs_review&limit=200"
    assert len(listed_transactions(everything)) == 55
    assert 'id="show-more"' not in everything


def test_a_purchase_paid_but_never_given_a_job_is_listed_as_4_1(services: Services, operator: TestClient) -> None:
    transaction_id = pay(services, "never@example.com")
    services.queue.purge(transaction_id)
    assert services.database is not None
    with services.database.transaction() as connection:
        connection.execute("DELETE FROM provisioning WHERE transaction_id = ?", (transaction_id,))
    services.scheduled_audit.run()  # a job deleted by hand: only the full audit sees it

    page = operator.get("/ops/jobs", params={"finding": "provisioning_failed"}).text
    by_email = operator.get("/ops/jobs", params={"q": "never@example.com"}).text
    by_transaction = operator.get("/ops/jobs", params={"q": transaction_id, "finding": "provisioning_failed"}).text

    assert listed_transactions(page) == [transaction_id]
    assert "no job" in page
    assert listed_transactions(by_email) == [transaction_id]  # a search diagnoses just what it names
    assert listed_transactions(by_transaction) == [transaction_id]


def test_the_case_search_opens_the_case_by_email_or_tenant_id(services: Services, operator: TestClient) -> None:
    transaction_id = healthy_tenant(services, "one@example.com")
    tenant_id = services.tenants.find_by_transaction(transaction_id).tenant_id  # type: ignore[union-attr]

    by_email = operator.get("/ops/cases", params={"q": "one@example.com"})
    by_tenant = operator.get(f"/ops/cases/{tenant_id}")

    assert by_email.status_code == 200
    assert f"<h1>Case {transaction_id}</h1>" in by_email.text
    assert f"<h1>Case {transaction_id}</h1>" in by_tenant.text


# --- Case and repair ---------------------------------------------------------------------------


def test_repair_from_the_console_fixes_4_2_and_the_case_then_verifies(services: Services, operator: TestClient) -> None:
    transaction_id = identity_user_missing(services, "lost@example.com")
    case_page = operator.get(f"/ops/cases/{transaction_id}").text
    assert 'id="finding">identity_user_missing<' in case_page
    assert 'id="scenario">4.2<' in case_page
    assert "Verification failed" in case_page
    assert 'id="trail-empty"' in case_page
    assert 'id="repair-link"' in case_page

    plan_page = operator.get(f"/ops/cases/{transaction_id}/repair").text
    assert "create identity user lost@example.com" in html.unescape(plan_page)
    assert "data-confirm=" in plan_page
    assert '<script src="/static/confirm.js"></script>' in plan_page
    assert services.identity.get_user("lost@example.com") is None  # the plan is a dry run

    response = operator.post(
        f"/ops/cases/{transaction_id}/repair", data={"csrf_token": csrf_token_in(plan_page)}, follow_redirects=False
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/ops/cases/{transaction_id}?done=repaired"
    after = operator.get(response.headers["location"]).text
    assert 'id="notice">Repaired.' in after
    assert 'id="finding">healthy<' in after
    assert "All checks pass" in after
    trail = re.findall(r'<tr class="trail-entry">\s*<th scope="row">[^<]+</th>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>'
                       r"\s*<td>([^<]+)</td>", after)  # fmt: skip
    assert trail == [(OPERATOR, "identity_user_missing", "repaired")]
    user = services.identity.get_user("lost@example.com")
    assert user is not None
    assert [(entry.operator, entry.outcome) for entry in services.trail.entries(transaction_id=transaction_id)] == [
        (OPERATOR, "repaired")
    ]


def test_a_healthy_case_offers_no_repair_and_a_repair_post_changes_nothing(
    services: Services, operator: TestClient
) -> None:
    transaction_id = healthy_tenant(services, "one@example.com")
    page = operator.get(f"/ops/cases/{transaction_id}").text
    assert 'id="repair-link"' not in page

    response = operator.post(
        f"/ops/cases/{transaction_id}/repair", data={"csrf_token": csrf_token_in(page)}, follow_redirects=False
    )

    assert response.headers["location"] == f"/ops/cases/{transaction_id}?done=nothing_to_do"
    assert services.trail.entries() == []


def test_a_repair_posted_without_the_csrf_token_is_refused_and_changes_nothing(
    services: Services, operator: TestClient
) -> None:
    transaction_id = identity_user_missing(services, "lost@example.com")
    stuck = dead_lettered(services, "stuck@example.com")
    (message,) = services.runbook.dead_letters()

    refused = [
        operator.post(f"/ops/cases/{transaction_id}/repair", data={}, follow_redirects=False),
        operator.post(f"/ops/cases/{transaction_id}/repair", data={"csrf_token": "x" * 43}, follow_redirects=False),
        operator.post("/ops/dlq/redrive-all", data={}, follow_redirects=False),
        operator.post(f"/ops/dlq/{message.message_id}/redrive", data={}, follow_redirects=False),
    ]

    assert [response.status_code for response in refused] == [403, 403, 403, 403]
    assert "did not accept this form" in refused[0].text
    assert services.identity.get_user("lost@example.com") is None
    assert services.trail.entries() == []
    assert [dead.transaction_id for dead in services.runbook.dead_letters()] == [stuck]


def test_a_case_key_that_names_nothing_shows_payment_not_found(operator: TestClient) -> None:
    page = operator.get("/ops/cases/TXN-NOSUCHTHING").text

    assert 'id="finding">payment_not_found<' in page
    assert 'id="repair-link"' not in page


def test_an_unrepairable_case_gets_a_clear_page_not_a_traceback(operator: TestClient) -> None:
    page = operator.get("/ops/cases/nobody@example.com/repair")
    token = csrf_token_in(page.text)

    response = operator.post("/ops/cases/nobody@example.com/repair", data={"csrf_token": token}, follow_redirects=False)

    assert page.status_code == 200
    assert 'id="no-work"' in page.text
    assert response.status_code == 303
    assert response.headers["location"] == "/ops/cases/nobody@example.com?done=not_repairable"
    assert "cannot be repaired automatically" in operator.get(response.headers["location"]).text


def test_notices_are_fixed_texts_never_the_query(operator: TestClient) -> None:
    page = operator.get("/ops/dlq", params={"done": "<script>alert(1)</script>", "count": "<b>"}).text

    assert "alert(1)" not in page
    assert 'id="notice"' not in page


# --- Dead-letter queue -------------------------------------------------------------------------


def test_redrive_moves_a_dead_letter_back_to_the_work_queue(services: Services, operator: TestClient) -> None:
    first = dead_lettered(services, "first@example.com")
    second = dead_lettered(services, "second@example.com")
    page = operator.get("/ops/dlq").text
    assert first in page
    assert second in page
    assert page.count('class="dlq-row"') == 2
    (message,) = [m for m in services.runbook.dead_letters() if m.transaction_id == first]

    response = operator.post(
        f"/ops/dlq/{message.message_id}/redrive", data={"csrf_token": csrf_token_in(page)}, follow_redirects=False
    )

    assert response.headers["location"] == "/ops/dlq?done=redriven"
    assert services.queue.depth() == (1, 1)
    assert services.journal.get(first).status is JobStatus.QUEUED  # type: ignore[union-attr]
    after = operator.get(response.headers["location"]).text
    assert "back on the work queue" in after
    assert after.count('class="dlq-row"') == 1
    again = operator.post(
        f"/ops/dlq/{message.message_id}/redrive", data={"csrf_token": csrf_token_in(after)}, follow_redirects=False
    )
    assert again.headers["location"] == "/ops/dlq?done=not_found"

    token = csrf_token_in(after)
    everything = operator.post("/ops/dlq/redrive-all", data={"csrf_token": token}, follow_redirects=False)

    assert everything.headers["location"] == "/ops/dlq?done=redriven_all&count=1"
    assert "Redrove 1 message back to the work queue." in operator.get(everything.headers["location"]).text
    assert services.queue.depth() == (2, 0)
    work(services)
    assert services.runbook.diagnose(Selector(transaction_id=second)).healthy


# --- Mail --------------------------------------------------------------------------------------


def test_the_mail_outbox_lists_emails_newest_first_with_their_text(services: Services, operator: TestClient) -> None:
    healthy_tenant(services, "one@example.com")
    healthy_tenant(services, "two@example.com")

    page = operator.get("/ops/mail").text

    recipients = re.findall(
        r'<tr class="mail-row" id="mail-[^"]+">\s*<th scope="row">[^<]+</th>\s*<td>([^<]+)</td>', page
    )
    assert recipients == [message.to for message in services.mailer.outbox(limit=100)]
    assert set(recipients) == {"one@example.com", "two@example.com"}
    assert "<td>welcome</td>" in page
    assert "<details>" in page
    newest = services.mailer.outbox(limit=1)[0]
    assert newest.subject in page
    password = re.search(r"Temporary password: (\S+)", newest.text)
    assert password  # kept in the outbox (no SMTP here) for its reader...
    shown = newest.text.replace(password.group(1), "[hidden in the console]")
    assert " ".join(shown.split()) in text_of(page)
    assert password.group(1) not in page  # ...but not shown to operators


# --- Audit -------------------------------------------------------------------------------------


def test_the_audit_page_and_its_csv_list_the_week_s_findings(services: Services, operator: TestClient) -> None:
    healthy_tenant(services, "one@example.com")
    stuck = dead_lettered(services, "stuck@example.com")
    lost = identity_user_missing(services, "lost@example.com")

    page = operator.get("/ops/audit").text
    download = operator.get("/ops/audit.csv")

    assert 'href="/ops/audit.csv?since=7d"' in page
    assert text_of(page).count("Findings 2") == 1  # the totals row
    assert f'<a href="/ops/cases/{stuck}">{stuck}</a>' in page
    assert f'<a href="/ops/cases/{lost}">{lost}</a>' in page
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"].startswith('attachment; filename="provisioning-audit-')
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert download.text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert {(row["transaction_id"], row["finding"], row["runbook_section"]) for row in rows} == {
        (stuck, "provisioning_failed", "4.1"),
        (lost, "identity_user_missing", "4.2"),
    }


def test_a_bad_audit_window_is_a_clear_400(operator: TestClient) -> None:
    response = operator.get("/ops/audit", params={"since": "soon"})

    assert response.status_code == 400
    assert "Bad audit window" in response.text


# --- The runbook does not contradict itself (issue 12) -----------------------------------------


def test_a_4_4_case_page_is_never_green_and_says_which_question_each_section_answers(
    services: Services, operator: TestClient
) -> None:
    transaction_id = healthy_tenant(services, "lost-mail@example.com")
    assert services.database is not None
    with services.database.transaction() as connection:
        connection.execute("DELETE FROM outbox")  # the welcome email's row is lost

    page = operator.get(f"/ops/cases/{transaction_id}").text
    text = text_of(page)

    assert 'id="finding">welcome_email_missing<' in page
    assert "All checks pass" not in page
    assert 'id="verify-result" class="status failed">Verification failed<' in page
    assert "welcome email sent to the owner (RB-001 4.4) fail none was sent" in text
    assert "What is wrong with this purchase, if anything, and what to do next" in text
    assert "Can the owner sign in to a working tenant?" in text
    assert 'id="repair-link"' in page


def test_checks_that_pass_under_an_open_finding_are_not_shown_as_passing(
    services: Services, operator: TestClient
) -> None:
    transaction_id = healthy_tenant(services, "moving@example.com")
    job = services.journal.get(transaction_id)
    assert job is not None
    # A worker has the job again (every store is already complete): diagnose waits for it.
    services.journal.save(job.with_changes(status=JobStatus.RUNNING, updated_at=job.updated_at))
    assert services.runbook.verify(Selector(transaction_id=transaction_id)).passed

    page = operator.get(f"/ops/cases/{transaction_id}").text

    assert 'id="finding">in_progress<' in page
    assert "All checks pass" not in page
    assert "The checks below pass, but the finding above is open: in_progress" in text_of(page)


def test_an_operator_s_case_page_says_it_is_not_a_tenant_and_offers_no_repair(
    services: Services, operator: TestClient
) -> None:
    page = operator.get(f"/ops/cases/{OPERATOR}").text
    plan = operator.get(f"/ops/cases/{OPERATOR}/repair").text
    response = operator.post(
        f"/ops/cases/{OPERATOR}/repair", data={"csrf_token": csrf_token_in(page)}, follow_redirects=False
    )

    assert 'id="finding">not_a_tenant<' in page
    assert 'id="finding-label">an operator account, not a tenant<' in page
    assert f"{OPERATOR} is an operator account, not a tenant" in text_of(page)
    assert 'id="repair-link"' not in page
    assert "None" not in text_of(page)
    assert "Repair now" not in plan
    assert response.headers["location"] == f"/ops/cases/{OPERATOR}?done=not_repairable"
    user = services.identity.get_user(OPERATOR)
    assert user is not None
    assert (user.tenant_id, user.attributes["custom:roles"]) == (None, "operator")
    assert services.trail.entries() == []


def test_without_smtp_the_console_says_mail_is_stored_not_delivered(services: Services, operator: TestClient) -> None:
    transaction_id = healthy_tenant(services, "stored@example.com")

    pages = {url: operator.get(url).text for url in ("/ops", "/ops/jobs", "/ops/mail", f"/ops/cases/{transaction_id}")}
    error_page = operator.get("/ops/audit", params={"since": "soon"}).text

    for url, page in {**pages, "error": error_page}.items():
        assert 'id="smtp-banner"' in page, url
        assert "No SMTP server is configured" in text_of(page), url
    mail = pages["/ops/mail"]
    assert '<th scope="col">Sent</th>' not in mail
    statuses = re.findall(r'<td class="mail-status">([^<]+)</td>', mail)
    assert statuses
    assert set(statuses) == {"stored, not delivered (no SMTP configured)"}
    assert "welcome email stored, not delivered (no SMTP configured)" in text_of(pages[f"/ops/cases/{transaction_id}"])


def test_with_smtp_configured_there_is_no_banner(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "smtp-home", payfast_mode="offline", smtp_url="smtp://127.0.0.1:9")
    services = build(settings)
    try:
        with page_client(services) as client:
            services.identity.create_user(OPERATOR, {"email": OPERATOR, "custom:roles": "operator"}, TEMPORARY)
            services.identity.set_password(OPERATOR, PASSWORD, permanent=True)
            signed_in(client, OPERATOR, PASSWORD)
            page = client.get("/ops/mail").text
    finally:
        services.close()

    assert 'id="smtp-banner"' not in page


def test_a_tenant_written_by_hand_is_found_by_its_id_in_the_case_and_the_job_search(
    services: Services, operator: TestClient
) -> None:
    hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")

    case_page = operator.get("/ops/cases", params={"q": "ten_NEWID"}).text
    jobs_page = operator.get("/ops/jobs", params={"q": "ten_NEWID"}).text

    assert "<h1>Case TXN-123456</h1>" in case_page
    assert "identity user exists pass hand@example.com" in text_of(case_page)
    assert 'id="finding">welcome_email_missing<' in case_page  # written by hand: never welcomed
    assert listed_transactions(jobs_page) == ["TXN-123456"]


class RefusingApplication:
    """The Site Builder application's webhook, answering 410 until told to take events."""

    def __init__(self) -> None:
        self.refuse = True
        self.received: list[str] = []

    def publish(self, event: LifecycleEvent) -> None:
        if self.refuse:
            raise PermanentError("webhook to app.example: answered 410")
        self.received.append(event.event_id)


def test_the_console_lists_an_undelivered_event_and_delivers_it_again(
    services: Services, browser: TestClient, tmp_path: Path
) -> None:
    application = RefusingApplication()
    refusing = dataclasses.replace(services, events=application)
    transaction_id = pay(refusing, "lifecycle-console@example.com")
    work(refusing)
    refusing.notices.deliver_due()  # the tenant's tenant.activated: refused for good
    with page_client(refusing) as client:
        attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
        refusing.identity.create_user(OPERATOR, attributes, TEMPORARY)
        refusing.identity.set_password(OPERATOR, PASSWORD, permanent=True)
        signed_in(client, OPERATOR, PASSWORD)
        [dead] = refusing.lifecycle.notices(NoticeStatus.DEAD)

        listed = client.get("/ops/notices")
        application.refuse = False
        posted = client.post(
            f"/ops/notices/{dead.notice_id}/redeliver",
            data={"csrf_token": csrf_token_in(listed.text)},
            follow_redirects=False,
        )
        after = client.get(posted.headers["location"])
        case = client.get(f"/ops/cases/{transaction_id}")

    assert listed.status_code == 200
    assert dead.notice_id in listed.text
    assert "tenant.activated" in listed.text
    assert "answered 410" in listed.text
    assert (posted.status_code, posted.headers["location"]) == (303, "/ops/notices?done=notice_delivered")
    assert "Delivered." in after.text
    assert 'id="dead-empty"' in after.text
    assert application.received == [dead.notice_id]
    assert 'id="history"' in case.text
    assert "provisioning &rarr; active" in case.text


def test_the_dashboard_shows_tenants_by_state_and_the_weeks_churn(operator: TestClient, services: Services) -> None:
    healthy_tenant(services, "state-one@example.com")
    healthy_tenant(services, "state-two@example.com")

    page = operator.get("/ops").text

    assert re.search(r'id="tile-tenants-active"><span class="value">2</span> active', page)
    assert re.search(r'id="tile-tenants-suspended"><span class="value">0</span> suspended', page)
    assert re.search(r'id="tile-churn"><span class="value">0</span> tenants cancelled', page)
