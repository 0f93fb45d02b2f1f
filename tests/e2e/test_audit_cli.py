"""`tenancy audit` as an operator runs it, a real process on a seeded home: every format, --fix,
and the exit codes (0 nothing failed, 1 findings, 2 bad options)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

from tenancy.bootstrap import Services, build
from tenancy.domain.model import AuditRun
from tenancy.runbook.evidence import Selector

from helpers import BrokenTenantStore, FlakyTenantStore, make_settings, pay, work
from servers import cli_env, tenancy

HEALTHY = "TXN-AUDIT-OK"
BROKEN = "TXN-AUDIT-BROKEN"
SECOND = "TXN-AUDIT-SECOND"


def with_services(home: Path, action: Callable[[Services], None]) -> None:
    services = build(make_settings(home))
    try:
        action(services)
    finally:
        services.close()


def provision(services: Services, transaction_id: str, email: str) -> None:
    services.provision_now(transaction_id, email, "starter")


def seed_two_healthy(services: Services) -> None:
    provision(services, HEALTHY, "ok@example.com")
    provision(services, BROKEN, "broken@example.com")


def break_identity_user(services: Services) -> None:
    services.identity.delete_user("broken@example.com")


def test_audit_exits_0_for_a_healthy_week_and_1_once_a_purchase_fails(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    with_services(tmp_path, seed_two_healthy)

    healthy = tenancy(env, "audit", "--format", "json")

    assert healthy.returncode == 0, healthy.stderr
    document = json.loads(healthy.stdout)
    assert (document["totals"]["healthy"], document["totals"]["findings"]) == (2, 0)
    assert document["findings"] == document["escalations"] == document["cases"] == []

    with_services(tmp_path, break_identity_user)
    failed = tenancy(env, "audit", "--format", "json", "--since", "24h")

    assert failed.returncode == 1, failed.stderr
    document = json.loads(failed.stdout)
    assert (document["totals"]["healthy"], document["totals"]["findings"]) == (1, 1)
    assert document["findings"] == [
        {
            "finding": "identity_user_missing",
            "runbook_section": "4.2",
            "count": 1,
            "transaction_ids": [BROKEN],
            "emails": ["broken@example.com"],
            "oldest_unresolved_age_seconds": document["cases"][0]["age_seconds"],
        }
    ]
    assert document["escalations"] == []
    # The audit refreshed the findings index the console and /metrics read, and says it ran.
    read: list[object] = []
    with_services(tmp_path, lambda services: read.extend(
        (services.findings_index.count_by_finding(), services.findings_index.last_audit())
    ))  # fmt: skip
    findings, last = read
    assert findings == {"healthy": 1, "identity_user_missing": 1}
    assert isinstance(last, AuditRun)
    assert (last.trigger, last.purchases, last.findings) == ("cli", 2, 1)


def test_csv_markdown_and_table_report_the_same_failure(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    with_services(tmp_path, seed_two_healthy)
    with_services(tmp_path, break_identity_user)

    as_csv = tenancy(env, "audit", "--format", "csv")
    as_markdown = tenancy(env, "audit", "--format", "markdown")
    as_table = tenancy(env, "audit")

    assert [as_csv.returncode, as_markdown.returncode, as_table.returncode] == [1, 1, 1]
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["transaction_id"], row["email"], row["finding"], row["runbook_section"]) == (
        BROKEN,
        "broken@example.com",
        "identity_user_missing",
        "4.2",
    )
    assert "| identity_user_missing | 4.2 | 1 |" in as_markdown.stdout
    assert "| Healthy | 1 |" in as_markdown.stdout
    assert "| Findings | 1 |" in as_markdown.stdout
    assert "identity_user_missing" in as_table.stdout
    assert "Traceback" not in as_table.stderr


def test_fix_repairs_the_missing_identity_user_and_leaves_the_second_purchase_for_review(tmp_path: Path) -> None:
    env = cli_env(tmp_path)

    def seed(services: Services) -> None:
        seed_two_healthy(services)
        break_identity_user(services)
        provision(services, SECOND, "ok@example.com")

    with_services(tmp_path, seed)

    fixed = tenancy(env, "audit", "--fix", "--operator", "alice", "--format", "json")
    again = tenancy(env, "audit", "--format", "json")

    assert fixed.returncode == 1, fixed.stderr  # the second purchase still needs a human
    document = json.loads(fixed.stdout)
    assert document["fixes"] == [
        {
            "transaction_id": BROKEN,
            "before": "identity_user_missing",
            "outcome": "repaired",
            "after": "healthy",
            "error": None,
        }
    ]
    assert document["before"]["totals"]["findings"] == 2
    assert (document["totals"]["healthy"], document["totals"]["findings"]) == (2, 1)
    assert [group["finding"] for group in document["findings"]] == ["needs_review"]
    assert [escalation["condition"] for escalation in document["escalations"]] == ["finance"]
    assert again.returncode == 1
    assert json.loads(again.stdout)["totals"] == document["totals"]
    trail = tenancy(env, "audit", "--format", "markdown")
    assert "needs_review" in trail.stdout


def test_bad_options_are_one_line_errors_with_exit_2(tmp_path: Path) -> None:
    env = cli_env(tmp_path)

    bad_since = tenancy(env, "audit", "--since", "7y")
    bad_format = tenancy(env, "audit", "--format", "xml")

    assert bad_since.returncode == 2
    assert bad_since.stderr == "error: --since must look like 30s, 5m, 1h or 7d, not '7y'\n"
    assert bad_since.stdout == ""
    assert bad_format.returncode == 2
    assert "Traceback" not in bad_format.stderr


def a_day_of_failures_that_healed(home: Path) -> tuple[str, str]:
    """Issue 12's day: one purchase failed 4 times and then provisioned; another failed 5 times, was
    dead-lettered and then repaired. 9 failed attempts, a DLQ entry and a repair, all healed."""
    services = build(make_settings(home, payfast_mode="offline", retry_max_attempts=5))
    try:
        retried = pay(services)
        work(dataclasses.replace(services, tenants=FlakyTenantStore(services.tenants, 4)), rounds=10)
        repaired = pay(services)
        work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)), rounds=10)
        assert services.runbook.repair(Selector(transaction_id=repaired), operator="alice").outcome == "repaired"
    finally:
        services.close()
    return retried, repaired


def test_the_audit_reports_the_week_s_failed_attempts_after_they_healed(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    retried, repaired = a_day_of_failures_that_healed(tmp_path)

    as_json = tenancy(env, "audit", "--format", "json")
    as_csv = tenancy(env, "audit", "--format", "csv")
    as_markdown = tenancy(env, "audit", "--format", "markdown")
    as_table = tenancy(env, "audit")

    assert [as_json.returncode, as_csv.returncode, as_markdown.returncode, as_table.returncode] == [0, 0, 0, 0]
    document = json.loads(as_json.stdout)
    assert {key: document["totals"][key] for key in ("findings", "failed_attempts", "dead_lettered", "repairs")} == {
        "findings": 0,
        "failed_attempts": 9,
        "dead_lettered": 1,
        "repairs": 1,
    }
    assert sorted(
        (row["transaction_id"], row["failed_attempts"], row["outcome"]) for row in document["attempts"]
    ) == sorted([(retried, 4, "healed"), (repaired, 5, "healed")])
    rows = {row["transaction_id"]: row for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert {key: (row["outcome"], row["failed_attempts"], row["repairs"]) for key, row in rows.items()} == {
        retried: ("healed", "4", "0"),
        repaired: ("healed", "5", "1"),
    }
    headline = "9 failed attempts, 1 dead-lettered purchase and 1 repair in this window, over 2 purchases: 2 healed."
    for output in (as_markdown.stdout, " ".join(as_table.stdout.split())):
        assert "No failed provisioning attempts" not in output
        assert headline in output
    assert f"| {repaired} |" in as_markdown.stdout
    assert "Traceback" not in as_table.stderr
