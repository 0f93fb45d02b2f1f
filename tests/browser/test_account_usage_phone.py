"""The account page's Usage section on a phone (390x844): a bar per limit with its numbers, a
limit nearly used up and one reached, said in words beside the bar's colour, fit the width (`snap`
fails the test on any element past the right edge outside a scroll box, and on any axe violation)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tenancy.domain.ids import tenant_id_for
from tenancy.domain.usage import Metric, UsageChange

from conftest import PHONE, Snapshots, buy, sign_in_first_time
from servers import MailCatcher, RunningServer

OWNER = "usage.on.a.phone@example.com"


def record_usage(server: RunningServer, email: str, *changes: UsageChange) -> None:
    """Records usage as the Site Builder application would, through the server's own stores."""
    services = server.services()
    try:
        [job] = services.journal.find(email=email)
        for change in changes:
            assert services.usage.record(tenant_id_for(job.transaction_id), change).applied
    finally:
        services.close()


def test_the_usage_bars_and_their_states_fit_a_phone(
    phone: Page, web_server: RunningServer, smtp_server: tuple[MailCatcher, int], snap: Snapshots
) -> None:
    base = web_server.base_url
    temporary = buy(web_server, smtp_server[0], OWNER, plan="starter")  # 1 site, 20 generations, 100 MB; bought once
    record_usage(
        web_server,
        OWNER,
        UsageChange(Metric.SITES, 1, "site-1", absolute=True),
        UsageChange(Metric.GENERATIONS, 17, "generations-1"),
        UsageChange(Metric.STORAGE_MB, 12, "storage-1", absolute=True),
    )
    sign_in_first_time(phone, base, OWNER, temporary, "Phone-Usage-7!")

    expect(phone).to_have_url(f"{base}/account")
    expect(phone.locator("#usage-sites-numbers")).to_have_text("1 of 1 (100%)")
    expect(phone.locator("#usage-sites-state")).to_contain_text("Limit reached: new sites are refused.")
    expect(phone.locator("#usage-sites-state").get_by_role("link")).to_have_attribute("href", re.compile("^mailto:"))
    expect(phone.locator("#usage-generations-numbers")).to_have_text("17 of 20 (85%)")
    expect(phone.locator("#usage-generations-state")).to_contain_text("Nearly used up: 3 left until ")
    expect(phone.locator("#usage-generations-resets")).to_have_text(re.compile(r"^Resets on \d{4}-\d{2}-01\.$"))
    expect(phone.locator("#usage-storage-numbers")).to_have_text("12 of 100 MB (12%)")
    expect(phone.locator("#usage-storage-state")).to_have_count(0)
    expect(phone.get_by_role("meter", name="Sites 1 of 1 (100%)")).to_be_visible()
    # The bar takes the section's width: on a phone, all of it less the page's margins.
    box = phone.locator("#meter-generations").bounding_box()
    assert box is not None
    assert box["width"] > 300
    phone.locator("#usage").scroll_into_view_if_needed()
    snap(phone, "account-usage")
    assert phone.viewport_size == PHONE
