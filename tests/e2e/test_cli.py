"""The `tenancy` command line, run as a real process: demos, the manual trigger, the outbox, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenancy.domain.model import JobStatus

from purchases import wait_for_job
from servers import RunningServer, cli_env, free_port, start_server, stop_server, tenancy


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("offline-home")
    port = free_port()
    env = cli_env(home, TENANCY_PORT=str(port), TENANCY_PAYFAST_MODE="offline", TENANCY_WORKERS="1")
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


def test_offline_mode_says_so_at_start_and_provisions_a_demo_payment(offline_server: RunningServer) -> None:
    assert "payfast_offline_mode" in offline_server.log_text()
    env = offline_server.env

    sent = tenancy(env, "itn", "send", "--plan", "enterprise", "--email", "Demo@Example.com", "--json")

    assert sent.returncode == 0, sent.stderr
    result = json.loads(sent.stdout)
    assert result["status_code"] == 200
    wait_for_job(offline_server, result["transaction_id"], JobStatus.SUCCEEDED)
    outbox = tenancy(env, "mail", "list", "--to", "demo@example.com", "--json")
    assert outbox.returncode == 0, outbox.stderr
    (email,) = json.loads(outbox.stdout)
    assert email["subject"] == "Welcome to Site Builder"
    assert email["status"] == "stored"
    assert "Temporary password: " in email["text"]


def test_offline_mode_still_checks_the_signature(offline_server: RunningServer) -> None:
    forged_env = {**offline_server.env, "TENANCY_PAYFAST_PASSPHRASE": "not-the-servers-passphrase"}

    sent = tenancy(forged_env, "itn", "send", "--plan", "starter", "--email", "forger@example.com", "--json")

    assert sent.returncode == 1
    result = json.loads(sent.stdout)
    assert result["status_code"] == 400
    assert "signature" in result["response"]
    services = offline_server.services()
    try:
        assert services.journal.get(result["transaction_id"]) is None
    finally:
        services.close()


def test_offline_mode_still_checks_the_amount(offline_server: RunningServer) -> None:
    sent = tenancy(offline_server.env, "itn", "send", "--plan", "starter", "--email", "cheap@example.com",
                   "--amount", "1.00", "--json")  # fmt: skip

    assert sent.returncode == 1
    assert "amount" in json.loads(sent.stdout)["response"]


def test_manual_trigger_with_the_rb001_payload_is_idempotent(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    payload = '{"transactionId":"TXN-123456","email":"user@example.com","plan":"professional"}'

    first = tenancy(env, "provision", "--payload", payload, "--json")
    second = tenancy(env, "provision", "--payload", payload, "--json")

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["status"] == "succeeded"
    assert json.loads(first.stdout)["tenant_id"].startswith("ten_")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "succeeded"
    outbox = json.loads(tenancy(env, "mail", "list", "--json").stdout)
    assert [email["to"] for email in outbox] == ["user@example.com"]
    assert "Invoice: INV-123456" in outbox[0]["text"]


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["provision", "--payload", "{not json"], 2, "--payload must be JSON"),
        (["provision", "--transaction-id", "TXN-1"], 2, "give --transaction-id, --email and --plan"),
        (["provision", "--transaction-id", "TXN-1", "--email", "a@example.com", "--plan", "gold"], 1, "unknown plan"),
        (["provision", "--transaction-id", "TXN-1", "--email", "not-an-email", "--plan", "starter"], 1, "valid email"),
        (["itn", "send", "--plan", "gold", "--email", "a@example.com"], 2, "unknown plan"),
        (["itn", "send", "--plan", "starter", "--email", "a@example.com", "--amount", "1e1000000"], 2, "--amount"),
        (["itn", "send", "--plan", "starter", "--email", "a@example.com", "--amount", "abc"], 2, "like 299.00"),
    ],
)
def test_bad_cli_input_is_one_line_on_stderr_and_a_nonzero_exit(
    tmp_path: Path, arguments: list[str], code: int, message: str
) -> None:
    result = tenancy(cli_env(tmp_path), *arguments)

    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_itn_send_to_a_server_that_is_not_there_fails_cleanly(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/payments/payfast/itn"
    result = tenancy(cli_env(tmp_path), "itn", "send", "--plan", "starter", "--email", "a@example.com", "--url", url)

    assert result.returncode == 1
    assert "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr


def test_plans_json_lists_the_catalogue(tmp_path: Path) -> None:
    result = tenancy(cli_env(tmp_path), "plans", "--json")

    assert result.returncode == 0
    plans = {plan["plan"]: plan for plan in json.loads(result.stdout)}
    assert set(plans) == {"starter", "professional", "enterprise"}
    assert plans["professional"]["max_sites"] == 5
    assert plans["professional"]["price_zar"] == "299.00"


def test_a_separate_worker_process_provisions_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = cli_env(tmp_path, TENANCY_PORT=str(free_port()), TENANCY_PAYFAST_MODE="offline", TENANCY_WORKERS="0")
    server = start_server(tmp_path, env)
    worker = subprocess.Popen(
        [sys.executable, "-m", "tenancy", "worker", "--concurrency", "2"],
        env={**env, "TENANCY_WORKER_POLL_SECONDS": "0.05"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sent = tenancy(env, "itn", "send", "--plan", "starter", "--email", "worker@example.com", "--json")
        wait_for_job(server, json.loads(sent.stdout)["transaction_id"], JobStatus.SUCCEEDED)
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
        stop_server(server)
    assert worker.returncode == 0
    assert "worker_stopped" in stderr
    assert "Traceback" not in stderr


def test_mail_list_says_that_stored_mail_was_never_delivered_without_smtp(tmp_path: Path) -> None:
    env = cli_env(tmp_path, COLUMNS="200")
    payload = '{"transactionId":"TXN-777001","email":"stored@example.com","plan":"starter"}'
    assert tenancy(env, "provision", "--payload", payload).returncode == 0

    listed = tenancy(env, "mail", "list", "--to", "stored@example.com")

    assert listed.returncode == 0, listed.stderr
    assert "stored, not delivered (no SMTP configured)" in listed.stdout
