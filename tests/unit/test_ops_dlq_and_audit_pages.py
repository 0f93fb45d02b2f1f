"""The console's DLQ page removing stale messages and its audit page reporting the week's failed
attempts after they healed, through the real app and an operator signed in on the sign-in page."""

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
from tenancy.domain.model import JobStatus
from tenancy.runbook.evidence import Selector

from helpers import BrokenTenantStore, make_settings, pay, work
from page_client import csrf_token_in, page_client, sign_in

OPERATOR = "ops-lead@example.com"
PASSWORD = "Operator-Passw0rd!"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_max_attempts=2))
    yield built
    built.close()


@pytest.fixture
def operator(services: Services) -> Iterator[TestClient]:
    attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
    services.identity.create_user(OPERATOR, attributes, "Temporary-Passw0rd!")
    services.identity.set_password(OPERATOR, PASSWORD, permanent=True)
    with page_client(services) as client:
        assert sign_in(client, OPERATOR, PASSWORD).status_code == 303
        yield client


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def dead_lettered(services: Services) -> str:
    transaction_id = pay(services)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    assert services.journal.get(transaction_id).status is JobStatus.DEAD_LETTERED  # type: ignore[union-attr]
    return transaction_id


def healed_with_a_stale_copy(services: Services) -> tuple[str, str]:
    """Dead-lettered, a second copy parked by the sweep, one copy redriven and provisioned."""
    transaction_id = dead_lettered(services)
    services.queue.send_dead_letter(transaction_id, "stalled: its run stopped 2 times without a word")
    first, stale = [m for m in services.runbook.dead_letters() if m.transaction_id == transaction_id]
    assert services.runbook.redrive(first.message_id, operator="ops")
    work(services)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).healthy
    return transaction_id, stale.message_id


def test_only_a_signed_in_operator_may_remove(services: Services) -> None:
    _, stale = healed_with_a_stale_copy(services)
    owner = "owner@example.com"
    pay(services, owner)
    work(services)
    services.identity.set_password(owner, "Owner-Passw0rd!", permanent=True)
    urls = (f"/ops/dlq/{stale}/remove", "/ops/dlq/remove-healed")
    with page_client(services) as anonymous:
        answers = [anonymous.post(url, data={}, follow_redirects=False) for url in urls]
    with page_client(services) as tenant_admin:
        assert sign_in(tenant_admin, owner, "Owner-Passw0rd!").status_code == 303
        token = csrf_token_in(tenant_admin.get("/account").text)
        refused = [tenant_admin.post(url, data={"csrf_token": token}, follow_redirects=False) for url in urls]

    assert [(answer.status_code, answer.headers["location"].startswith("/auth/login")) for answer in answers] == [
        (303, True),
        (303, True),
    ]
    assert [answer.status_code for answer in refused] == [403, 403]
    assert [message.message_id for message in services.runbook.dead_letters()] == [stale]


def test_the_dlq_page_offers_remove_only_for_a_healed_purchase(services: Services, operator: TestClient) -> None:
    healed, stale = healed_with_a_stale_copy(services)
    broken = dead_lettered(services)
    [broken_message] = [m for m in services.runbook.dead_letters() if m.transaction_id == broken]

    page = operator.get("/ops/dlq").text

    rows = re.findall(r'<tr class="dlq-row">(.*?)</tr>', page, re.DOTALL)
    by_transaction = {
        transaction_id: row for row in rows for transaction_id in (healed, broken) if transaction_id in row
    }
    assert "healed (healthy)" in by_transaction[healed]
    assert f'action="/ops/dlq/{stale}/remove"' in by_transaction[healed]
    assert 'data-confirm="Remove message' in by_transaction[healed]
    assert "provisioning_failed" in by_transaction[broken]
    assert "/remove" not in by_transaction[broken]
    assert f'action="/ops/dlq/{broken_message.message_id}/redrive"' in by_transaction[broken]
    assert "Remove healed (1)" in page


def test_remove_healed_from_the_console_leaves_the_broken_purchase_s_message(
    services: Services, operator: TestClient
) -> None:
    healed, _ = healed_with_a_stale_copy(services)
    broken = dead_lettered(services)
    token = csrf_token_in(operator.get("/ops/dlq").text)

    response = operator.post("/ops/dlq/remove-healed", data={"csrf_token": token}, follow_redirects=False)

    assert response.headers["location"] == "/ops/dlq?done=removed_healed&count=1"
    page = operator.get(response.headers["location"]).text
    assert "Removed 1 message of healed purchases from the dead-letter queue." in text_of(page)
    assert [m.transaction_id for m in services.runbook.dead_letters()] == [broken]
    assert [
        entry.operator for entry in services.trail.entries(transaction_id=healed) if entry.outcome == "removed"
    ] == [OPERATOR]
    assert "Remove healed" not in page


def test_the_audit_page_and_csv_report_failed_attempts_that_healed(services: Services, operator: TestClient) -> None:
    repaired = dead_lettered(services)  # two failed attempts, dead-lettered ...
    services.runbook.repair(Selector(transaction_id=repaired), operator="alice")  # ... then repaired

    page = operator.get("/ops/audit").text
    download = operator.get("/ops/audit.csv").text

    text = text_of(page)
    assert "No failed provisioning attempts" not in text
    assert (
        "No open findings in this window: 2 failed attempts, 1 dead-lettered purchase and 1 repair in this window,"
        " over 1 purchase: 1 healed."
    ) in text
    assert "Failed attempts 2" in text  # the totals row
    [row] = re.findall(r'<tr class="attempt-row">(.*?)</tr>', page, re.DOTALL)
    email = services.journal.get(repaired).email  # type: ignore[union-attr]
    last_error = "transient: ProvisionedThroughputExceededException (after 2 attempts)"
    assert text_of(row) == f"{repaired} {email} 2 yes 1 0 {last_error} healed"
    [csv_row] = list(csv.DictReader(io.StringIO(download)))
    assert (csv_row["transaction_id"], csv_row["finding"], csv_row["outcome"], csv_row["failed_attempts"]) == (
        repaired,
        "healthy",
        "healed",
        "2",
    )
