"""What the embedded backend asks SQLite on the busiest paths (an ITN received, its job worked)
reads by an index: no statement scans a whole table, so the cost of each ITN does not grow with
the number of purchases or with the backlog of queued jobs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tenancy.bootstrap import Services, build

from helpers import make_settings, pay, work


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline"))
    yield built
    built.close()


@contextmanager
def statements_of(services: Services) -> Iterator[list[str]]:
    """Every statement this thread's connection runs inside the block, with its values."""
    assert services.database is not None
    connection = services.database.connection()
    seen: list[str] = []
    connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        connection.set_trace_callback(None)


def full_scans(services: Services, statements: list[str]) -> list[tuple[str, str]]:
    """The reads among `statements` whose plan scans a whole table, each with that plan step."""
    assert services.database is not None
    reader = sqlite3.connect(services.database.path)
    try:
        found = []
        for statement in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            for row in reader.execute(f"EXPLAIN QUERY PLAN {statement}"):
                if row[3].startswith("SCAN "):
                    found.append((" ".join(statement.split())[:160], row[3]))
        return found
    finally:
        reader.close()


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(lambda services: pay(services), id="an ITN received"),
        pytest.param(lambda services: (pay(services), work(services)), id="its job worked"),
    ],
)
def test_the_busiest_paths_read_by_index(services: Services, step: Callable[[Services], object]) -> None:
    for _ in range(3):  # a few purchases and a backlog of queued jobs already there
        pay(services)

    with statements_of(services) as statements:
        step(services)

    assert any(statement.startswith("SELECT") for statement in statements)
    assert full_scans(services, statements) == []
