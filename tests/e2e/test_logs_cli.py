"""`tenancy logs` as RB-001 4.1 uses it, run as real processes: what a manual trigger and a live
server log lands in the component files, and the CloudWatch-style search finds it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenancy.domain.model import JobStatus

from purchases import wait_for_job
from servers import cli_env, free_port, start_server, stop_server, tenancy


def search(env: dict[str, str], *arguments: str) -> list[dict[str, Any]]:
    result = tenancy(env, "logs", "--json", *arguments)
    assert result.returncode == 0, result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


def test_rb001_4_1_finds_the_manual_trigger_steps_by_transaction_id(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    provisioned = tenancy(
        env, "provision", "--transaction-id", "TXN-LOG1", "--email", "a@example.com", "--plan", "starter"
    )
    assert provisioned.returncode == 0, provisioned.stderr
    tenancy(env, "provision", "--transaction-id", "TXN-LOG2", "--email", "b@example.com", "--plan", "starter")

    events = search(env, "--filter", "TXN-LOG1")

    names = [event["fields"]["event"] for event in events]
    assert names[0] == "job_started"
    assert names[-1] == "job_finished"
    steps = [event["fields"]["step"] for event in events if event["fields"]["event"] == "step_done"]
    assert steps == ["tenant_record", "identity_user", "owner_link", "users_record", "activate", "welcome_email"]
    assert {event["fields"]["transaction_id"] for event in events} == {"TXN-LOG1"}
    assert {event["component"] for event in events} == {"provisioning"}
    assert all(json.loads(event["message"]) == event["fields"] for event in events)
    assert (tmp_path / "logs" / "provisioning.log").is_file()


def test_human_output_is_one_line_per_event_and_filters_narrow_it(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    tenancy(env, "provision", "--transaction-id", "TXN-LOG3", "--email", "c@example.com", "--plan", "starter")

    shown = tenancy(env, "logs", "--filter", '{ $.event = "step_done" && $.step = "activate" }', "--since", "30m")
    nothing = tenancy(env, "logs", "--filter", "TXN-LOG3", "--component", "itn")
    errors = tenancy(env, "logs", "--filter", "ERROR", "--json")
    limited = search(env, "--filter", "TXN-LOG3", "--limit", "2")

    assert shown.returncode == 0, shown.stderr
    [line] = shown.stdout.splitlines()
    assert " provisioning " in line
    assert " info " in line
    assert "step_done TXN-LOG3 step=activate tenant_id=ten_" in line
    assert (nothing.returncode, nothing.stdout) == (0, "")
    assert (errors.returncode, json.loads(errors.stdout)) == (0, [])
    assert [event["fields"]["event"] for event in limited] == ["job_started", "step_done"]


def test_bad_patterns_and_durations_are_one_line_errors_with_exit_2(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    for arguments in (["--filter", '{ $.event = "x"'], ["--filter", '"open'], ["--since", "1y"]):
        result = tenancy(env, "logs", *arguments)

        assert result.returncode == 2, arguments
        assert result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_a_paid_itn_is_found_in_the_itn_log_and_its_provisioning_in_the_provisioning_log(tmp_path: Path) -> None:
    env = cli_env(tmp_path, TENANCY_PORT=str(free_port()), TENANCY_PAYFAST_MODE="offline", TENANCY_WORKERS="1")
    server = start_server(tmp_path, env)
    try:
        sent = tenancy(env, "itn", "send", "--plan", "starter", "--email", "itn@example.com", "--json")
        assert sent.returncode == 0, sent.stderr
        transaction_id = json.loads(sent.stdout)["transaction_id"]
        wait_for_job(server, transaction_id, JobStatus.SUCCEEDED)

        itn = search(env, "--component", "itn", "--filter", transaction_id)
        provisioning = search(env, "--component", "provisioning", "--filter", f'"{transaction_id}"')
    finally:
        stop_server(server)

    [received] = itn
    assert received["fields"]["event"] == "itn_received"
    assert received["fields"]["verdict"] == "accepted"
    assert received["fields"]["logger"] == "tenancy.payments.intake"
    assert [event["fields"]["step"] for event in provisioning if event["fields"]["event"] == "step_done"][-1] == (
        "welcome_email"
    )
    assert "payfast_offline_mode" in (tmp_path / "logs" / "app.log").read_text()
