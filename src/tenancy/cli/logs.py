"""`tenancy logs`: RB-001's `aws logs filter-log-events` searches, run against this backend's logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tenancy.cli.common import JsonOption, fail, print_json, services_for
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.durations import parse_duration
from tenancy.domain.model import LogComponent, LogEvent
from tenancy.domain.plurals import plural
from tenancy.errors import InvalidInputError

__all__ = ["parse_since", "register"]

# Shown in their own columns, or only noise on a line a human reads.
_COLUMNS = frozenset({"timestamp", "level", "severity", "component", "logger", "event", "transaction_id"})


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)


def parse_since(text: str, now: datetime) -> datetime:
    """The start of the search: a duration before `now` (`30m`, `1h`, `7d`, `1h30m`) or an
    ISO-8601 time. Raises InvalidInputError for anything else."""
    cleaned = text.strip()
    try:
        return parse_timestamp(cleaned)
    except ValueError:
        pass
    duration = parse_duration(cleaned, what="--since")
    try:
        return now - duration
    except OverflowError:
        raise InvalidInputError(f"--since {cleaned} is too far back") from None


def logs(
    pattern: Annotated[
        str | None,
        typer.Option("--filter", help='A CloudWatch filter pattern: TXN-123456, ERROR, { $.event = "step_done" }.'),
    ] = None,
    since: Annotated[str, typer.Option(help="How far back: 30m, 1h, 7d, or an ISO-8601 time.")] = "1h",
    component: Annotated[
        LogComponent | None, typer.Option(help="Only this log (itn, provisioning or app); default all.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many events, oldest first.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Search what every process logged, like `aws logs filter-log-events` (RB-001 3.2, 4.1)."""
    with services_for() as services:
        try:
            start = parse_since(since, services.clock.now())
            events = services.logs.filter_events(
                component=component.value if component else None, pattern=pattern, start=start, end=None, limit=limit
            )
        except InvalidInputError as error:
            fail(str(error), 2)
    if as_json:
        print_json([_document(event) for event in events])
    else:
        for event in events:
            typer.echo(_line(event))
        if not events:
            typer.echo(f"no events matched since {_time(start)}", err=True)
    if len(events) == limit:
        shown = plural(limit, "event")
        typer.echo(f"showing the first {shown}; narrow --since or --filter, or raise --limit", err=True)


def _document(event: LogEvent) -> dict[str, Any]:
    return {
        "timestamp": _time(event.timestamp),
        "component": event.component,
        "fields": event.fields,
        "message": event.message,
    }


def _line(event: LogEvent) -> str:
    fields = event.fields
    others = " ".join(f"{key}={_value(value)}" for key, value in fields.items() if key not in _COLUMNS)
    columns = [
        _time(event.timestamp),
        f"{event.component:<12}",
        f"{fields.get('level', '-')!s:<7}",
        str(fields.get("event", "-")),
        str(fields.get("transaction_id", "-")),
        others,
    ]
    return " ".join(column for column in columns if column)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _value(value: object) -> str:
    # One event, one line: anything with spaces, quotes or newlines (a traceback) is JSON-quoted.
    if isinstance(value, str) and value and not any(character.isspace() or character == '"' for character in value):
        return value
    return json.dumps(value, default=str)
