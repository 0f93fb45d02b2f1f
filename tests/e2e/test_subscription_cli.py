"""`tenancy subscription show|change-plan|cancel` as an operator runs them, against an embedded home
whose PayFast is the offline simulator: the output, the exit codes, and what each run changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tenancy.billing.changes import CANCEL_FINDING, PLAN_CHANGE_FINDING
from tenancy.billing.emails import CANCELLATION_SUBJECT
from tenancy.bootstrap import build
from tenancy.config import PayfastMode
from tenancy.domain.model import RepairRecord

from helpers import make_settings
from purchases import SUBSCRIBED_EMAIL as EMAIL
from purchases import SUBSCRIBED_TENANT_ID as TENANT_ID
from purchases import SUBSCRIBED_TRANSACTION_ID as TRANSACTION_ID
from purchases import subscribe_offline as subscribe
from servers import cli_env, tenancy


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, TENANCY_PAYFAST_MODE="offline")


@pytest.fixture
def token(tmp_path: Path) -> str:
    return subscribe(tmp_path)


def shown(env: dict[str, str], selector: str = EMAIL) -> dict[str, object]:
    result = tenancy(env, "subscription", "show", selector, "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def payfast_amount(home: Path, token: str) -> int:
    services = build(make_settings(home, payfast_mode=PayfastMode.OFFLINE))
    try:
        return services.subscription_api.fetch(token).amount_cents
    finally:
        services.close()


def assert_one_line_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert result.stderr.startswith("error: ")
    assert words in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_show_prints_the_subscription_as_a_table_and_as_json(env: dict[str, str], token: str) -> None:
    table = tenancy(env, "subscription", "show", TRANSACTION_ID)
    by_tenant = shown(env, TENANT_ID)
    by_email = shown(env, EMAIL)

    assert table.returncode == 0, table.stderr
    for words in ("professional", token, "R299.00", "2027-01-06", "first_charge", "monthly"):
        assert words in table.stdout
    assert by_tenant == by_email
    assert {key: by_email[key] for key in (
        "tenant_id", "tenant_status", "status", "plan", "pending_plan", "token", "frequency", "recurring_amount",
        "paid_through", "next_billing_date",
    )} == {
        "tenant_id": TENANT_ID, "tenant_status": "active", "status": "active", "plan": "professional",
        "pending_plan": None, "token": token, "frequency": "monthly", "recurring_amount": "299.00",
        "paid_through": "2027-01-06", "next_billing_date": "2027-01-06",
    }  # fmt: skip
    history = by_email["history"]
    assert isinstance(history, list)
    assert [(entry["kind"], entry["amount"]) for entry in history] == [("first_charge", "299.00")]


def test_a_dry_run_changes_nothing_and_yes_upgrades(env: dict[str, str], token: str, tmp_path: Path) -> None:
    before = shown(env)

    dry_run = tenancy(env, "subscription", "change-plan", EMAIL, "enterprise", "--dry-run")

    assert dry_run.returncode == 0, dry_run.stderr
    assert "R999.00" in dry_run.stdout
    assert "nothing changed" in dry_run.stdout
    assert shown(env) == before
    assert payfast_amount(tmp_path, token) == 29900

    upgraded = tenancy(env, "subscription", "change-plan", EMAIL, "enterprise", "--yes", "--operator", "bob", "--json")

    assert upgraded.returncode == 0, upgraded.stderr
    result = json.loads(upgraded.stdout)
    assert (result["kind"], result["outcome"], result["dry_run"]) == ("upgrade", "upgraded", False)
    after = shown(env)
    assert (after["plan"], after["recurring_amount"]) == ("enterprise", "999.00")
    assert payfast_amount(tmp_path, token) == 99900
    trail = trail_entries(tmp_path)
    assert [(entry.finding, entry.operator) for entry in trail] == [(PLAN_CHANGE_FINDING, "bob")]


def test_a_downgrade_is_shown_as_pending(env: dict[str, str], token: str) -> None:
    downgraded = tenancy(env, "subscription", "change-plan", TENANT_ID, "starter", "--yes")

    assert downgraded.returncode == 0, downgraded.stderr
    assert "downgrade_scheduled" in downgraded.stdout
    after = shown(env)
    assert (after["plan"], after["pending_plan"], after["recurring_amount"]) == ("professional", "starter", "99.00")


def test_a_change_without_yes_or_a_terminal_is_refused(env: dict[str, str], token: str) -> None:
    before = shown(env)

    refused = subprocess.run(
        [sys.executable, "-m", "tenancy", "subscription", "cancel", EMAIL],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert shown(env) == before


def test_cancel_leaves_the_tenant_cancelling_and_emails_the_owner(
    env: dict[str, str], token: str, tmp_path: Path
) -> None:
    cancelled = tenancy(env, "subscription", "cancel", EMAIL, "--yes", "--operator", "carol")

    assert cancelled.returncode == 0, cancelled.stderr
    assert "outcome: cancelled" in cancelled.stdout
    after = shown(env)
    assert (after["status"], after["tenant_status"], after["next_billing_date"]) == ("cancelling", "cancelling", None)
    services = build(make_settings(tmp_path, payfast_mode=PayfastMode.OFFLINE))
    try:
        assert services.subscription_api.fetch(token).status_text == "CANCELLED"
        subjects = [message.subject for message in services.mailer.outbox(EMAIL)]
        entries = services.trail.entries(tenant_id=TENANT_ID)
    finally:
        services.close()
    assert subjects.count(CANCELLATION_SUBJECT) == 1
    assert [(entry.finding, entry.operator) for entry in entries] == [(CANCEL_FINDING, "carol")]

    again = tenancy(env, "subscription", "cancel", EMAIL, "--yes")

    assert_one_line_error(again, "cancelling, not active")


def test_errors_are_one_line_with_a_non_zero_exit(env: dict[str, str], token: str) -> None:
    assert tenancy(env, "provision", "--transaction-id", "TXN-ONCE1", "--email", "once@example.com",
                   "--plan", "starter").returncode == 0  # fmt: skip

    assert_one_line_error(tenancy(env, "subscription", "show", "nobody@example.com"), "no tenant found")
    assert_one_line_error(tenancy(env, "subscription", "show", "ten_unknown"), "no tenant ten_unknown")
    assert_one_line_error(tenancy(env, "subscription", "show", "once@example.com"), "has no subscription")
    assert_one_line_error(
        tenancy(env, "subscription", "change-plan", EMAIL, "platinum", "--yes"), "unknown plan 'platinum'"
    )
    assert_one_line_error(tenancy(env, "subscription", "change-plan", EMAIL, "professional", "--dry-run"), "already")
    assert shown(env)["plan"] == "professional"


def trail_entries(home: Path) -> list[RepairRecord]:
    services = build(make_settings(home, payfast_mode=PayfastMode.OFFLINE))
    try:
        return list(services.trail.entries(tenant_id=TENANT_ID))
    finally:
        services.close()
