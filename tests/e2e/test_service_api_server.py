"""The service API as the Site Builder application calls it: through the real `tenancy serve` in
sandbox mode (tenants provisioned by signed ITNs, PayFast's validate endpoint and subscription API
played by local stand-ins), with service keys made and revoked by the real CLI.

Auth (no key, malformed, unknown, wrong secret, revoked: 401; any tenant's id with a valid key),
entitlements (limits, usage, what remains, the period), usage records (200, 409 quota exceeded
changing nothing, idempotent replays, 422 for a misused key or `set` on generations, 403 for a
suspended tenant), the last units of a quota raced by 50 parallel requests, and keys never
logged."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.billing import add_months
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import JobStatus
from tenancy.payments.payfast import parameter_string
from tenancy.payments.simulator import build_itn, encode_form, new_subscription_token

from payfast_api_standin import PayfastApiStandIn, running_payfast_api
from purchases import wait_for_job
from servers import (
    PAYFAST_ADDRESS,
    MailCatcher,
    PayfastStandIn,
    RunningServer,
    free_port,
    server_env,
    start_server,
    stop_server,
    tenancy,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# The professional plan's limits (plans.toml).
PROFESSIONAL = {"max_sites": 5, "max_generations_per_month": 100, "max_storage_mb": 500, "custom_domain_allowed": True}


@pytest.fixture(scope="module")
def payfast_api() -> Iterator[PayfastApiStandIn]:
    with running_payfast_api(merchant_id=PAYFAST_SANDBOX_MERCHANT_ID, passphrase=PAYFAST_SANDBOX_PASSPHRASE) as api:
        yield api


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: tuple[MailCatcher, int],
    payfast: PayfastStandIn,
    payfast_api: PayfastApiStandIn,
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("service-api-home")
    env = server_env(
        home, free_port(), smtp_server[1], payfast.server_address[1], TENANCY_PAYFAST_API_URL=payfast_api.url
    )
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


@pytest.fixture(scope="module")
def key(live_server: RunningServer) -> str:
    """The application's key, made once with the CLI (its only appearance is on stdout)."""
    return create_key(live_server, "site-builder")


