"""`tenancy lifecycle run|history` and `tenancy tenant export|delete` as an operator runs them,
against an embedded home whose PayFast is the offline simulator: output, exit codes, and what each
run changed."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from tenancy.bootstrap import build
from tenancy.config import PayfastMode
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.members import InvitationStatus, Role
from tenancy.domain.model import TenantStatus

from helpers import make_settings
from purchases import SUBSCRIBED_EMAIL as EMAIL
from purchases import SUBSCRIBED_TENANT_ID as TENANT_ID
from purchases import subscribe_offline
from servers import cli_env, tenancy


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    subscribe_offline(tmp_path)
    return cli_env(tmp_path, TENANCY_PAYFAST_MODE="offline")


def stored_status(home: Path) -> TenantStatus:
    services = build(make_settings(home, payfast_mode=PayfastMode.OFFLINE))
    try:
        tenant = services.tenants.get(TENANT_ID)
        assert tenant is not None
        return tenant.status
    finally:
        services.close()


def test_a_dry_run_names_the_due_moves_and_a_run_applies_them(env: dict[str, str], tmp_path: Path) -> None:
    dry = tenancy(env, "lifecycle", "run", "--as-of", "2027-01-20", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"due  {TENANT_ID}  active -> past_due" in dry.stdout
    assert f"due  {TENANT_ID}  past_due -> suspended" in dry.stdout
    assert "(dry run: nothing changed)" in dry.stdout
    assert stored_status(tmp_path) is TenantStatus.ACTIVE

    run = tenancy(env, "lifecycle", "run", "--as-of", "2027-01-20T09:00:00Z")
    history = tenancy(env, "lifecycle", "history", EMAIL, "--json")

    assert run.returncode == 0, run.stderr
    assert "2 moves applied at 2027-01-20T09:00:00Z" in run.stdout
    assert stored_status(tmp_path) is TenantStatus.SUSPENDED
    moves = [(line["from"], line["to"], line["trigger"]) for line in json.loads(history.stdout)["history"]]
    assert moves[-2:] == [("active", "past_due", "time"), ("past_due", "suspended", "time")]


def test_a_rehearsal_in_the_future_is_refused_in_live_mode_and_bad_times_are_named(env: dict[str, str]) -> None:
    live = {
        **env,
        "TENANCY_PAYFAST_MODE": "live",
        "TENANCY_PAYFAST_MERCHANT_ID": "10999999",
        "TENANCY_PAYFAST_MERCHANT_KEY": "ownkey0123456",
        "TENANCY_PAYFAST_PASSPHRASE": "our-own-passphrase",
    }

    refused = tenancy(live, "lifecycle", "run", "--as-of", "2099-01-01")
    malformed = tenancy(env, "lifecycle", "run", "--as-of", "next tuesday")

    assert refused.returncode == 2
    assert "refused in live PayFast mode" in refused.stderr
    assert malformed.returncode == 2
    assert "is not an ISO-8601 time" in malformed.stderr
    assert "Traceback" not in refused.stderr + malformed.stderr


def test_a_rehearsal_ahead_expires_the_invitations_due_by_then(env: dict[str, str], tmp_path: Path) -> None:
    services = build(make_settings(tmp_path, payfast_mode=PayfastMode.OFFLINE))
    try:
        tenant = services.tenants.get(TENANT_ID)
        assert tenant is not None
        invited = services.team.invite(tenant, "bea@example.com", Role.EDITOR, by=EMAIL)
    finally:
        services.close()
    expires = parse_timestamp(invited.invitation.expires_at)

    before = tenancy(env, "lifecycle", "run", "--as-of", format_timestamp(expires - timedelta(hours=1)))
    after = tenancy(env, "lifecycle", "run", "--as-of", format_timestamp(expires + timedelta(hours=1)))

    assert before.returncode == 0, before.stderr
    assert "expired" not in before.stdout
    assert after.returncode == 0, after.stderr
    assert "1 invitation expired: their seats are free again" in after.stdout
    services = build(make_settings(tmp_path, payfast_mode=PayfastMode.OFFLINE))
    try:
        [closed] = services.team.invitations(TENANT_ID)
    finally:
        services.close()
    assert closed.status is InvitationStatus.EXPIRED


def test_an_export_writes_the_tenants_data_for_its_owner_only(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "export.json"

    result = tenancy(env, "tenant", "export", EMAIL, "--out", str(out))

    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["tenant"]["tenant_id"] == TENANT_ID
    assert [person["email"] for person in document["people"]] == [EMAIL]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_deletion_needs_a_reason_and_is_kept_in_the_repair_trail(env: dict[str, str], tmp_path: Path) -> None:
    no_reason = tenancy(env, "tenant", "delete", EMAIL, "--yes")
    assert no_reason.returncode == 2
    assert "--reason" in no_reason.stderr
    assert stored_status(tmp_path) is TenantStatus.ACTIVE

    deleted = tenancy(
        env, "tenant", "delete", TENANT_ID, "--yes", "--reason", "owner's request", "--operator", "alice", "--json"
    )

    assert deleted.returncode == 0, deleted.stderr
    answer = json.loads(deleted.stdout)
    assert (answer["tenant_id"], answer["already_deleted"], answer["people_removed"]) == (TENANT_ID, False, [EMAIL])
    assert answer["tombstone"]["owner_email_hash"].startswith("sha256:")
    assert stored_status(tmp_path) is TenantStatus.DELETED
    services = build(make_settings(tmp_path, payfast_mode=PayfastMode.OFFLINE))
    try:
        [entry] = [entry for entry in services.trail.entries(tenant_id=TENANT_ID) if entry.finding == "tenant_delete"]
        assert (entry.operator, entry.tenant_id, entry.outcome) == ("alice", TENANT_ID, "deleted")
    finally:
        services.close()
