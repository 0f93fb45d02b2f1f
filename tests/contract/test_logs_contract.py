"""The LogSource contract, run with the same assertions against the embedded FileLogSource (the
JSON-lines files `configure_logging` appends to) and CloudWatchLogSource (moto's CloudWatch Logs,
the lines put into the functions' log groups as Lambda would ship them).

Both read the same lines: RB-001's searches (`"TXN-123456"`, `ERROR`), a JSON pattern, the time
window, the limit and the order must come out the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenancy.adapters.aws import logs as cloudwatch_logs
from tenancy.adapters.aws.logs import CloudWatchLogSource
from tenancy.bootstrap import log_directory
from tenancy.errors import InvalidInputError
from tenancy.ports import LogSource

from aws_support import AwsContext, Backend

# Whole seconds, well inside CloudWatch's 14 days: both backends then hold the same instants.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
LOGGERS = {"itn": "tenancy.payments.intake", "provisioning": "tenancy.provisioning.saga", "app": "tenancy.web.app"}


def at(minute: int) -> datetime:
    return BASE + timedelta(minutes=minute)


def line(component: str, minute: int, event: str, level: str = "info", **fields: Any) -> dict[str, Any]:
    """A line as logging_setup's file sink writes it (Lambda ships the same JSON from stderr)."""
    return {
        "event": event,
        **fields,
        "level": level,
        "timestamp": at(minute).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "severity": level.upper(),
        "component": component,
        "logger": LOGGERS[component],
    }


@dataclass(frozen=True)
class Logs:
    """A backend's log source, and how a test puts lines where that backend's processes log them."""

    source: LogSource
    write: Callable[[str, list[dict[str, Any]]], None]  # component, lines oldest first


@pytest.fixture
def logs(backend: Backend) -> Logs:
    if backend.aws is None:
        directory = log_directory(backend.services.settings)

        def write_file(component: str, lines: list[dict[str, Any]]) -> None:
            directory.mkdir(exist_ok=True)
            with (directory / f"{component}.log").open("a", encoding="utf-8") as file:
                file.writelines(f"{json.dumps(fields)}\n" for fields in lines)

        return Logs(backend.services.logs, write_file)
    client = backend.aws.session.client("logs")
    settings = backend.services.settings
    # Bootstrap searches the "app" events in the provisioning function's group (the CloudWatch-only
    # tests below read that wiring); here "app" gets a group of its own, created on first write,
    # so every component reads as it does from files.
    groups = {
        "itn": settings.log_group("itn-handler"),
        "provisioning": settings.log_group("provisioning"),
        "app": settings.log_group("app"),
    }

    def write_group(component: str, lines: list[dict[str, Any]]) -> None:
        _put(client, groups[component], lines)

    return Logs(CloudWatchLogSource(client, groups), write_group)