def create_key(server: RunningServer, name: str) -> str:
    made = tenancy(server.env, "service-keys", "create", name)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def provision(server: RunningServer, validate: PayfastStandIn, **values: Any) -> str:
    """A professional tenant bought by a signed ITN through the server, provisioned by its workers."""
    transaction_id = f"TXN-{uuid.uuid4().hex[:12].upper()}"
    fields = build_itn(
        **{
            "transaction_id": transaction_id,
            "email": f"owner-{transaction_id.lower()}@example.com",
            "plan": "professional",
            "amount": "299.00",
            "merchant_id": PAYFAST_SANDBOX_MERCHANT_ID,
            "passphrase": PAYFAST_SANDBOX_PASSPHRASE,
            **values,
        }
    )
    validate.genuine.add(parameter_string(fields))
    answer = httpx.post(
        f"{server.base_url}/payments/payfast/itn",
        content=encode_form(fields),
        headers={**FORM, "X-Forwarded-For": PAYFAST_ADDRESS},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    wait_for_job(server, transaction_id, JobStatus.SUCCEEDED)
    return tenant_id_for(transaction_id)


@pytest.fixture(scope="module")
def tenant_id(live_server: RunningServer, payfast: PayfastStandIn) -> str:
    """A once-off purchase (no subscription): its usage period is the calendar month."""
    return provision(live_server, payfast)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def entitlements(server: RunningServer, key: str, tenant_id: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/service/tenants/{tenant_id}/entitlements", headers=bearer(key), timeout=30)


def record(server: RunningServer, key: str, tenant_id: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/service/tenants/{tenant_id}/usage", json=body, headers=bearer(key), timeout=30
    )


def generations(amount: int) -> dict[str, Any]:
    return {"metric": "generations", "delta": amount, "idempotency_key": f"gen-{uuid.uuid4().hex}"}


def usage_now(server: RunningServer, key: str, tenant_id: str) -> dict[str, Any]:
    answer = entitlements(server, key, tenant_id)
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()["usage"]
    return shown


def test_requests_without_a_genuine_key_are_refused_401(live_server: RunningServer, key: str, tenant_id: str) -> None:
    url = f"{live_server.base_url}/service/tenants/{tenant_id}/entitlements"
    name, secret = key.removeprefix("tnc_").split(".")
    # The same secret under another name, and a well-formed secret that is not the key's.
    unknown_name = f"tnc_someone-else.{secret}"
    wrong_secret = f"tnc_{name}.{secret[::-1]}"

    answers = [
        httpx.get(url, timeout=30),
        httpx.get(url, headers={"Authorization": "Bearer"}, timeout=30),
        httpx.get(url, headers=bearer("not-a-service-key"), timeout=30),
        httpx.get(url, headers=bearer(f"tnc_{name}"), timeout=30),
        httpx.get(url, headers=bearer(unknown_name), timeout=30),
        httpx.get(url, headers=bearer(wrong_secret), timeout=30),
        httpx.get(url, headers={"Authorization": f"Basic {key}"}, timeout=30),
        httpx.post(
            f"{live_server.base_url}/service/tenants/{tenant_id}/usage",
            json=generations(1),
            headers=bearer(wrong_secret),
            timeout=30,
        ),
    ]

    assert [answer.status_code for answer in answers] == [401] * len(answers)
    # An unknown name and a wrong secret get the same answer: nothing tells which names exist.
    missing, invalid = "Missing service key", "Invalid service key"
    details = [answer.json()["detail"] for answer in answers]
    assert details == [missing, missing, invalid, invalid, invalid, invalid, missing, invalid]
    # Nothing was recorded by the refused POST.
    assert usage_now(live_server, key, tenant_id)["generations_this_month"] == 0


def test_a_key_revoked_with_the_cli_is_refused_on_the_next_request(live_server: RunningServer, tenant_id: str) -> None:
    doomed = create_key(live_server, "retired-app")
    assert entitlements(live_server, doomed, tenant_id).status_code == 200

    revoked = tenancy(live_server.env, "service-keys", "revoke", "retired-app")

    assert revoked.returncode == 0, revoked.stderr
    assert entitlements(live_server, doomed, tenant_id).status_code == 401
    assert record(live_server, doomed, tenant_id, generations(1)).status_code == 401


def test_entitlements_show_the_plan_its_limits_usage_and_the_calendar_month(
    live_server: RunningServer, key: str, tenant_id: str
) -> None:
    answer = entitlements(live_server, key, tenant_id)

    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert (shown["tenant_id"], shown["status"], shown["plan"]) == (tenant_id, "active", "professional")
    assert (shown["active"], shown["reason"]) == (True, None)
    assert shown["limits"] == PROFESSIONAL
    assert set(shown["usage"]) == {"sites_count", "generations_this_month", "storage_used_mb"}
    used = shown["usage"]
    assert shown["remaining"] == {
        "generations": 100 - used["generations_this_month"],
        "sites": 5 - used["sites_count"],
        "storage_mb": 500 - used["storage_used_mb"],
    }
    # A once-off purchase counts by the calendar month (UTC).
    first = datetime.now(UTC).date().replace(day=1)
    assert shown["period"] == {"start": first.isoformat(), "end": add_months(first, 1).isoformat()}


def test_a_service_key_reads_any_tenant_but_an_unknown_id_is_404(
    live_server: RunningServer, payfast: PayfastStandIn, key: str, tenant_id: str
) -> None:
    # A service key is the application's, not a tenant's: every tenant is its business.
    other = provision(live_server, payfast, plan="starter", amount="99.00")

    theirs = entitlements(live_server, key, other)
    unknown = entitlements(live_server, key, tenant_id_for("TXN-NEVERBOUGHT"))
    unknown_usage = record(live_server, key, tenant_id_for("TXN-NEVERBOUGHT"), generations(1))

    assert theirs.status_code == 200, theirs.text
    assert (theirs.json()["tenant_id"], theirs.json()["plan"]) == (other, "starter")
    assert theirs.json()["limits"]["max_generations_per_month"] == 20
    assert (unknown.status_code, unknown_usage.status_code) == (404, 404)


def test_usage_is_recorded_up_to_the_limit_and_past_it_is_409_changing_nothing(
    live_server: RunningServer, payfast: PayfastStandIn, key: str
) -> None:
    tenant = provision(live_server, payfast)

    first = record(live_server, key, tenant, generations(95))
    before = entitlements(live_server, key, tenant).json()
    refused = record(live_server, key, tenant, generations(6))
    after = entitlements(live_server, key, tenant).json()
    last = record(live_server, key, tenant, generations(5))

    assert first.status_code == 200, first.text
    assert (first.json()["used"], first.json()["limit"], first.json()["remaining"]) == (95, 100, 5)
    assert first.json()["usage"]["generations_this_month"] == 95
    assert first.json()["replayed"] is False
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == "quota exceeded"
    assert (refused.json()["limit"], refused.json()["usage"], refused.json()["requested"]) == (100, 95, 6)
    assert after == before
    assert last.status_code == 200, last.text
    assert (last.json()["used"], last.json()["remaining"]) == (100, 0)
    assert entitlements(live_server, key, tenant).json()["remaining"]["generations"] == 0


def test_sites_and_storage_may_be_set_and_lowered_but_generations_only_counted(
    live_server: RunningServer, key: str, tenant_id: str
) -> None:
    stored = record(live_server, key, tenant_id, {"metric": "storage_mb", "set": 120, "idempotency_key": "store-1"})
    deleted = record(live_server, key, tenant_id, {"metric": "sites", "delta": -3, "idempotency_key": "site-del-1"})
    too_big = record(live_server, key, tenant_id, {"metric": "storage_mb", "set": 501, "idempotency_key": "store-2"})
    set_generations = record(
        live_server, key, tenant_id, {"metric": "generations", "set": 3, "idempotency_key": "gen-set-1"}
    )
    both = record(
        live_server, key, tenant_id, {"metric": "sites", "set": 1, "delta": 1, "idempotency_key": "site-both"}
    )
    unknown = record(live_server, key, tenant_id, {"metric": "pages", "delta": 1, "idempotency_key": "pages-1"})
    # An amount that is not a JSON integer is the caller's bug, not something to guess at.
    vague = [
        record(live_server, key, tenant_id, {"metric": "sites", "delta": amount, "idempotency_key": f"vague-{n}"})
        for n, amount in enumerate([True, "1", 1.5])
    ]

    assert stored.status_code == 200, stored.text
    assert (stored.json()["used"], stored.json()["remaining"]) == (120, 380)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["used"] == 0  # never below zero
    assert too_big.status_code == 409
    assert (too_big.json()["usage"], too_big.json()["requested"]) == (120, 501)
    assert [set_generations.status_code, both.status_code, unknown.status_code] == [422, 422, 422]
    assert [answer.status_code for answer in vague] == [422, 422, 422]
    now = usage_now(live_server, key, tenant_id)
    assert (now["storage_used_mb"], now["sites_count"]) == (120, 0)


def test_a_repeated_idempotency_key_answers_the_first_answer_and_changes_nothing(
    live_server: RunningServer, payfast: PayfastStandIn, key: str
) -> None:
    tenant = provision(live_server, payfast)
    body = {"metric": "sites", "delta": 2, "idempotency_key": "site-create-42"}
    over = {"metric": "sites", "delta": 9, "idempotency_key": "site-create-43"}

    first = record(live_server, key, tenant, body)
    again = record(live_server, key, tenant, body)
    refused = record(live_server, key, tenant, over)
    refused_again = record(live_server, key, tenant, over)
    misused = record(live_server, key, tenant, {**body, "delta": 3})

    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert {**again.json(), "replayed": False} == first.json()
    assert again.json()["replayed"] is True
    assert (refused.status_code, refused_again.status_code) == (409, 409)
    assert refused_again.headers["Idempotent-Replayed"] == "true"
    assert {**refused_again.json(), "replayed": False} == refused.json()
    # The same key for a different record is the caller's mistake, not a replay.
    assert misused.status_code == 422, misused.text
    assert usage_now(live_server, key, tenant)["sites_count"] == 2


def test_one_idempotency_key_sent_twenty_times_at_once_is_recorded_once(
    live_server: RunningServer, payfast: PayfastStandIn, key: str
) -> None:
    tenant = provision(live_server, payfast)
    body = {"metric": "generations", "delta": 3, "idempotency_key": "gen-retried-storm"}

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: record(live_server, key, tenant, body), range(20)))

    assert [answer.status_code for answer in answers] == [200] * 20
    assert [answer.headers.get("Idempotent-Replayed") for answer in answers].count(None) == 1
    assert {answer.json()["used"] for answer in answers} == {3}
    assert usage_now(live_server, key, tenant)["generations_this_month"] == 3


