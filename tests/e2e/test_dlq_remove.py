"""Removing stale dead-letter messages as an operator does it, through real processes: `tenancy dlq
remove` (by id, and --healed with --dry-run), and the console's Remove button on `tenancy serve`
(a CSRF form post, offered and honoured only for a message whose purchase is healthy)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.model import JobStatus

from helpers import journal_job, make_settings
from servers import RunningServer, cli_env, plain_http_server, tenancy

HEALED = "TXN-DLQ-HEALED"
BROKEN = "TXN-DLQ-BROKEN"
STALE_ERROR = "stalled: its run stopped 5 times without a word (after 5 attempts)"
BROKEN_ERROR = "transient: SMTP timeout (after 5 attempts)"
OPERATOR = "ops-dlq@example.com"
PASSWORD = "Operator-Passw0rd!"


@dataclass(frozen=True)
class Parked:
    stale: str  # the message id of the healed purchase's stale copy
    broken: str  # the message id of the purchase still broken


def seed(services: Services) -> Parked:
    """A purchase provisioned fine whose stale copy sits in the DLQ (the sweep parked it while a
    slow run was still going), beside a purchase dead-lettered for real."""
    services.provision_now(HEALED, "healed@example.com", "starter")
    services.queue.send_dead_letter(HEALED, STALE_ERROR)
    job = journal_job(services, BROKEN, "broken@example.com", "starter")
    services.journal.save(job.with_changes(status=JobStatus.DEAD_LETTERED, attempts=5, last_error=BROKEN_ERROR))
    services.queue.send_dead_letter(BROKEN, BROKEN_ERROR)
    ids = {message.transaction_id: message.message_id for message in services.queue.messages(dead_lettered=True)}
    return Parked(stale=ids[HEALED], broken=ids[BROKEN])


def seeded_home(home: Path) -> Parked:
    services = build(make_settings(home))
    try:
        return seed(services)
    finally:
        services.close()


def dlq_ids(env: dict[str, str]) -> list[str]:
    listed = tenancy(env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return [row["id"] for row in json.loads(listed.stdout)]


def dlq_alert(env: dict[str, str]) -> dict[str, object]:
    checked = tenancy(env, "alerts", "check", "--json", "--no-notify")
    alerts: list[dict[str, object]] = json.loads(checked.stdout)["alerts"]
    return next(alert for alert in alerts if alert["rule"] == "dlq_not_empty")


# --- The CLI -----------------------------------------------------------------------------------


def test_remove_healed_previews_then_removes_only_the_stale_copy(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    parked = seeded_home(tmp_path)

    preview = tenancy(env, "dlq", "remove", "--healed", "--dry-run", "--json")

    assert preview.returncode == 0, preview.stderr
    document = json.loads(preview.stdout)
    assert document["dry_run"] is True
    assert [(row["id"], row["transaction_id"], row["healed"]) for row in document["would_remove"]] == [
        (parked.stale, HEALED, True)
    ]
    assert [(row["id"], row["finding"]) for row in document["kept"]] == [(parked.broken, "provisioning_failed")]
    assert document["kept"][0]["next_action"].startswith(f"tenancy repair --transaction-id {BROKEN} --yes")
    assert dlq_ids(env) == [parked.stale, parked.broken]
    assert dlq_alert(env)["value"] == 2

    removed = tenancy(env, "dlq", "remove", "--healed", "--operator", "alice")

    assert removed.returncode == 0, removed.stderr
    lines = removed.stdout.splitlines()
    assert lines[0].startswith(f"removed {parked.stale} ({HEALED}): the purchase is healthy: Tenant ten_")
    assert lines[1].startswith(f"kept {parked.broken} ({BROKEN}): the purchase is provisioning_failed: ")
    assert lines[-1] == "removed 1 message, kept 1 message"
    assert dlq_ids(env) == [parked.broken]
    assert dlq_alert(env)["value"] == 1  # the broken purchase still fires it
    services = build(make_settings(tmp_path))
    try:
        [entry] = services.trail.entries(transaction_id=HEALED)
    finally:
        services.close()
    assert (entry.operator, entry.outcome, entry.finding) == ("alice", "removed", "healthy")


def test_remove_by_id_says_what_the_purchase_still_needs_and_refuses_an_unknown_id(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    parked = seeded_home(tmp_path)

    removed = tenancy(env, "dlq", "remove", parked.broken)
    unknown = tenancy(env, "dlq", "remove", parked.broken)

    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith(f"removed {parked.broken} ({BROKEN}): the purchase is provisioning_failed")
    assert f"the purchase still needs work: tenancy repair --transaction-id {BROKEN} --yes" in removed.stdout
    assert dlq_ids(env) == [parked.stale]
    assert unknown.returncode == 1
    assert unknown.stderr == f"error: no dead-lettered message {parked.broken} (see `tenancy dlq list`)\n"
    assert unknown.stdout == ""


def test_remove_needs_an_id_or_healed_and_dry_run_only_with_healed(tmp_path: Path) -> None:
    env = cli_env(tmp_path)

    for arguments, message in (
        ((), "error: give a message id or --healed\n"),
        (("1", "--healed"), "error: give a message id or --healed\n"),
        (("1", "--dry-run"), "error: --dry-run goes with --healed (`dlq show ID` tells what removing one message "
                             "would leave)\n"),
    ):  # fmt: skip
        refused = tenancy(env, "dlq", "remove", *arguments)

        assert refused.returncode == 2, arguments
        assert refused.stderr == message
        assert "Traceback" not in refused.stderr


# --- The console, on `tenancy serve` -------------------------------------------------------------


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Plain http (cookies without Secure, so httpx sends them back), no workers."""
    with plain_http_server(tmp_path_factory.mktemp("dlq-console")) as running:
        yield running