def _put(client: Any, group: str, lines: list[dict[str, Any]], stream: str = "2026/01/18/[$LATEST]0123") -> None:
    for create in (
        lambda: client.create_log_group(logGroupName=group),
        lambda: client.create_log_stream(logGroupName=group, logStreamName=stream),
    ):
        try:
            create()
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
    events = [{"timestamp": _milliseconds(fields["timestamp"]), "message": json.dumps(fields)} for fields in lines]
    client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def _milliseconds(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def provisioning_story(logs: Logs) -> Logs:
    """One ITN and one failed provisioning run for TXN-123456, and a neighbour's step."""
    logs.write("itn", [line("itn", 1, "itn_received", transaction_id="TXN-123456")])
    logs.write(
        "provisioning",
        [
            line("provisioning", 2, "job_started", transaction_id="TXN-123456", attempt=1),
            line("provisioning", 3, "step_done", transaction_id="TXN-123456", step="tenant_record"),
            line("provisioning", 4, "step_done", transaction_id="TXN-999999", step="tenant_record"),
            line("provisioning", 5, "job_dead_lettered", "error", transaction_id="TXN-123456", error="smtp down"),
        ],
    )
    logs.write("app", [line("app", 6, "login_failed", email="user@example.com", error="an error happened")])
    return logs


def _events(events: list[Any]) -> list[tuple[str, str]]:
    return [(event.component, event.fields["event"]) for event in events]


# --- RB-001's searches ------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["TXN-123456", '"TXN-123456"'])
def test_rb001_4_1_a_transaction_search_finds_its_lines_in_every_log_oldest_first(
    provisioning_story: Logs, pattern: str
) -> None:
    events = provisioning_story.source.filter_events(pattern=pattern)

    assert _events(events) == [
        ("itn", "itn_received"),
        ("provisioning", "job_started"),
        ("provisioning", "step_done"),
        ("provisioning", "job_dead_lettered"),
    ]
    assert [event.timestamp for event in events] == [at(1), at(2), at(3), at(5)]
    assert all(json.loads(event.message) == event.fields for event in events)


def test_rb001_4_1_steps_2_and_3_search_one_function_log_each(provisioning_story: Logs) -> None:
    source = provisioning_story.source

    itn = source.filter_events(component="itn", pattern="TXN-123456")
    provisioning = source.filter_events(component="provisioning", pattern="TXN-123456")

    assert _events(itn) == [("itn", "itn_received")]
    assert _events(provisioning) == [
        ("provisioning", "job_started"),
        ("provisioning", "step_done"),
        ("provisioning", "job_dead_lettered"),
    ]


def test_rb001_3_2_error_finds_error_lines_only(provisioning_story: Logs) -> None:
    events = provisioning_story.source.filter_events(pattern="ERROR", start=at(0))

    # Terms are case-sensitive: the app line's "error" key and message are not ERROR.
    assert _events(events) == [("provisioning", "job_dead_lettered")]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ $.event = "step_done" }', [3, 4]),
        ('{ $.event = "step_done" && $.transaction_id = "TXN-123456" }', [3]),
        ('{ $.attempt >= 1 || $.severity = "ERROR" }', [2, 5]),
        ("step_done TXN-999999", [4]),
        ("TXN-123456 -ERROR", [1, 2, 3]),
        ("?itn_received ?job_started", [1, 2]),
        ("%TXN-9+%", [4]),
        ("-TXN", [6]),
    ],
)
def test_patterns_mean_the_same_on_both_backends(provisioning_story: Logs, pattern: str, expected: list[int]) -> None:
    events = provisioning_story.source.filter_events(pattern=pattern)

    assert [event.timestamp for event in events] == [at(minute) for minute in expected]


# --- time window, limit, order ----------------------------------------------------------------


def test_the_time_window_includes_both_ends(provisioning_story: Logs) -> None:
    source = provisioning_story.source

    window = source.filter_events(start=at(2), end=at(4))
    since = source.filter_events(start=at(5))
    until = source.filter_events(end=at(1))

    assert [event.timestamp for event in window] == [at(2), at(3), at(4)]
    assert [event.timestamp for event in since] == [at(5), at(6)]
    assert [event.timestamp for event in until] == [at(1)]
    assert source.filter_events(start=at(7)) == []
    assert source.filter_events(start=at(4), end=at(3)) == []


def test_the_limit_keeps_the_oldest_events_across_logs(logs: Logs) -> None:
    logs.write("itn", [line("itn", minute, "itn_received", n=minute) for minute in (1, 4, 7)])
    logs.write("provisioning", [line("provisioning", minute, "step_done", n=minute) for minute in (2, 3, 8)])
    logs.write("app", [line("app", minute, "login", n=minute) for minute in (0, 5)])

    everything = logs.source.filter_events()
    first_four = logs.source.filter_events(limit=4)

    assert [event.fields["n"] for event in everything] == [0, 1, 2, 3, 4, 5, 7, 8]
    assert [event.component for event in everything] == [
        "app", "itn", "provisioning", "provisioning", "itn", "app", "itn", "provisioning",
    ]  # fmt: skip
    assert first_four == everything[:4]
    assert logs.source.filter_events(limit=0) == []


def test_events_of_one_component_keep_the_order_they_were_logged_in(logs: Logs) -> None:
    # Two lines of the same instant (CloudWatch keeps milliseconds only) stay in logging order.
    logs.write("provisioning", [line("provisioning", 1, "first"), line("provisioning", 1, "second")])

    events = logs.source.filter_events(component="provisioning")

    assert [event.fields["event"] for event in events] == ["first", "second"]


# --- nothing, and nonsense --------------------------------------------------------------------


def test_nothing_logged_is_no_events(logs: Logs) -> None:
    assert logs.source.filter_events() == []
    assert logs.source.filter_events(component="app", pattern="ERROR") == []


def test_an_unknown_component_or_a_bad_pattern_is_refused(logs: Logs) -> None:
    with pytest.raises(InvalidInputError, match="unknown log component 'payments'"):
        logs.source.filter_events(component="payments")
    with pytest.raises(InvalidInputError, match="filter pattern"):
        logs.source.filter_events(pattern='"open')
    with pytest.raises(InvalidInputError, match="filter pattern"):
        logs.source.filter_events(pattern="[ip, user, ...]")


