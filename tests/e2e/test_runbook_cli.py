"""The runbook commands as an operator runs them: diagnose, repair, verify, dlq, with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tenancy.bootstrap import build
from tenancy.config import Settings

from servers import cli_env, tenancy


def break_identity_user(home: Path, email: str) -> None:
    services = build(Settings(home=home))
    try:
        services.identity.delete_user(email)
    finally:
        services.close()


def test_operator_diagnoses_repairs_and_verifies_a_missing_identity_user(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    payload = '{"transactionId":"TXN-424242","email":"user@example.com","plan":"professional"}'
    assert tenancy(env, "provision", "--payload", payload).returncode == 0
    assert tenancy(env, "diagnose", "--email", "user@example.com").returncode == 0
    break_identity_user(tmp_path, "user@example.com")

    diagnosed = tenancy(env, "diagnose", "--email", "user@example.com", "--json")
    dry_run = tenancy(env, "repair", "--email", "user@example.com", "--dry-run", "--json")
    refused = tenancy(env, "repair", "--email", "user@example.com")
    repaired = tenancy(env, "repair", "--transaction-id", "TXN-424242", "--yes", "--operator", "alice", "--json")
    verified = tenancy(env, "verify", "--email", "user@example.com", "--json")
    again = tenancy(env, "repair", "--transaction-id", "TXN-424242", "--yes", "--json")

    assert diagnosed.returncode == 1
    document = json.loads(diagnosed.stdout)
    assert document["finding"] == "identity_user_missing"
    assert document["runbook_section"] == "4.2"
    assert set(document) >= {"finding", "runbook_section", "summary", "evidence", "next_action", "escalate_to"}
    assert dry_run.returncode == 1
    assert json.loads(dry_run.stdout)["outcome"] == "dry_run"
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert repaired.returncode == 0, repaired.stderr
    result = json.loads(repaired.stdout)
    assert (result["outcome"], result["after"]["finding"], result["verify"]["passed"]) == ("repaired", "healthy", True)
    assert verified.returncode == 0
    assert all(check["status"] == "pass" for check in json.loads(verified.stdout)["checks"])
    assert again.returncode == 0
    assert json.loads(again.stdout)["outcome"] == "nothing_to_do"


def test_verify_fails_with_exit_1_and_names_the_failing_checks(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert tenancy(env, "provision", "--transaction-id", "TXN-9", "--email", "v@example.com", "--plan", "starter"
                   ).returncode == 0  # fmt: skip
    break_identity_user(tmp_path, "v@example.com")

    verified = tenancy(env, "verify", "--transaction-id", "TXN-9", "--json")

    assert verified.returncode == 1
    failed = {check["check"] for check in json.loads(verified.stdout)["checks"] if check["status"] == "fail"}
    assert "identity user exists" in failed


def test_selectors_are_checked_with_a_usage_error(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    none = tenancy(env, "diagnose")
    two = tenancy(env, "diagnose", "--email", "a@example.com", "--transaction-id", "TXN-1")

    assert (none.returncode, two.returncode) == (2, 2)
    assert "exactly one of" in two.stderr
    assert "Traceback" not in none.stderr + two.stderr


def test_dlq_list_show_and_redrive(tmp_path: Path) -> None:
    env = cli_env(tmp_path, TENANCY_RETRY_MAX_ATTEMPTS="1", TENANCY_SMTP_URL="smtp://127.0.0.1:9")
    payload = '{"transactionId":"TXN-DLQ1","email":"d@example.com","plan":"starter"}'
    # The mail server is down and one attempt is allowed: the job is parked in the DLQ.
    failed = tenancy(env, "provision", "--payload", payload, "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["status"] == "dead_lettered"

    listed = tenancy(env, "dlq", "list", "--json")
    (row,) = json.loads(listed.stdout)
    shown = tenancy(env, "dlq", "show", row["id"], "--json")
    missing = tenancy(env, "dlq", "show", "999999")
    redriven = tenancy(env, "dlq", "redrive", row["id"], "--json")

    assert row["transaction_id"] == "TXN-DLQ1"
    assert "mail server" in row["last_error"]
    assert json.loads(shown.stdout)["diagnosis"]["finding"] == "welcome_email_missing"
    assert missing.returncode == 1
    assert json.loads(redriven.stdout) == {"redriven": [row["id"]]}
    assert json.loads(tenancy(env, "dlq", "list", "--json").stdout) == []
    assert tenancy(env, "dlq", "redrive").returncode == 2
