"""PayFast's subscription API simulated on the embedded SQLite database, for offline mode.

`make run` without a PayFast account still needs subscriptions to fetch, pause and cancel: the
simulator's checkout `register`s each token it mints and `charge`s it at every renewal it plays,
while the server and the CLI (separate processes) call the `SubscriptionApi` methods. The state
lives in one table of the shared database, so every process sees the same subscriptions.

It answers as PayFast does (payfast-subscriptions.md): NotFoundError for an unknown token,
PermanentError for a change PayFast refuses, and a second cancel is a success.
"""

from __future__ import annotations

import sqlite3
from datetime import date

from tenancy.adapters.local.database import Database
from tenancy.domain.billing import Frequency, PayfastSubscription, add_months
from tenancy.errors import InvalidInputError, ItemAlreadyExistsError, NotFoundError, PermanentError

__all__ = ["SimulatedSubscriptionApi"]

ACTIVE, PAUSED, CANCELLED = "ACTIVE", "PAUSED", "CANCELLED"

# `run_date` is what fetch reports; it is always derived as anchor_date + periods_since_anchor
# periods, never by adding a period to the last run_date, so the 31st does not drift to the
# 28th after February (the same rule as domain.billing.Subscription.paid_through).


def _subscription(row: sqlite3.Row) -> PayfastSubscription:
    return PayfastSubscription(
        token=row["token"],
        status_text=row["status_text"],
        amount_cents=row["amount_cents"],
        frequency=row["frequency"],
        cycles=row["cycles"],
        cycles_complete=row["cycles_complete"],
        run_date=row["run_date"],
    )


def _frequency(value: int) -> Frequency:
    try:
        return Frequency(value)
    except ValueError:
        raise InvalidInputError(f"frequency must be one of 3, 4, 5, 6, not {value!r}") from None


def _day(value: date | str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"run_date must be YYYY-MM-DD, not {value!r}") from None


