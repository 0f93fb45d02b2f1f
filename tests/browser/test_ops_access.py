"""The operations console is for operators: a signed-in tenant admin is refused every /ops page,
and a visitor who is not signed in is sent to sign in."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from conftest import Snapshots, buy, sign_in_first_time
from servers import MailCatcher, RunningServer

CONSOLE_PAGES = ("/ops", "/ops/jobs", "/ops/dlq", "/ops/mail", "/ops/audit", "/ops/audit.csv")


def test_a_tenant_admin_cannot_open_the_operations_console(
    page: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    temporary = buy(web_server, smtp_server[0], "admin-only@example.com")
    sign_in_first_time(page, web_server.base_url, "admin-only@example.com", temporary, "Tenant-Admin-7!")
    expect(page).to_have_url(f"{web_server.base_url}/account")
    expect(page.get_by_role("link", name="Operations")).to_have_count(0)

    for path in CONSOLE_PAGES:
        response = page.goto(f"{web_server.base_url}{path}")
        assert response is not None, path
        assert response.status == 403, path
        expect(page.get_by_role("heading", name="Operators only")).to_be_visible()
    snap(page, "ops-refused")

    refused = page.request.post(f"{web_server.base_url}/ops/dlq/redrive-all", form={}, max_redirects=0)
    assert refused.status == 403


def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in(page: Page, web_server: RunningServer) -> None:
    page.goto(f"{web_server.base_url}/ops")

    expect(page).to_have_url(f"{web_server.base_url}/auth/login?next=/ops")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