def test_the_last_ten_units_raced_by_fifty_requests_give_ten_successes_and_forty_409s(
    live_server: RunningServer, payfast: PayfastStandIn, smtp_server: tuple[MailCatcher, int], key: str
) -> None:
    owner = f"racer-{uuid.uuid4().hex[:8]}@example.com"
    tenant = provision(live_server, payfast, email=owner)
    assert record(live_server, key, tenant, generations(90)).status_code == 200

    def one(_: int) -> int:
        return record(live_server, key, tenant, generations(1)).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(one, range(50)))

    assert sorted(statuses) == [200] * 10 + [409] * 40
    shown = entitlements(live_server, key, tenant).json()
    assert (shown["usage"]["generations_this_month"], shown["remaining"]["generations"]) == (100, 0)
    # The owner heard once at 80% (the first record) and once at 100%, however many raced past it.
    subjects = [" ".join(str(message["Subject"]).split()) for message in smtp_server[0].to(owner)]  # unfolded
    assert subjects.count("You have used 80% of your plan's page generations this period") == 1
    assert subjects.count("You have reached your plan's limit of 100 page generations this period") == 1


def test_a_subscriber_counts_by_its_paid_period_and_once_suspended_is_refused_403_with_the_reason(
    live_server: RunningServer, payfast: PayfastStandIn, payfast_api: PayfastApiStandIn, key: str
) -> None:
    token = new_subscription_token()
    payfast_api.add(token, amount=29900, run_date="2027-01-06")
    tenant = provision(live_server, payfast, token=token, billing_date="2026-12-06")

    active = entitlements(live_server, key, tenant).json()
    before = {"metric": "generations", "delta": 2, "idempotency_key": "gen-before-suspension"}
    assert record(live_server, key, tenant, before).status_code == 200
    # PayFast never charges again: past due, then suspended when the grace is over.
    run = tenancy(live_server.env, "lifecycle", "run", "--as-of", "2027-01-20T09:00:00Z", "--json")
    assert run.returncode == 0, run.stderr
    moves = [(move["tenant_id"], move["to"]) for move in json.loads(run.stdout)["applied"]]
    suspended = entitlements(live_server, key, tenant).json()
    refused = record(live_server, key, tenant, generations(1))

    # The usage period is the paid month, from the billing date to paid-through.
    assert active["period"] == {"start": "2026-12-06", "end": "2027-01-06"}
    assert date.fromisoformat(active["period"]["end"]) == add_months(date(2026, 12, 6), 1)
    assert (tenant, "suspended") in moves
    assert (suspended["status"], suspended["active"], suspended["reason"]) == ("suspended", False, "payment overdue")
    assert refused.status_code == 403, refused.text
    assert refused.json() == {"detail": "tenant not active", "status": "suspended", "reason": "payment overdue"}
    assert entitlements(live_server, key, tenant).json()["usage"] == suspended["usage"]
    # A retry of a record made before the suspension still gets its first answer, and changes nothing.
    retried = record(live_server, key, tenant, before)
    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert retried.json()["used"] == 2
    assert suspended["usage"]["generations_this_month"] == 2


def test_service_keys_are_never_logged(live_server: RunningServer, key: str, tenant_id: str) -> None:
    # Requests with the key, and refused ones with a near miss, have been logged by now.
    name, secret = key.removeprefix("tnc_").split(".")
    assert entitlements(live_server, key, tenant_id).status_code == 200
    assert entitlements(live_server, f"tnc_{name}.{secret[::-1]}", tenant_id).status_code == 401

    logs = [live_server.log_text()]
    logs += [path.read_text(errors="replace") for path in (live_server.home / "logs").rglob("*") if path.is_file()]

    # The refusal is logged by the key's name, which is all an operator needs.
    assert '"name": "site-builder", "known": true, "event": "service_key_refused"' in live_server.log_text()
    for text in logs:
        assert secret not in text
        assert secret[::-1] not in text
