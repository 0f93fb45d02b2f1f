"""Rate-limit counters on SQLite, shared by every process that opens the same database file."""

from __future__ import annotations

from tenancy.adapters.local.database import Database
from tenancy.ports import Clock

__all__ = ["SqliteRateLimiter"]


class SqliteRateLimiter:
    def __init__(self, database: Database, *, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def hit(self, key: str, *, window_seconds: int) -> int:
        window = self._window(window_seconds)
        with self._database.transaction() as connection:
            # Earlier windows of this key are finished with: keep the table small as we go.
            connection.execute("DELETE FROM rate_counters WHERE counter_key = ? AND window < ?", (key, window))
            row = connection.execute(
                "INSERT INTO rate_counters (counter_key, window, count) VALUES (?, ?, 1)"
                " ON CONFLICT (counter_key, window) DO UPDATE SET count = count + 1 RETURNING count",
                (key, window),
            ).fetchone()
        return int(row[0])

    def count(self, key: str, *, window_seconds: int) -> int:
        rows = self._database.read(
            "SELECT count FROM rate_counters WHERE counter_key = ? AND window = ?", (key, self._window(window_seconds))
        )
        return int(rows[0][0]) if rows else 0

    def reset(self, key: str, *, window_seconds: int) -> None:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM rate_counters WHERE counter_key = ?", (key,))

    def release(self, key: str, *, window_seconds: int) -> None:
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE rate_counters SET count = count - 1 WHERE counter_key = ? AND window = ? AND count > 0",
                (key, self._window(window_seconds)),
            )

    def _window(self, window_seconds: int) -> int:
        return int(self._clock.now().timestamp() // window_seconds)
