"""`tenancy diagnose` names the runbook section to follow: its number, its title as the shipped
RB-001 has it, and its page in the console under the public URL, in words and in `--json`."""

from __future__ import annotations

import json
from pathlib import Path

from tenancy.bootstrap import build
from tenancy.config import Settings

from runbook_cases import operator_account
from servers import cli_env, tenancy

PUBLIC_URL = "https://tenancy.example.com"


def provisioned_without_identity_user(home: Path, email: str) -> dict[str, str]:
    """RB-001 4.2: provisioned, then its identity user deleted."""
    env = cli_env(home, TENANCY_PUBLIC_URL=PUBLIC_URL)
    assert tenancy(env, "provision", "--transaction-id", "TXN-4242", "--email", email, "--plan", "starter"
                   ).returncode == 0  # fmt: skip
    services = build(Settings(home=home))
    try:
        services.identity.delete_user(email)
    finally:
        services.close()
    return env


def test_diagnose_prints_the_section_s_number_title_and_link(tmp_path: Path) -> None:
    env = provisioned_without_identity_user(tmp_path, "lost@example.com")

    diagnosed = tenancy(env, "diagnose", "--email", "lost@example.com")

    assert diagnosed.returncode == 1
    lines = diagnosed.stdout.splitlines()
    assert lines[0].startswith("identity_user_missing (RB-001 4.2): ")
    # One unbroken line, whatever the terminal's width: the link is copied or clicked whole.
    expected = f"runbook: RB-001 4.2 Scenario: Cognito User Creation Failed — {PUBLIC_URL}/ops/runbook#4-2"
    assert expected in lines


def test_diagnose_json_puts_the_title_and_link_beside_the_section(tmp_path: Path) -> None:
    env = provisioned_without_identity_user(tmp_path, "lost@example.com")

    diagnosed = tenancy(env, "diagnose", "--email", "lost@example.com", "--json")

    assert diagnosed.returncode == 1
    document = json.loads(diagnosed.stdout)
    assert list(document)[:4] == ["finding", "runbook_section", "runbook_title", "runbook_url"]
    assert (document["runbook_section"], document["runbook_title"], document["runbook_url"]) == (
        "4.2",
        "Scenario: Cognito User Creation Failed",
        f"{PUBLIC_URL}/ops/runbook#4-2",
    )
    assert set(document) >= {"summary", "evidence", "next_action", "escalate_to", "transaction_id", "tenant_id"}


def test_an_operator_account_has_no_section_and_no_link(tmp_path: Path) -> None:
    services = build(Settings(home=tmp_path))
    try:
        operator_account(services, "ops@example.com")
    finally:
        services.close()
    env = cli_env(tmp_path, TENANCY_PUBLIC_URL=PUBLIC_URL)

    words = tenancy(env, "diagnose", "--email", "ops@example.com")
    document = json.loads(tenancy(env, "diagnose", "--email", "ops@example.com", "--json").stdout)

    assert words.stdout.startswith("not_a_tenant: ")
    assert "runbook:" not in words.stdout
    assert (document["runbook_section"], document["runbook_title"], document["runbook_url"]) == (None, None, None)
