"""`tenancy ops add-operator`, run as a real process: the invitation email, the operator's first
sign-in, and one-line refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tenancy.bootstrap import build
from tenancy.domain.model import AuthChallenge

from helpers import make_settings
from servers import cli_env, tenancy

OPERATOR = "ops@example.com"
PASSWORD_LINE = re.compile(r"^Temporary password: (\S+)$", re.MULTILINE)


def _outbox(env: dict[str, str], to: str) -> list[dict[str, Any]]:
    listed = tenancy(env, "mail", "list", "--to", to, "--json")
    assert listed.returncode == 0, listed.stderr
    messages: list[dict[str, Any]] = json.loads(listed.stdout)
    return messages


def test_add_operator_emails_a_temporary_password_that_signs_in(tmp_path: Path) -> None:
    env = cli_env(tmp_path)

    added = tenancy(env, "ops", "add-operator", "Ops@Example.com")

    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"operator {OPERATOR} invited: the temporary password is in the invitation email"
    (email,) = _outbox(env, OPERATOR)
    assert email["subject"] == "Your Tenancy operations console account"
    assert email["tags"]["kind"] == "operator_invite"
    [password] = PASSWORD_LINE.findall(email["text"])
    assert password not in added.stdout + added.stderr
    # The same TENANCY_HOME the CLI used, read in process as the web app would.
    services = build(make_settings(tmp_path))
    try:
        answer = services.accounts.login(OPERATOR, password)
    finally:
        services.close()
    assert isinstance(answer, AuthChallenge)
    assert answer.challenge == "NEW_PASSWORD_REQUIRED"

    again = tenancy(env, "ops", "add-operator", OPERATOR)

    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"operator {OPERATOR} is already an operator"
    assert len(_outbox(env, OPERATOR)) == 1


def test_add_operator_refuses_a_tenant_account_and_a_bad_email_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    payload = '{"transactionId":"TXN-654321","email":"owner@example.com","plan":"starter"}'
    assert tenancy(env, "provision", "--payload", payload).returncode == 0

    for email, message in (
        ("owner@example.com", "owner@example.com is a tenant account; an operator needs an account of its own"),
        ("not-an-email", "is not a valid email address"),
    ):
        refused = tenancy(env, "ops", "add-operator", email)

        assert refused.returncode == 1
        assert message in refused.stderr
        assert "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert [email["subject"] for email in _outbox(env, "owner@example.com")] == ["Welcome to Site Builder"]


def test_operators_are_listed_and_removed_and_a_removed_operator_cannot_sign_in(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert tenancy(env, "ops", "list-operators").stdout.startswith("no operators yet")
    for email in ("b-ops@example.com", "a-ops@example.com"):
        assert tenancy(env, "ops", "add-operator", email).returncode == 0

    listed = tenancy(env, "ops", "list-operators", "--json")
    removed = tenancy(env, "ops", "remove-operator", "B-Ops@Example.com")
    after = tenancy(env, "ops", "list-operators")

    assert [row["email"] for row in json.loads(listed.stdout)] == ["a-ops@example.com", "b-ops@example.com"]
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "operator b-ops@example.com removed; their sessions are ended"
    assert after.stdout.split() == ["a-ops@example.com", "FORCE_CHANGE_PASSWORD"]
    services = build(make_settings(tmp_path))
    try:
        assert services.identity.get_user("b-ops@example.com") is None
    finally:
        services.close()


def test_remove_operator_never_deletes_a_tenant_account_and_says_why(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    payload = '{"transactionId":"TXN-654322","email":"owner@example.com","plan":"starter"}'
    assert tenancy(env, "provision", "--payload", payload).returncode == 0

    tenant_account = tenancy(env, "ops", "remove-operator", "owner@example.com")
    unknown = tenancy(env, "ops", "remove-operator", "nobody@example.com")

    assert tenant_account.returncode == 2
    assert tenant_account.stderr.strip() == "error: owner@example.com is not an operator account; nothing was removed"
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: nobody@example.com has no account"
    assert "Traceback" not in tenant_account.stderr + unknown.stderr
    services = build(make_settings(tmp_path))
    try:
        assert services.identity.get_user("owner@example.com") is not None
    finally:
        services.close()


def test_add_operator_prints_its_own_line_and_nothing_else_while_the_log_file_keeps_the_event(
    tmp_path: Path,
) -> None:
    env = cli_env(tmp_path)

    added = tenancy(env, "ops", "add-operator", OPERATOR)
    verbose = tenancy(env, "--verbose", "ops", "add-operator", "second-ops@example.com")

    assert added.returncode == 0
    assert added.stdout + added.stderr == (
        f"operator {OPERATOR} invited: the temporary password is in the invitation email\n"
    )
    logged = [json.loads(line) for line in (tmp_path / "logs" / "app.log").read_text().splitlines()]
    assert [line["event"] for line in logged if line["event"] == "operator_invited"] == ["operator_invited"] * 2
    # --verbose puts the log lines on stderr as well, as `serve` and `worker` always do.
    assert verbose.returncode == 0, verbose.stderr
    assert [json.loads(line)["event"] for line in verbose.stderr.splitlines()] == ["operator_invited"]
