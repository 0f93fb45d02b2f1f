"""`tenancy service-keys create|list|revoke` and `tenancy usage show|set` as an operator runs them,
against an embedded home with one professional subscriber bought through the intake and the
worker: output, exit codes, what is stored (a key only as its keyed hash) and what the repair
trail keeps of a correction."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, build
from tenancy.config import PayfastMode
from tenancy.domain.ids import tenant_id_for
from tenancy.errors import InvalidTokenError

from helpers import make_settings
from purchases import SUBSCRIBED_EMAIL as EMAIL
from purchases import SUBSCRIBED_TENANT_ID as TENANT_ID
from purchases import subscribe_offline
from servers import cli_env, tenancy


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("usage-cli-home")
    subscribe_offline(home)
    return home


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    return cli_env(home, TENANCY_PAYFAST_MODE="offline")


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    """The home's stores, as the CLI opens them."""
    opened = build(make_settings(home, payfast_mode=PayfastMode.OFFLINE))
    yield opened
    opened.close()


def shown(env: dict[str, str], selector: str = EMAIL) -> dict[str, Any]:
    result = tenancy(env, "usage", "show", selector, "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_a_key_is_printed_once_and_only_its_keyed_hash_is_kept(
    env: dict[str, str], home: Path, services: Services
) -> None:
    made = tenancy(env, "service-keys", "create", "site-builder")
    listed = tenancy(env, "service-keys", "list")
    listed_json = tenancy(env, "service-keys", "list", "--json")

    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("tnc_site-builder.")
    assert made.stdout == key + "\n"  # the key alone on stdout, for a script to capture
    assert "shown only this once" in made.stderr
    stored = services.service_key_store.get("site-builder")
    assert stored is not None
    assert services.service_keys.authenticate(key).name == "site-builder"
    assert listed.returncode == 0, listed.stderr
    assert listed_json.returncode == 0, listed_json.stderr
    assert re.search(r"^site-builder  created \S+  active$", listed.stdout, re.MULTILINE), listed.stdout
    [entry] = [entry for entry in json.loads(listed_json.stdout) if entry["name"] == "site-builder"]
    assert set(entry) == {"name", "created_at", "revoked_at"}
    assert entry["revoked_at"] is None
    secret = key.partition(".")[2]
    for output in (listed.stdout, listed_json.stdout, made.stderr):
        assert secret not in output
        assert stored.key_hash not in output
    # Not in the database, not in any log: nowhere under the home.
    for path in home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_taken_or_malformed_name_is_refused_with_a_clear_message(env: dict[str, str]) -> None:
    first = tenancy(env, "service-keys", "create", "analytics")
    taken = tenancy(env, "service-keys", "create", "analytics")
    malformed = tenancy(env, "service-keys", "create", "Bad_Name")

    assert first.returncode == 0, first.stderr
    assert taken.returncode == 1
    assert "a key named analytics exists" in taken.stderr
    assert taken.stdout == ""  # no second key printed
    assert malformed.returncode == 2
    assert "lower-case letters, digits and dashes" in malformed.stderr
    assert "Traceback" not in taken.stderr + malformed.stderr


def test_a_revoked_key_stops_working_and_revoking_again_or_an_unknown_name_exits_1(
    env: dict[str, str], services: Services
) -> None:
    key = tenancy(env, "service-keys", "create", "old-app").stdout.strip()

    revoked = tenancy(env, "service-keys", "revoke", "old-app")
    again = tenancy(env, "service-keys", "revoke", "old-app")
    unknown = tenancy(env, "service-keys", "revoke", "nobody")
    listed = json.loads(tenancy(env, "service-keys", "list", "--json").stdout)

    assert revoked.returncode == 0, revoked.stderr
    assert "revoked old-app" in revoked.stdout
    assert again.returncode == 1
    assert "revoked already" in again.stderr
    assert unknown.returncode == 1
    assert "no service key named nobody" in unknown.stderr
    [entry] = [entry for entry in listed if entry["name"] == "old-app"]
    assert entry["revoked_at"] is not None
    with pytest.raises(InvalidTokenError):
        services.service_keys.authenticate(key)


