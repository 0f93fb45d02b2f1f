"""Reading many keys at once on SQLite: `column IN (...)` in chunks that stay well under SQLite's
limit on bound parameters, for the batched look-ups the weekly audit asks each store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from tenancy.adapters.local.database import Database

__all__ = ["CHUNK", "rows_where_in"]

# Bound parameters per statement: SQLite allows 32766 since 3.32, far fewer before.
CHUNK = 500


def rows_where_in(
    database: Database, select: str, column: str, values: Iterable[str], order_by: str = ""
) -> Iterator[sqlite3.Row]:
    """The rows of `select` (`SELECT ... FROM table`, the caller's fixed SQL) whose `column` is one
    of `values`, chunk by chunk (each chunk in `order_by` order when given)."""
    distinct = list(dict.fromkeys(values))
    order = f" ORDER BY {order_by}" if order_by else ""
    for start in range(0, len(distinct), CHUNK):
        chunk = distinct[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        yield from database.read(f"{select} WHERE {column} IN ({marks}){order}", tuple(chunk))
