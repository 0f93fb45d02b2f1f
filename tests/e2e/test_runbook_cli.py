"""The runbook commands as an operator runs them: diagnose, repair, verify, dlq, with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tenancy.bootstrap import build
from tenancy.config import Settings
from tenancy.runbook.evidence import STORED_NOT_DELIVERED

from runbook_cases import hand_written_tenant
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
    assert dry_run.returncode == 0  # it printed its plan: a dry run that could plan succeeded
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


def test_a_dry_run_exits_0_when_it_planned_1_when_it_cannot_and_help_says_so(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert tenancy(env, "provision", "--transaction-id", "TXN-DRY", "--email", "dry@example.com", "--plan", "starter"
                   ).returncode == 0  # fmt: skip

    healthy = tenancy(env, "repair", "--transaction-id", "TXN-DRY", "--dry-run")
    break_identity_user(tmp_path, "dry@example.com")
    planned = tenancy(env, "repair", "--transaction-id", "TXN-DRY", "--dry-run")
    cannot = tenancy(env, "repair", "--email", "nobody@example.com", "--dry-run", "--json")
    cannot_said = tenancy(env, "repair", "--email", "nobody@example.com", "--dry-run")
    not_repaired = tenancy(env, "repair", "--email", "nobody@example.com", "--yes")
    usage = tenancy(env, "repair", "--dry-run")
    helped = tenancy(env, "repair", "--help")

    assert healthy.returncode == 0, healthy.stdout  # nothing to do is not a failure to plan
    assert "outcome: dry_run" in healthy.stdout
    assert "plan:" not in healthy.stdout
    assert planned.returncode == 0, planned.stdout
    assert "plan:" in planned.stdout
    assert "create identity user dry@example.com" in planned.stdout
    assert cannot.returncode == 1
    assert json.loads(cannot.stdout)["before"]["finding"] == "payment_not_found"
    # In words, not only an outcome and a table: no plan, why, and where RB-001 says what to do;
    # the same line as the repair itself prints for such a finding.
    no_plan = "no plan: payment_not_found has no automatic repair; see RB-001 3.2 "
    assert cannot_said.returncode == 1
    assert no_plan in cannot_said.stdout
    assert "plan:" not in cannot_said.stdout.replace(no_plan, "")
    assert not_repaired.returncode == 1
    assert no_plan in not_repaired.stdout
    assert usage.returncode == 2
    help_text = " ".join(helped.stdout.split())
    assert "0: healthy after the repair; with --dry-run, the plan was printed" in help_text
    assert "1: not healthy after the repair; with --dry-run, no plan" in help_text
    assert "2: a usage error, or an operator's account" in help_text


def test_an_operator_account_is_not_a_tenant_and_repair_refuses_it(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert tenancy(env, "ops", "add-operator", "ops-lead@example.com").returncode == 0

    diagnosed = tenancy(env, "diagnose", "--email", "ops-lead@example.com")
    as_json = tenancy(env, "diagnose", "--email", "ops-lead@example.com", "--json")
    refused = tenancy(env, "repair", "--email", "ops-lead@example.com", "--yes")
    dry_run = tenancy(env, "repair", "--email", "ops-lead@example.com", "--dry-run")
    listed = tenancy(env, "ops", "list-operators", "--json")
    verified = tenancy(env, "verify", "--email", "ops-lead@example.com", "--json")

    assert diagnosed.returncode == 1
    assert diagnosed.stdout.startswith("not_a_tenant: ops-lead@example.com is an operator account, not a tenant")
    assert "None" not in diagnosed.stdout
    assert "tenant record" not in diagnosed.stdout
    document = json.loads(as_json.stdout)
    assert (document["finding"], document["runbook_section"], document["tenant_id"]) == ("not_a_tenant", None, None)
    for refusal in (refused, dry_run):
        assert refusal.returncode == 2
        assert refusal.stderr == (
            "error: ops-lead@example.com is an operator account, not a tenant: there is nothing to repair\n"
        )
        assert refusal.stdout == ""
    assert [operator["email"] for operator in json.loads(listed.stdout)] == ["ops-lead@example.com"]
    assert verified.returncode == 1
    assert json.loads(verified.stdout)["checks"][0] == {
        "check": "the account is a tenant's", "status": "fail", "detail": "an operator account, not a tenant"
    }  # fmt: skip


def test_verify_and_diagnose_find_a_hand_written_tenant_by_its_id_and_never_print_none(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    services = build(Settings(home=tmp_path))
    try:
        hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")
    finally:
        services.close()

    verified = tenancy(env, "verify", "--tenant-id", "ten_NEWID", "--json")
    by_email = tenancy(env, "verify", "--email", "hand@example.com", "--json")
    text = tenancy(env, "verify", "--tenant-id", "ten_NEWID")
    diagnosed = tenancy(env, "diagnose", "--tenant-id", "ten_NEWID")
    repaired = tenancy(env, "repair", "--tenant-id", "ten_NEWID", "--yes", "--json")
    after = tenancy(env, "verify", "--tenant-id", "ten_NEWID")
    healthy = tenancy(env, "diagnose", "--tenant-id", "ten_NEWID")

    checks = {check["check"]: check for check in json.loads(verified.stdout)["checks"]}
    assert json.loads(verified.stdout) == json.loads(by_email.stdout)
    assert (checks["identity user exists"]["status"], checks["identity user exists"]["detail"]) == (
        "pass", "hand@example.com"
    )  # fmt: skip
    assert checks["users record matches"]["status"] == "pass"
    # It never got the project's welcome email (RB-001 4.4): verify and diagnose both say so.
    assert checks["welcome email sent to the owner (RB-001 4.4)"]["status"] == "fail"
    assert verified.returncode == 1
    assert "welcome_email_missing" in diagnosed.stdout
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert json.loads(repaired.stdout)["after"]["finding"] == "healthy"
    assert after.returncode == 0, after.stdout
    assert "verified" in after.stdout
    assert healthy.returncode == 0, healthy.stdout
    # Stored in the outbox with no SMTP server configured: healthy, but it says so.
    assert STORED_NOT_DELIVERED in " ".join(healthy.stdout.split())
    for output in (text, diagnosed, after, healthy):
        assert "None" not in output.stdout, output.stdout
        assert "Traceback" not in output.stderr
