"""Logs as RB-001 searches them: CloudWatch filter patterns, the per-component log files every
process appends to (secrets redacted), and the embedded log source that reads them back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tenancy.adapters.local.logs import FileLogSource
from tenancy.bootstrap import Services, log_directory
from tenancy.cli.logs import parse_since
from tenancy.domain.model import LogComponent, Step
from tenancy.errors import InvalidInputError
from tenancy.logging_setup import REDACTED, component_for, configure_logging, redact_secrets
from tenancy.provisioning.worker import NextAction
from tenancy.runbook.log_filter import parse_filter_pattern

from helpers import file_logging

STEP_DONE = {
    "event": "step_done",
    "step": "tenant_record",
    "transaction_id": "TXN-123456",
    "tenant_id": "ten_abc",
    "attempt": 3,
    "delay_seconds": 1.5,
    "confirmed": True,
    "replaced": False,
    "note": None,
    "reasons": ["signature mismatch", "amount mismatch"],
    "job": {"plan": "professional", "status": "running"},
    "level": "info",
    "severity": "INFO",
    "timestamp": "2026-01-18T10:00:00.000000Z",
}
DEAD_LETTERED = {
    "event": "job_dead_lettered",
    "transaction_id": "TXN-123456",
    "error": "smtp down (after 5 attempts)",
    "level": "error",
    "severity": "ERROR",
    "timestamp": "2026-01-18T10:05:00.000000Z",
}


def _line(fields: dict[str, Any]) -> str:
    return json.dumps(fields)


def _matches(pattern: str, fields: dict[str, Any]) -> bool:
    line = _line(fields)
    parsed = parse_filter_pattern(pattern)
    # Both ways the reader may call it: with the fields parsed already, and with the raw line only.
    with_fields = parsed.matches(line, fields)
    assert parsed.matches(line) is with_fields
    return with_fields


# --- filter patterns: RB-001's searches -------------------------------------------------------


@pytest.mark.parametrize("pattern", ["TXN-123456", '"TXN-123456"'])
def test_rb001_4_1_transaction_search_finds_every_line_naming_the_transaction(pattern: str) -> None:
    assert _matches(pattern, STEP_DONE)
    assert _matches(pattern, DEAD_LETTERED)
    assert not _matches(pattern, {**STEP_DONE, "transaction_id": "TXN-123457"})


def test_rb001_3_2_error_finds_error_level_lines_only() -> None:
    assert _matches("ERROR", DEAD_LETTERED)
    # "error" as a key or in a message is not the ERROR term: terms are case-sensitive.
    assert not _matches("ERROR", {**STEP_DONE, "error": "an error happened"})


def test_an_empty_pattern_matches_every_line() -> None:
    for pattern in ("", "   "):
        assert _matches(pattern, STEP_DONE)
    assert parse_filter_pattern(None).matches("not even json")


# --- filter patterns: terms -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("step_done TXN-123456", True),
        ("step_done TXN-999999", False),
        ("STEP_DONE", False),
        ('"signature mismatch"', True),
        ('"mismatch signature"', False),
        ("?ERROR ?step_done", True),
        ("?ERROR ?WARNING", False),
        ("-ERROR", True),
        ("step_done -tenant_record", False),
        ('TXN-123456 -"amount mismatch"', False),
        ('TXN-123456 ?"amount mismatch" ?nothing -ERROR', True),
        ("%TXN-[0-9]{6}%", True),
        ("%^TXN%", False),
    ],
)
def test_terms_follow_cloudwatch_semantics(pattern: str, expected: bool) -> None:
    assert _matches(pattern, STEP_DONE) is expected


def test_a_quoted_term_may_hold_escaped_quotes() -> None:
    assert parse_filter_pattern('"say \\"hi\\""').matches('plain text: say "hi"')
    # Terms match the raw line, where JSON has escaped the quotes (as in CloudWatch).
    assert not _matches('"say \\"hi\\""', {**STEP_DONE, "note": 'say "hi"'})


# --- filter patterns: JSON --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ $.event = "step_done" }', True),
        ("{ $.event = step_done }", True),
        ('{ $.event = "step_*" }', True),
        ('{ $.event = "*_done" }', True),
        ('{ $.event = "step" }', False),
        ('{ $.event != "step_done" }', False),
        ('{ $.event != "job_finished" }', True),
        ("{ $.attempt > 2 }", True),
        ("{ $.attempt >= 3 }", True),
        ("{ $.attempt < 3 }", False),
        ("{ $.attempt <= 3 }", True),
        ("{ $.attempt = 3 }", True),
        ("{ $.attempt != 3 }", False),
        ("{ $.delay_seconds > 1.25 }", True),
        ("{ $.attempt = 3.0 }", True),
        ('{ $.attempt = "3" }', True),
        ("{ $.step = 3 }", False),
        ('{ $.event = "step_done" && $.attempt > 5 }', False),
        ('{ $.event = "step_done" || $.attempt > 5 }', True),
        ('{ $.event = "nope" || $.attempt > 5 || $.tenant_id = "ten_abc" }', True),
        ('{ ($.event = "nope" || $.attempt = 3) && $.step = "tenant_record" }', True),
        ('{ $.event = "nope" || $.attempt = 3 && $.step = "other" }', False),
        ("{ $.confirmed IS TRUE }", True),
        ("{ $.confirmed IS FALSE }", False),
        ("{ $.replaced IS FALSE }", True),
        ("{ $.note IS NULL }", True),
        ("{ $.tenant_id IS NULL }", False),
        ("{ $.missing NOT EXISTS }", True),
        ("{ $.note NOT EXISTS }", False),
        ('{ $.reasons[1] = "amount*" }', True),
        ('{ $.reasons[2] = "*" }', False),
        ('{ $.job.plan = "professional" }', True),
        ('{ $.job.status != "running" }', False),
        ("{ $.transaction_id = %^TXN-\\d+$% }", True),
        ('{$.event="step_done"&&$.attempt>2}', True),
        ("{ $.confirmed = true }", True),
        ("{ $.confirmed = 1 }", False),
    ],
)
def test_json_patterns_follow_cloudwatch_semantics(pattern: str, expected: bool) -> None:
    assert _matches(pattern, STEP_DONE) is expected


def test_a_missing_field_matches_neither_equal_nor_not_equal() -> None:
    assert not _matches('{ $.missing = "x" }', STEP_DONE)
    assert not _matches('{ $.missing != "x" }', STEP_DONE)
    assert not _matches("{ $.missing > 1 }", STEP_DONE)


def test_json_patterns_never_match_a_line_that_is_not_a_json_object() -> None:
    pattern = parse_filter_pattern('{ $.event = "step_done" }')
    assert not pattern.matches('event = "step_done"')
    assert not pattern.matches('["step_done"]')


@pytest.mark.parametrize(
    "pattern",
    [
        '"unterminated',
        'TXN-1 "unterminated',
        'foo"bar',
        "%(unbalanced%",
        "{ $.event = }",
        '{ event = "x" }',
        '{ $ = "x" }',
        '{ $.event = "x"',
        '{ $.event = "x" ) }',
        '{ ($.event = "x" }',
        "{ $.attempt > many }",
        '{ $.event ~ "x" }',
        '{ $.event = "x" && }',
        "{ $.event IS MAYBE }",
        "{ }",
        "[ip, user, ...]",
    ],
)
def test_a_bad_pattern_is_refused_with_the_reason(pattern: str) -> None:
    with pytest.raises(InvalidInputError, match="filter pattern"):
        parse_filter_pattern(pattern)


# --- which component an event belongs to ------------------------------------------------------


@pytest.mark.parametrize(
    ("logger_name", "event", "component"),
    [
        ("tenancy.payments.intake", {}, LogComponent.ITN),
        ("tenancy.payments", {}, LogComponent.ITN),
        ("tenancy.web.routes.itn", {}, LogComponent.ITN),
        ("tenancy.web.app", {"path": "/payments/payfast/itn"}, LogComponent.ITN),
        ("tenancy.provisioning.saga", {}, LogComponent.PROVISIONING),
        ("tenancy.provisioning.worker", {}, LogComponent.PROVISIONING),
        ("tenancy.runbook.repair", {}, LogComponent.PROVISIONING),
        ("tenancy.web.app", {"path": "/auth/login"}, LogComponent.APP),
        ("tenancy.paymentsx", {}, LogComponent.APP),
        ("tenancy", {}, LogComponent.APP),
        ("", {}, LogComponent.APP),
    ],
)
def test_the_logging_module_decides_the_component(
    logger_name: str, event: dict[str, Any], component: LogComponent
) -> None:
    assert component_for(logger_name, event) is component


# --- the file sink ----------------------------------------------------------------------------


@pytest.fixture
def log_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Path]:
    """File logging into a temporary directory; structlog's global configuration restored after.
    (capsys first: the stderr logger binds the sys.stderr it finds, and tests read it back.)"""
    with file_logging(tmp_path / "logs", terminal=True) as directory:
        yield directory


def _file_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_event_goes_to_its_components_file(log_dir: Path) -> None:
    structlog.get_logger("tenancy.payments.intake").info("itn_received", transaction_id="TXN-1")
    structlog.get_logger("tenancy.provisioning.saga").info("step_done", transaction_id="TXN-1", tenant_id="ten_1")
    structlog.get_logger("tenancy.web.app").info("auth_refused", path="/auth/login")
    structlog.get_logger().info("nameless")

    assert [line["event"] for line in _file_lines(log_dir / "itn.log")] == ["itn_received"]
    [step] = _file_lines(log_dir / "provisioning.log")
    assert step["transaction_id"] == "TXN-1"
    assert step["tenant_id"] == "ten_1"
    assert step["component"] == "provisioning"
    assert step["logger"] == "tenancy.provisioning.saga"
    assert [line["event"] for line in _file_lines(log_dir / "app.log")] == ["auth_refused", "nameless"]


def test_every_line_carries_an_upper_case_severity_and_only_files_name_the_component(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = structlog.get_logger("tenancy.provisioning.worker")
    log.warning("job_retry", transaction_id="TXN-2")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("job_crashed", transaction_id="TXN-2")

    retry, crashed = _file_lines(log_dir / "provisioning.log")
    assert (retry["level"], retry["severity"]) == ("warning", "WARNING")
    assert (crashed["level"], crashed["severity"]) == ("error", "ERROR")
    assert "RuntimeError: boom" in crashed["exception"]
    stderr = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in stderr] == ["job_retry", "job_crashed"]
    # stderr is what Lambda ships to CloudWatch: RB-001's `--filter-pattern "ERROR"` needs severity there.
    assert [line["severity"] for line in stderr] == ["WARNING", "ERROR"]
    assert all({"component", "logger"}.isdisjoint(line) for line in stderr)


def test_secrets_are_redacted_in_the_files_too(log_dir: Path) -> None:
    structlog.get_logger("tenancy.payments.intake").info(
        "itn_received", transaction_id="TXN-3", password="hunter2-secret", merchant_key="46f0cd694581a"
    )

    text = (log_dir / "itn.log").read_text()
    assert "hunter2-secret" not in text
    assert "46f0cd694581a" not in text
    [line] = _file_lines(log_dir / "itn.log")
    assert line["password"] == REDACTED
    assert line["merchant_key"] == REDACTED


def test_any_key_naming_a_secret_is_redacted_however_it_is_spelled_every_time() -> None:
    event = {
        "event": "password_reset_token_sent",  # the event's name is never redacted
        "Password": "a",
        "new_PASSWORD": "b",
        "X-Authorization": "c",
        "session_id": "d",
        "email": "ada@example.com",
        "tenant_id": "ten_1",
    }
    for _ in range(2):  # the same keys again: the same answer
        redacted = redact_secrets(None, "info", dict(event))
        assert redacted == {
            **event,
            "Password": REDACTED,
            "new_PASSWORD": REDACTED,
            "X-Authorization": REDACTED,
            "session_id": REDACTED,
        }


def test_levels_below_the_configured_one_are_not_written(log_dir: Path) -> None:
    structlog.get_logger("tenancy.provisioning.saga").debug("chatter")
    structlog.get_logger("tenancy.provisioning.saga").info("step_done")

    assert [line["event"] for line in _file_lines(log_dir / "provisioning.log")] == ["step_done"]


_WRITER = """
import sys
import structlog
from pathlib import Path
from tenancy.logging_setup import configure_logging
configure_logging("info", log_dir=Path(sys.argv[1]))
log = structlog.get_logger("tenancy.provisioning.worker")
for number in range(int(sys.argv[3])):
    log.info("job_started", writer=sys.argv[2], number=number, padding="x" * 3000)
