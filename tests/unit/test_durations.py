"""Durations as operators type them, shared by audit --since, logs --since and alerts --every."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tenancy.domain.durations import parse_duration
from tenancy.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("24H", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations_read_units_and_sums(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_a_bare_number_counts_in_the_bare_unit_when_one_is_given() -> None:
    assert parse_duration("90", bare_unit="s") == timedelta(seconds=90)
    with pytest.raises(InvalidInputError):
        parse_duration("90")


@pytest.mark.parametrize("text", ["", "d", "7y", "-7d", "1.5d", "0m", "7d ago", "999999999999w"])
def test_anything_else_is_refused_in_one_line_naming_the_option(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--since") as raised:
        parse_duration(text, what="--since")
    assert "\n" not in str(raised.value)