def test_usage_show_gives_the_plan_period_and_each_metric_against_its_limit(env: dict[str, str]) -> None:
    human = tenancy(env, "usage", "show", EMAIL)
    document = shown(env, TENANT_ID)

    assert human.returncode == 0, human.stderr
    # The subscription's paid period: from its billing date to paid-through.
    assert f"{TENANT_ID}  professional  active  period 2026-12-06 to 2027-01-06" in human.stdout
    assert "generations  0 of 100 generations" in human.stdout
    assert "storage_mb   0 of 500 MB" in human.stdout
    assert (document["tenant_id"], document["plan"], document["status"], document["active"]) == (
        TENANT_ID,
        "professional",
        "active",
        True,
    )
    assert document["period"] == {"start": "2026-12-06", "end": "2027-01-06"}
    assert document["metrics"]["generations"] == {"used": 0, "limit": 100, "remaining": 100}
    assert document["metrics"]["storage_mb"] == {"used": 0, "limit": 500, "remaining": 500}
    assert document["metrics"]["sites"]["limit"] == 5
    assert document["over_limit"] == []


def test_a_correction_needs_a_reason_and_is_kept_in_the_repair_trail(env: dict[str, str], services: Services) -> None:
    before = shown(env)["metrics"]["sites"]["used"]
    no_reason = tenancy(env, "usage", "set", EMAIL, "sites", "4", "--yes")
    assert no_reason.returncode == 2
    assert "--reason" in no_reason.stderr
    assert shown(env)["metrics"]["sites"]["used"] == before

    corrected = tenancy(
        env,
        "usage",
        "set",
        EMAIL,
        "sites",
        "4",
        "--reason",
        "the app missed 4 sites",
        "--yes",
        "--operator",
        "alice",
        "--json",
    )

    assert corrected.returncode == 0, corrected.stderr
    assert json.loads(corrected.stdout) == {"tenant_id": TENANT_ID, "metric": "sites", "before": before, "after": 4}
    assert shown(env)["metrics"]["sites"] == {"used": 4, "limit": 5, "remaining": 1}
    assert services.usage.entitlements(TENANT_ID).usage.sites_count == 4
    [entry] = [entry for entry in services.trail.entries(tenant_id=TENANT_ID) if entry.finding == "usage_correction"]
    assert (entry.operator, entry.outcome) == ("alice", "corrected")
    assert entry.actions == (f"set sites from {before} to 4: the app missed 4 sites",)
    assert (entry.before, entry.after) == ({"sites_count": before}, {"sites_count": 4})


def test_a_correction_above_the_limit_is_kept_and_shown_over_the_limit(env: dict[str, str]) -> None:
    corrected = tenancy(env, "usage", "set", TENANT_ID, "storage_mb", "640", "--reason", "migrated files", "--yes")
    human = tenancy(env, "usage", "show", EMAIL)

    assert corrected.returncode == 0, corrected.stderr
    assert f"{TENANT_ID}: storage_mb set from 0 to 640 (kept in the repair trail)" in corrected.stdout
    assert "storage_mb   640 of 500 MB  OVER THE LIMIT" in human.stdout
    document = shown(env)
    assert document["metrics"]["storage_mb"] == {"used": 640, "limit": 500, "remaining": 0}
    assert document["over_limit"] == ["storage_mb"]


def test_an_unknown_metric_exits_2_and_an_unknown_tenant_exits_1(env: dict[str, str]) -> None:
    unknown_metric = tenancy(env, "usage", "set", EMAIL, "pages", "3", "--reason", "typo", "--yes")
    unknown_tenant = tenancy(env, "usage", "set", "nobody@example.com", "sites", "1", "--reason", "x", "--yes")
    unknown_id = tenancy(env, "usage", "show", tenant_id_for("TXN-NEVERBOUGHT"))

    assert unknown_metric.returncode == 2
    assert "unknown metric 'pages' (known: generations, sites, storage_mb)" in unknown_metric.stderr
    assert unknown_tenant.returncode == 1
    assert "no tenant found for email nobody@example.com" in unknown_tenant.stderr
    assert unknown_id.returncode == 1
    assert tenant_id_for("TXN-NEVERBOUGHT") in unknown_id.stderr
    assert "Traceback" not in unknown_metric.stderr + unknown_tenant.stderr + unknown_id.stderr