def _count(name: str, value: int, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return value


def _run_date(anchor: str, periods: int, frequency: int) -> str:
    return add_months(date.fromisoformat(anchor), periods * Frequency(frequency).months).isoformat()


class SimulatedSubscriptionApi:
    """The `SubscriptionApi` port answered from the `simulated_subscriptions` table."""

    def __init__(self, database: Database) -> None:
        # Its table is the database's own (schema.SIMULATOR_SCHEMA): a process that builds the
        # simulator late (the first billing step) writes nothing to do so.
        self._database = database

    def register(self, token: str, amount_cents: int, frequency: int, run_date: date | str, *, cycles: int = 0) -> None:
        """A new ACTIVE subscription whose next charge is on `run_date` (none complete yet). The same
        token registered again alike changes nothing; registered with other terms, it raises
        ItemAlreadyExistsError (a token names one subscription for good)."""
        terms = (
            _count("amount_cents", amount_cents, minimum=1),
            int(_frequency(frequency)),
            _count("cycles", cycles, minimum=0),
            _day(run_date).isoformat(),
        )
        with self._database.transaction() as connection:
            connection.execute(
                "INSERT INTO simulated_subscriptions (token, amount_cents, frequency, cycles, run_date,"
                " status_text, anchor_date) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token) DO NOTHING",
                (token, *terms, ACTIVE, terms[3]),
            )
            row = connection.execute(
                "SELECT amount_cents, frequency, cycles, anchor_date FROM simulated_subscriptions WHERE token = ?",
                (token,),
            ).fetchone()
        if tuple(row) != terms:
            raise ItemAlreadyExistsError(f"simulated subscription {token!r} exists with other terms")

    def charge(self, token: str) -> PayfastSubscription:
        """A renewal PayFast made: one more cycle complete and the next charge one period on. A paused
        subscription charged again is running again (its skipped cycles have passed); the last of
        a limited number of cycles cancels it, as PayFast does. Returns the state after it."""
        with self._database.transaction() as connection:
            row = self._row(connection, token)
            if row["status_text"] == CANCELLED:
                raise PermanentError(f"simulated subscription {token!r} is cancelled; it is not charged")
            complete = row["cycles_complete"] + 1
            finished = row["cycles"] > 0 and complete >= row["cycles"]
            periods = row["periods_since_anchor"] + 1
            connection.execute(
                "UPDATE simulated_subscriptions SET cycles_complete = ?, periods_since_anchor = ?, run_date = ?,"
                " status_text = ? WHERE token = ?",
                (
                    complete,
                    periods,
                    _run_date(row["anchor_date"], periods, row["frequency"]),
                    CANCELLED if finished else ACTIVE,
                    token,
                ),
            )
        return self.fetch(token)

    def fetch(self, token: str) -> PayfastSubscription:
        rows = self._database.read("SELECT * FROM simulated_subscriptions WHERE token = ?", (token,))
        if not rows:
            raise NotFoundError(f"PayFast knows no subscription {token!r}")
        return _subscription(rows[0])

    def pause(self, token: str, cycles: int = 1) -> None:
        """Skips the next `cycles` charges: PAUSED, the next charge `cycles` periods later."""
        _count("cycles", cycles, minimum=1)
        with self._database.transaction() as connection:
            row = self._changeable(connection, token, "pause")
            if row["status_text"] == PAUSED:
                raise PermanentError(f"PayFast refused pause of {token!r}: the subscription is already paused")
            periods = row["periods_since_anchor"] + cycles
            connection.execute(
                "UPDATE simulated_subscriptions SET status_text = ?, periods_since_anchor = ?, run_date = ?"
                " WHERE token = ?",
                (PAUSED, periods, _run_date(row["anchor_date"], periods, row["frequency"]), token),
            )

    def unpause(self, token: str) -> None:
        """ACTIVE again, the next charge where the pause left it."""
        with self._database.transaction() as connection:
            row = self._changeable(connection, token, "unpause")
            if row["status_text"] != PAUSED:
                raise PermanentError(f"PayFast refused unpause of {token!r}: the subscription is not paused")
            connection.execute("UPDATE simulated_subscriptions SET status_text = ? WHERE token = ?", (ACTIVE, token))

    def cancel(self, token: str) -> None:
        with self._database.transaction() as connection:
            row = self._row(connection, token)
            # PayFast answers a second cancel with a refusal that the port counts as success.
            if row["status_text"] != CANCELLED:
                connection.execute(
                    "UPDATE simulated_subscriptions SET status_text = ? WHERE token = ?", (CANCELLED, token)
                )

    def update(
        self,
        token: str,
        *,
        amount_cents: int | None = None,
        frequency: int | None = None,
        run_date: str | None = None,
        cycles: int | None = None,
    ) -> None:
        """Changes what is given from the next charge. A new run_date or frequency re-anchors the
        schedule there (at the current run_date when only the frequency changes)."""
        new_amount = None if amount_cents is None else _count("amount_cents", amount_cents, minimum=1)
        new_frequency = None if frequency is None else int(_frequency(frequency))
        new_run_date = None if run_date is None else _day(run_date).isoformat()
        new_cycles = None if cycles is None else _count("cycles", cycles, minimum=0)
        if all(value is None for value in (new_amount, new_frequency, new_run_date, new_cycles)):
            return
        with self._database.transaction() as connection:
            row = self._changeable(connection, token, "update")
            anchor, periods = row["anchor_date"], row["periods_since_anchor"]
            if new_run_date is not None or new_frequency is not None:
                anchor, periods = new_run_date or row["run_date"], 0
            frequency_after = row["frequency"] if new_frequency is None else new_frequency
            connection.execute(
                "UPDATE simulated_subscriptions SET amount_cents = ?, frequency = ?, cycles = ?, run_date = ?,"
                " anchor_date = ?, periods_since_anchor = ? WHERE token = ?",
                (
                    row["amount_cents"] if new_amount is None else new_amount,
                    frequency_after,
                    row["cycles"] if new_cycles is None else new_cycles,
                    _run_date(anchor, periods, frequency_after),
                    anchor,
                    periods,
                    token,
                ),
            )

    def close(self) -> None:
        """Nothing of its own to release: the database belongs to the caller."""

    @staticmethod
    def _row(connection: sqlite3.Connection, token: str) -> sqlite3.Row:
        row: sqlite3.Row | None = connection.execute(
            "SELECT * FROM simulated_subscriptions WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"PayFast knows no subscription {token!r}")
        return row

    def _changeable(self, connection: sqlite3.Connection, token: str, call: str) -> sqlite3.Row:
        """The row, unless the subscription is cancelled: PayFast refuses to change those."""
        row = self._row(connection, token)
        if row["status_text"] == CANCELLED:
            raise PermanentError(f"PayFast refused {call} of {token!r}: the subscription is cancelled")
        return row