def csrf_token_in(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_console_removes_a_stale_message_only_while_its_purchase_is_healthy(console_server: RunningServer) -> None:
    services = console_server.services()
    try:
        parked = seed(services)
        attributes = {"email": OPERATOR, "email_verified": "true", "custom:roles": "operator"}
        services.identity.create_user(OPERATOR, attributes, "Temporary-Passw0rd!")
        services.identity.set_password(OPERATOR, PASSWORD, permanent=True)
    finally:
        services.close()
    base = console_server.base_url
    with httpx.Client(base_url=base, headers={"Origin": base}) as browser:
        login = csrf_token_in(browser.get("/auth/login").text)
        signed_in = browser.post(
            "/auth/login/form", data={"csrf_token": login, "email": OPERATOR, "password": PASSWORD}
        )
        assert signed_in.status_code == 303, signed_in.text

        page = browser.get("/ops/dlq").text
        token = csrf_token_in(page)
        # The button is offered for the healed purchase's copy only.
        assert f'action="/ops/dlq/{parked.stale}/remove"' in page
        assert f'action="/ops/dlq/{parked.broken}/remove"' not in page
        assert 'id="remove-healed"' in page
        assert "healed (healthy)" in text_of(page)

        forged = browser.post(f"/ops/dlq/{parked.stale}/remove", data={}, follow_redirects=False)
        crafted = browser.post(f"/ops/dlq/{parked.broken}/remove", data={"csrf_token": token}, follow_redirects=False)
        removed = browser.post(f"/ops/dlq/{parked.stale}/remove", data={"csrf_token": token}, follow_redirects=False)
        again = browser.post(f"/ops/dlq/{parked.stale}/remove", data={"csrf_token": token}, follow_redirects=False)

        assert forged.status_code == 403
        assert crafted.headers["location"] == "/ops/dlq?done=not_healed"
        assert "Not removed: that message's purchase is not healthy" in text_of(
            browser.get(crafted.headers["location"]).text
        )
        assert removed.headers["location"] == "/ops/dlq?done=removed"
        after = browser.get(removed.headers["location"]).text
        assert "The message is removed from the dead-letter queue; its purchase stays healthy." in text_of(after)
        assert after.count('class="dlq-row"') == 1
        assert again.headers["location"] == "/ops/dlq?done=not_removed"

        audit = browser.get("/ops/audit").text
        download = browser.get("/ops/audit.csv").text

    services = console_server.services()
    try:
        assert [message.message_id for message in services.queue.messages(dead_lettered=True)] == [parked.broken]
        [entry] = services.trail.entries(transaction_id=HEALED)
        assert (entry.operator, entry.outcome) == (OPERATOR, "removed")
    finally:
        services.close()
    # The week's audit reports both dead-letters: the open one, and the healed one whose copy went.
    assert "Failed attempts, dead-letters and repairs" in audit
    rows = {row["transaction_id"]: row for row in csv.DictReader(io.StringIO(download))}
    assert (rows[BROKEN]["outcome"], rows[BROKEN]["failed_attempts"], rows[BROKEN]["dead_lettered"]) == (
        "open",
        "5",
        "yes",
    )
    assert (rows[HEALED]["outcome"], rows[HEALED]["finding"], rows[HEALED]["dead_lettered"]) == (
        "healed",
        "healthy",
        "yes",
    )
