"""The embedded backend's SQLite database: one file, WAL mode, a connection per thread.

Writers take the lock up front (`BEGIN IMMEDIATE`) and keep transactions short, so
several processes (server, workers) share the file without "database is locked".

The file holds password hashes and every customer's email, so only its owner may read it: it is
created 0600 (in a 0700 directory when the app makes that too) before SQLite first opens it, and
SQLite gives the -wal and -shm files it makes the database file's mode. Older, looser files are
tightened when opened.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tenancy.adapters.local.schema import (
    ADDED_COLUMNS,
    FINDINGS_SCHEMA,
    LIFECYCLE_SCHEMA,
    SCHEMA,
    SIMULATOR_SCHEMA,
    SUBSCRIPTIONS_SCHEMA,
    TALLY_BACKFILL,
    TALLY_SCHEMA,
    TEAM_SCHEMA,
    USAGE_SCHEMA,
)
from tenancy.errors import PermanentError, TransientError
from tenancy.private_files import create_private_file, private_directory, tighten

__all__ = ["Database", "counted_since", "hourly_series", "storage_error"]

_BUSY_TIMEOUT_MS = 15_000
# The files SQLite keeps beside the database, which carry its data too.
_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")


def storage_error(error: sqlite3.OperationalError, doing: str) -> TransientError | PermanentError:
    """A lock or busy database may pass; anything else (a missing table, a full disk) will not."""
    message = str(error)
    if "locked" in message or "busy" in message:
        return TransientError(f"database busy while {doing}")
    return PermanentError(f"database error while {doing}: {message}")


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _add_tallies(connection: sqlite3.Connection) -> None:
    """The tallies and the triggers that keep them; counted from the rows when first added."""
    existing = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for statement in TALLY_SCHEMA:
        connection.execute(statement)
    for table, statements in TALLY_BACKFILL.items():
        if table not in existing:
            for statement in statements:
                connection.execute(statement)


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # This process's writers queue here, in turn, rather than in SQLite's busy handler, which
        # sleeps and retries (up to 100 ms a time) and so lets a burst of concurrent writers
        # starve one of them for seconds. Other processes still meet at SQLite's lock.
        self._write_lock = threading.Lock()
        # TEST-ONLY (tenancy.faults): called before each write transaction begins; may raise
        # sqlite3.OperationalError as a busy database would. None in every real run.
        self.before_write: Callable[[], None] | None = None
        # The directory is TENANCY_HOME, or one a caller chose: made private if it is made here.
        private_directory(path.parent, tighten_existing=False)
        # Created before SQLite opens it (an empty file is an empty database), so no byte of it is
        # ever written to a file others may read; SQLite copies this mode to its -wal and -shm.
        create_private_file(path)
        for suffix in _COMPANION_SUFFIXES:
            tighten(path.with_name(path.name + suffix))
        self._create_schema()

    def _create_schema(self) -> None:
        with self.transaction() as connection:
            schema = (
                *SCHEMA,
                *FINDINGS_SCHEMA,
                *SUBSCRIPTIONS_SCHEMA,
                *LIFECYCLE_SCHEMA,
                *USAGE_SCHEMA,
                *TEAM_SCHEMA,
                *SIMULATOR_SCHEMA,
            )
            for statement in schema:
                connection.execute(statement)
            _add_missing_columns(connection)
            _add_tallies(connection)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; transactions are explicit)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
            )
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        if getattr(self._local, "writing", False):
            # SQLite refuses a transaction inside another; waiting on our own lock would hang.
            raise PermanentError("a write transaction was started inside another")
        with self._write_lock:
            self._local.writing = True
            try:
                with self._write_transaction() as connection:
                    yield connection
            finally:
                self._local.writing = False

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self.connection()
        try:
            if self.before_write is not None:
                self.before_write()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise storage_error(error, "starting a transaction") from None
        try:
            yield connection
        except sqlite3.OperationalError as error:
            connection.execute("ROLLBACK")
            raise storage_error(error, "writing") from None
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        else:
            try:
                connection.execute("COMMIT")
            except sqlite3.OperationalError as error:
                connection.execute("ROLLBACK")
                raise storage_error(error, "committing") from None

    def read(self, sql: str, parameters: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self.connection().execute(sql, parameters).fetchall()
        except sqlite3.OperationalError as error:
            raise storage_error(error, "reading") from None

    def scan(
        self, table: str, key: str, batch_size: int, where: str = "", parameters: tuple[object, ...] = ()
    ) -> Iterator[list[sqlite3.Row]]:
        """Every row of `table` in `key` order, a batch at a time (keyset pagination: each batch is
        one indexed range read, however large the table). `table`, `key` and `where` are the
        caller's fixed SQL, never user input."""
        condition = f"({where}) AND " if where else ""
        last: object = None
        while True:
            if last is None:
                sql = f"SELECT * FROM {table} {'WHERE ' + where if where else ''} ORDER BY {key} LIMIT ?"  # noqa: S608
                rows = self.read(sql, (*parameters, batch_size))
            else:
                sql = f"SELECT * FROM {table} WHERE {condition}{key} > ? ORDER BY {key} LIMIT ?"  # noqa: S608
                rows = self.read(sql, (*parameters, last, batch_size))
            if not rows:
                return
            yield rows
            last = rows[-1][key]

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


def hourly_series(database: Database, series: str, since: str) -> dict[str, int]:
    """A series of the `minutely` tally (schema.TALLY_SCHEMA) by the hour, from `since`'s hour on."""
    rows = database.read(
        "SELECT substr(minute, 1, 13) AS hour, SUM(count) AS count FROM minutely"
        " WHERE series = ? AND minute >= ? GROUP BY hour HAVING SUM(count) > 0 ORDER BY hour",
        (series, since[:13]),
    )
    return {row["hour"]: row["count"] for row in rows}


def counted_since(
    database: Database, series: str, since: str, first_minute_sql: str, parameters: tuple[object, ...]
) -> int:
    """How many rows of a `minutely` series have a timestamp at or after `since`: the whole minutes
    after `since`'s from the tally, plus the rows of `since`'s own minute counted by
    `first_minute_sql` (the caller's fixed SQL, with `parameters` then the minute's bounds: at or
    after `since`, before the next minute). A window then costs the minutes it spans, whatever
    the rows in it."""
    minute = since[:16]
    whole = database.read(
        "SELECT COALESCE(SUM(count), 0) FROM minutely WHERE series = ? AND minute > ?", (series, minute)
    )[0][0]
    # Every timestamp of the minute sorts before `<minute>;` (";" follows ":" in ASCII).
    partial = database.read(first_minute_sql, (*parameters, since, minute + ";"))[0][0]
    return int(whole) + int(partial)