"""


def test_several_processes_append_whole_lines_to_the_same_file(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(directory), str(writer), "300"],
            stderr=subprocess.DEVNULL,
        )
        for writer in range(4)
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0, 0]

    lines = _file_lines(directory / "provisioning.log")  # every line parses: none interleaved
    assert len(lines) == 1200
    for writer in range(4):
        numbers = [line["number"] for line in lines if line["writer"] == str(writer)]
        assert numbers == list(range(300))


def test_an_unwritable_log_directory_is_reported_once_and_logging_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the directory should be")
    saved = structlog.get_config()
    try:
        configure_logging("info", log_dir=blocker)
        structlog.configure(cache_logger_on_first_use=False)
        structlog.get_logger("tenancy.provisioning.saga").info("step_done", transaction_id="TXN-4")
        structlog.get_logger("tenancy.provisioning.saga").info("step_done", transaction_id="TXN-5")
    finally:
        structlog.configure(**saved)

    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ["log_file_unwritable", "step_done", "step_done"]


# --- reading the files back -------------------------------------------------------------------


def _provision(services: Services, transaction_id: str) -> None:
    outcome = services.provision_now(transaction_id, f"{transaction_id.lower()}@example.com", "starter")
    assert outcome.action is NextAction.FINISHED


@pytest.fixture
def service_logs(services: Services, capsys: pytest.CaptureFixture[str]) -> Iterator[Services]:
    """The services, logging to the files `services.logs` reads (as `services_for` sets up)."""
    saved = structlog.get_config()
    configure_logging("info", log_dir=log_directory(services.settings))
    structlog.configure(cache_logger_on_first_use=False)
    yield services
    structlog.configure(**saved)


def test_a_transaction_search_returns_its_steps_in_order(service_logs: Services) -> None:
    _provision(service_logs, "TXN-LOGS-1")
    _provision(service_logs, "TXN-LOGS-2")

    events = service_logs.logs.filter_events(pattern='"TXN-LOGS-1"')

    steps = [event.fields["step"] for event in events if event.fields["event"] == "step_done"]
    assert steps == [step.value for step in Step]
    assert all(event.fields["transaction_id"] == "TXN-LOGS-1" for event in events)
    assert (events[0].fields["event"], events[-1].fields["event"]) == ("job_started", "job_finished")
    step_done = [event for event in events if event.fields["event"] == "step_done"]
    assert {event.fields["tenant_id"] for event in step_done} == {events[1].fields["tenant_id"]}
    assert all(event.component == "provisioning" for event in events)
    assert [event.timestamp for event in events] == sorted(event.timestamp for event in events)
    assert json.loads(events[0].message) == events[0].fields


def test_component_and_time_window_narrow_the_search(service_logs: Services) -> None:
    _provision(service_logs, "TXN-LOGS-3")
    structlog.get_logger("tenancy.payments.intake").info("itn_received", transaction_id="TXN-LOGS-3")
    logs = service_logs.logs
    now = service_logs.clock.now()

    provisioning = logs.filter_events(component="provisioning", pattern="TXN-LOGS-3")
    itn = logs.filter_events(component="itn", pattern="TXN-LOGS-3")
    everything = logs.filter_events(pattern="TXN-LOGS-3")

    assert provisioning
    assert all(event.component == "provisioning" for event in provisioning)
    assert [event.fields["event"] for event in itn] == ["itn_received"]
    assert len(everything) == len(provisioning) + 1
    assert everything[-1].component == "itn"
    assert logs.filter_events(pattern="TXN-LOGS-3", start=now - timedelta(minutes=5)) == everything
    assert logs.filter_events(pattern="TXN-LOGS-3", start=now + timedelta(seconds=1)) == []
    assert logs.filter_events(pattern="TXN-LOGS-3", end=now - timedelta(minutes=5)) == []
    assert logs.filter_events(pattern='{ $.step = "activate" }', component="provisioning")[0].fields["step"] == (
        "activate"
    )


def _write(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _at(minute: int, event: str, **fields: Any) -> str:
    timestamp = f"2026-01-18T10:{minute:02d}:00.000000Z"
    return json.dumps({"event": event, "level": "info", "timestamp": timestamp, **fields})


def test_events_from_every_file_are_merged_oldest_first_and_limited(tmp_path: Path) -> None:
    _write(tmp_path / "itn.log", _at(1, "itn_received"), _at(4, "itn_received"))
    _write(tmp_path / "provisioning.log", _at(2, "job_started"), _at(3, "step_done"), _at(5, "job_finished"))
    _write(tmp_path / "app.log", _at(0, "started"))
    source = FileLogSource(tmp_path)

    events = source.filter_events()
    first_three = source.filter_events(limit=3)
    window = source.filter_events(
        start=datetime(2026, 1, 18, 10, 2, tzinfo=UTC), end=datetime(2026, 1, 18, 10, 4, tzinfo=UTC)
    )

    assert [event.fields["event"] for event in events] == [
        "started",
        "itn_received",
        "job_started",
        "step_done",
        "itn_received",
        "job_finished",
    ]
    assert [event.component[0] for event in events] == ["a", "i", "p", "p", "i", "p"]
    assert first_three == events[:3]
    assert [event.fields["event"] for event in window] == ["job_started", "step_done", "itn_received"]


def test_lines_that_cannot_be_placed_in_time_are_skipped(tmp_path: Path) -> None:
    _write(
        tmp_path / "provisioning.log",
        _at(1, "job_started"),
        "Traceback (most recent call last):",
        json.dumps({"event": "no_timestamp"}),
        json.dumps({"event": "bad_timestamp", "timestamp": "yesterday"}),
        json.dumps(["a", "list"]),
        _at(2, "job_finished"),
    )
    with (tmp_path / "provisioning.log").open("a") as file:
        file.write('{"event": "cut_short", "timest')

    events = FileLogSource(tmp_path).filter_events()

    assert [event.fields["event"] for event in events] == ["job_started", "job_finished"]


def test_a_missing_log_directory_is_no_events_and_a_bad_component_is_refused(tmp_path: Path) -> None:
    source = FileLogSource(tmp_path / "never-written")

    assert source.filter_events(pattern="ERROR") == []
    with pytest.raises(InvalidInputError, match="unknown log component 'payments'"):
        source.filter_events(component="payments")
    with pytest.raises(InvalidInputError, match="filter pattern"):
        source.filter_events(pattern='"open')


# --- --since ----------------------------------------------------------------------------------

NOW = datetime(2026, 1, 18, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("1h", NOW - timedelta(hours=1)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(minutes=90)),
        (" 1h ", NOW - timedelta(hours=1)),
        ("2026-01-18T09:00:00Z", datetime(2026, 1, 18, 9, tzinfo=UTC)),
    ],
)
def test_since_reads_durations_and_times(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "1y", "h", "-1h", "1.5h", "yesterday", "99999999999d"])
def test_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--since"):
        parse_since(text, NOW)