# --- CloudWatch only --------------------------------------------------------------------------
# `aws_backend.services.logs` is the source as bootstrap wires it: the app's events are the
# provisioning function's.


@pytest.fixture
def logs_client(aws: AwsContext) -> Any:
    return aws.session.client("logs")


def test_cloudwatch_a_group_two_components_share_is_searched_once(
    aws: AwsContext, aws_backend: Backend, logs_client: Any
) -> None:
    _put(logs_client, aws.settings.log_group("provisioning"), [line("provisioning", 1, "step_done")])
    source = aws_backend.services.logs

    everything = source.filter_events()
    as_app = source.filter_events(component="app")

    assert _events(everything) == [("provisioning", "step_done")]
    assert _events(as_app) == [("app", "step_done")]


def test_cloudwatch_lines_that_are_not_json_are_kept_without_fields(
    aws: AwsContext, aws_backend: Backend, logs_client: Any
) -> None:
    group = aws.settings.log_group("provisioning")
    crash = "[ERROR] Runtime.ImportModuleError: Unable to import module 'tenancy.lambdas'"
    logs_client.create_log_stream(logGroupName=group, logStreamName="crash")
    logs_client.put_log_events(
        logGroupName=group,
        logStreamName="crash",
        logEvents=[
            {"timestamp": int(at(1).timestamp() * 1000), "message": "START RequestId: 8f5c Version: $LATEST"},
            {"timestamp": int(at(2).timestamp() * 1000), "message": crash},
        ],
    )
    source = aws_backend.services.logs

    [event] = source.filter_events(pattern="ERROR")

    assert (event.message, event.fields, event.timestamp) == (crash, {}, at(2))
    assert source.filter_events(pattern='{ $.event = "START" }') == []


def test_cloudwatch_a_group_never_created_has_no_events(logs_client: Any) -> None:
    source = CloudWatchLogSource(logs_client, {"provisioning": "/aws/lambda/never-deployed"})

    assert source.filter_events(component="provisioning", pattern="TXN-123456") == []


def test_cloudwatch_every_page_is_read(
    aws: AwsContext, aws_backend: Backend, logs_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudwatch_logs, "_MAX_PAGE", 3)
    _put(logs_client, aws.settings.log_group("itn-handler"), [line("itn", n, "itn_received", n=n) for n in range(10)])
    source = aws_backend.services.logs

    assert [event.fields["n"] for event in source.filter_events(component="itn")] == list(range(10))
    assert [event.fields["n"] for event in source.filter_events(component="itn", limit=7)] == list(range(7))


def test_cloudwatch_merges_the_streams_of_a_group_oldest_first(
    aws: AwsContext, aws_backend: Backend, logs_client: Any
) -> None:
    # Each Lambda container writes its own stream.
    group = aws.settings.log_group("provisioning")
    _put(logs_client, group, [line("provisioning", n, "step_done", n=n) for n in (1, 3, 5)], stream="container-a")
    _put(logs_client, group, [line("provisioning", n, "step_done", n=n) for n in (2, 4)], stream="container-b")
    source = aws_backend.services.logs

    assert [event.fields["n"] for event in source.filter_events(limit=3)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("pattern", "sent"),
    [
        ("TXN-123456", '"TXN-123456"'),  # RB-001 4.1, quoted as CloudWatch wants `-` quoted
        ('"TXN-123456"', '"TXN-123456"'),
        ("ERROR TXN-123456", '"TXN-123456"'),
        ("ERROR", '"ERROR"'),
        ("TXN-123456 -ERROR", None),  # exclusions, alternatives, regexes and JSON: matched here
        ("?ERROR ?WARNING", None),
        ("%TXN-[0-9]+%", None),
        ('{ $.event = "step_done" }', None),
        (None, None),
    ],
)
def test_cloudwatch_narrows_by_plain_terms_only(
    aws: AwsContext, logs_client: Any, pattern: str | None, sent: str | None
) -> None:
    requests: list[dict[str, Any]] = []
    logs_client.meta.events.register(
        "provide-client-params.logs.FilterLogEvents", lambda params, **_: requests.append(dict(params))
    )
    source = CloudWatchLogSource(logs_client, {"itn": aws.settings.log_group("itn-handler")})

    source.filter_events(pattern=pattern, start=at(0), end=at(1))

    [request] = requests
    assert request.get("filterPattern") == sent
    assert (request["startTime"], request["endTime"]) == (int(at(0).timestamp() * 1000), int(at(1).timestamp() * 1000))
