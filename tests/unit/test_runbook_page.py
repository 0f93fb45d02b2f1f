"""The console's links into the runbook page, with real embedded services and the real app: the
dead-letter alert leads to 4.6, the audit's findings to their sections, and a server whose package
has no runbook says so on the page instead of failing."""

from __future__ import annotations

import dataclasses
import re

import pytest
from fastapi.testclient import TestClient
from test_ops_dlq_and_audit_pages import operator, services, text_of

from tenancy.bootstrap import Services
from tenancy.domain.model import JobStatus
from tenancy.runbook import runbook_doc

from helpers import BrokenTenantStore, pay, work
from page_client import page_client

__all__ = ["operator", "services"]  # the console's fixtures, shared with its DLQ and audit pages


def dead_lettered(services: Services, email: str) -> str:
    """RB-001 4.1: every tenant write fails, so the job ends in the dead-letter queue."""
    transaction_id = pay(services, email)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    assert services.journal.get(transaction_id).status is JobStatus.DEAD_LETTERED  # type: ignore[union-attr]
    return transaction_id


def test_the_dead_letter_alert_links_to_the_dlq_scenario(services: Services, operator: TestClient) -> None:
    dead_lettered(services, "stuck@example.com")

    page = operator.get("/ops").text

    alerts = re.search(r'<ul id="alerts-firing">(.*?)</ul>', page, re.DOTALL)
    assert alerts, "no alert is firing"
    [dlq_alert] = [item for item in alerts.group(1).split("<li>") if "dlq_not_empty" in item]
    assert '<a class="alert-runbook" href="/ops/runbook#4-6">RB-001 4.6</a>' in dlq_alert
    # The same page's findings table links the purchase's finding to its scenario.
    assert '<a href="/ops/runbook#4-1">4.1</a>' in page
    # And the queue's own page says where its messages are dealt with.
    dlq_page = operator.get("/ops/dlq").text
    assert '<p class="hint" id="dlq-runbook">What to do about a message here: <a href="/ops/runbook#4-6">' in dlq_page


def test_the_audit_links_each_finding_to_its_section(services: Services, operator: TestClient) -> None:
    dead_lettered(services, "stuck@example.com")

    page = operator.get("/ops/audit").text

    row = re.search(
        r"<tr>\s*<th scope=\"row\"><a href=\"/ops/jobs\?finding=provisioning_failed\">.*?</tr>", page, re.DOTALL
    )
    assert row, page
    assert '<a href="/ops/runbook#4-1">4.1</a>' in row.group(0)


def test_without_the_runbook_in_the_package_the_page_says_so(
    operator: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As an installation built without docs/runbooks/RB-001.md would find it: no such package file.
    monkeypatch.setattr(runbook_doc, "_PACKAGED_NAME", "RB-001-absent.md")

    page = operator.get("/ops/runbook")
    case = operator.get("/ops/cases/TXN-NOTHING")

    assert page.status_code == 404
    assert "The runbook RB-001 is not available on this server" in text_of(page.text)
    # Links still lead there by number; the case page stands without the titles.
    assert case.status_code == 200
    assert '<span id="scenario">3.2</span></a>' in case.text


def test_the_runbook_page_is_for_operators_only(services: Services) -> None:
    with page_client(services) as anonymous:
        response = anonymous.get("/ops/runbook", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=/ops/runbook"
