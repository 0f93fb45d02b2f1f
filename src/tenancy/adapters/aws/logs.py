"""The LogSource port on CloudWatch Logs: RB-001's `aws logs filter-log-events` over the functions'
log groups, answering exactly as the embedded backend's log files do.

CloudWatch narrows by time and, for plain terms, by pattern; every event it returns is checked
again with the project's own matcher (runbook/log_filter.py), so both backends agree on what a
pattern means even where CloudWatch's reading differs at the edges.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tenancy.adapters.aws._errors import aws_errors
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import LogEvent
from tenancy.errors import InvalidInputError, NotFoundError
from tenancy.runbook.log_filter import FilterPattern, parse_filter_pattern

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import FilteredLogEventTypeDef, FilterLogEventsRequestTypeDef

__all__ = ["CloudWatchLogSource"]

_MAX_PAGE = 10_000  # FilterLogEvents' largest `limit`
# A bare term CloudWatch and the matcher read alike: no operator prefix (?, -), no quotes or
# regex, nothing that starts a JSON or space-delimited pattern.
_PLAIN_TERM = re.compile(r'[^\s"\\?\-%{\[][^\s"\\]*')
_QUOTED_PHRASE = re.compile(r'"([^"\\]+)"')


class CloudWatchLogSource:
    """Searches one log group per component (`log_groups`: LogComponent value -> group name).

    Components may share a group (on AWS the "app" events are the provisioning function's): a
    search over every component reads each group once, and labels its events with the first
    component that names it. A group that does not exist (nothing logged yet) has no events.
    Lines that are not JSON (Lambda's own START/END/REPORT lines, a runtime's crash report)
    are kept, with no fields and CloudWatch's timestamp, so `ERROR` finds a crashed import too.
    """

    def __init__(self, client: CloudWatchLogsClient, log_groups: Mapping[str, str]) -> None:
        self._client = client
        self._log_groups = dict(log_groups)

    def filter_events(
        self,
        *,
        component: str | None = None,
        pattern: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[LogEvent]:
        groups = self._groups(component)
        matcher = parse_filter_pattern(pattern)
        if limit <= 0:
            return []
        server_pattern = _server_side_pattern(pattern)
        found: list[LogEvent] = []
        for name, group in groups:
            kept: list[LogEvent] = []
            for event in self._read(name, group, server_pattern, start, end):
                if _within(event.timestamp, start, end) and _matches(matcher, event):
                    kept.append(event)
                    # Pages come oldest first, so this group's first `limit` are all it can add.
                    if len(kept) >= limit:
                        break
            found.extend(kept)
        # Stable: events of the same instant keep the order CloudWatch returned them in.
        found.sort(key=lambda event: event.timestamp)
        return found[:limit]

    def _groups(self, component: str | None) -> list[tuple[str, str]]:
        """(component, log group) pairs to search, each group once."""
        if component is None:
            first_for_group: dict[str, str] = {}
            for name, group in self._log_groups.items():
                first_for_group.setdefault(group, name)
            return [(name, group) for group, name in first_for_group.items()]
        if component not in self._log_groups:
            known = ", ".join(self._log_groups)
            raise InvalidInputError(f"unknown log component {component!r} (known: {known})")
        return [(component, self._log_groups[component])]

    def _read(
        self, component: str, group: str, server_pattern: str | None, start: datetime | None, end: datetime | None
    ) -> Iterator[LogEvent]:
        # `interleaved`: CloudWatch has merged every stream (each Lambda container's) oldest first
        # since 2019 whatever it says; moto merges only when asked, and the early stop in
        # filter_events relies on the merge.
        request: FilterLogEventsRequestTypeDef = {"logGroupName": group, "limit": _MAX_PAGE, "interleaved": True}
        if server_pattern is not None:
            request["filterPattern"] = server_pattern
        # Milliseconds, widened outward: the exact bounds are checked on each event.
        if start is not None:
            request["startTime"] = math.floor(start.timestamp() * 1000)
        if end is not None:
            request["endTime"] = math.ceil(end.timestamp() * 1000)
        while True:
            try:
                with aws_errors(f"searching log group {group}"):
                    page = self._client.filter_log_events(**request)
            except NotFoundError:
                return  # the group was never created: nothing was logged there
            for raw in page.get("events", []):
                yield _event(component, raw)
            token = page.get("nextToken")
            if not token:
                return
            request["nextToken"] = token


def _server_side_pattern(pattern: str | None) -> str | None:
    """A pattern CloudWatch (and moto) can narrow with, returning a superset of what `pattern`
    matches: one of its required terms, as a quoted phrase. None: let every event in the time
    window through and leave the matching to the matcher.

    One term only, because moto reads only a single quoted phrase; quoted, because CloudWatch
    wants terms with characters like `-` (TXN-123456) quoted. JSON patterns stay local: the
    matcher is looser in places (`{ $.attempt = "3" }` matches the number 3), and narrowing
    must never drop a line the matcher would keep.
    """
    text = (pattern or "").strip()
    quoted = _QUOTED_PHRASE.fullmatch(text)
    if quoted is not None:
        return text if quoted[1].strip() else None
    terms = text.split()
    if not terms or not all(_PLAIN_TERM.fullmatch(term) for term in terms):
        return None
    # The longest term is likely the rarest: it narrows the most.
    return f'"{max(terms, key=len)}"'


def _within(timestamp: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or timestamp >= start) and (end is None or timestamp <= end)


def _event(component: str, raw: FilteredLogEventTypeDef) -> LogEvent:
    message = raw.get("message", "")
    fields = _fields(message)
    return LogEvent(
        timestamp=_timestamp(fields, raw.get("timestamp", 0)),
        component=component,
        message=message,
        fields=fields,
    )


def _fields(message: str) -> dict[str, Any]:
    try:
        parsed = json.loads(message)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _timestamp(fields: Mapping[str, object], milliseconds: int) -> datetime:
    """When the process logged it, to the microsecond, as the embedded backend reads it; for a
    line without its own time, when CloudWatch received it."""
    logged = fields.get("timestamp")
    if isinstance(logged, str):
        try:
            return parse_timestamp(logged)
        except ValueError:
            pass
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def _matches(matcher: FilterPattern, event: LogEvent) -> bool:
    # No fields (a line that is not a JSON object): the matcher reads the raw line itself.
    return matcher.matches(event.message, event.fields or None)
