"""The embedded backend's logs: the JSON-lines files under TENANCY_HOME/logs (one per component,
written by `logging_setup`), searched the way CloudWatch Logs' FilterLogEvents searches log groups."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import LogComponent, LogEvent
from tenancy.errors import InvalidInputError
from tenancy.runbook.log_filter import parse_filter_pattern

__all__ = ["FileLogSource"]


class FileLogSource:
    """Reads `<component>.log` files in one directory (a missing file is an empty log)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def filter_events(
        self,
        *,
        component: str | None = None,
        pattern: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[LogEvent]:
        components = _components(component)
        matcher = parse_filter_pattern(pattern)
        found = [
            event
            for name in components
            for event in self._read(name)
            if (start is None or event.timestamp >= start)
            and (end is None or event.timestamp <= end)
            and matcher.matches(event.message, event.fields)
        ]
        # Stable: events logged in the same microsecond keep their order in the file.
        found.sort(key=lambda event: event.timestamp)
        return found[: max(limit, 0)]

    def _read(self, component: LogComponent) -> Iterator[LogEvent]:
        path = self.directory / f"{component.value}.log"
        try:
            with path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    event = _event(component, line.rstrip("\n"))
                    if event is not None:
                        yield event
        except FileNotFoundError:
            return


def _components(component: str | None) -> tuple[LogComponent, ...]:
    if component is None:
        return tuple(LogComponent)
    try:
        return (LogComponent(component),)
    except ValueError:
        known = ", ".join(member.value for member in LogComponent)
        raise InvalidInputError(f"unknown log component {component!r} (known: {known})") from None


def _event(component: LogComponent, message: str) -> LogEvent | None:
    """The line as an event; None for a line that cannot be placed in time (a write cut short
    by a crash, or a line some other program put there)."""
    try:
        fields = json.loads(message)
    except ValueError:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("timestamp"), str):
        return None
    try:
        timestamp = parse_timestamp(fields["timestamp"])
    except ValueError:
        return None
    return LogEvent(timestamp=timestamp, component=component.value, message=message, fields=fields)
