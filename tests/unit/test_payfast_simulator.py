"""The SubscriptionApi contract, run against the offline simulator and against the HTTP client
talking to the stand-in of PayFast: both must answer alike. Then the simulator's own `register`
and `charge`, which offline mode's checkout and renewals call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenancy.adapters.local.database import Database
from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.adapters.payfast_api import HttpSubscriptionApi
from tenancy.errors import InvalidInputError, ItemAlreadyExistsError, NotFoundError, PermanentError
from tenancy.ports import SubscriptionApi

from payfast_api_standin import running_payfast_api

TOKEN = "7b3c1a52-91f0-4b7e-a3c1-0d5e6f708192"


@dataclass
class Backend:
    api: SubscriptionApi
    # Creates an ACTIVE subscription with no charge complete: (token, amount_cents, frequency, run_date).
    seed: Callable[[str, int, int, str], None]


@pytest.fixture(params=["simulator", "http"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "simulator":
        database = Database(tmp_path / "tenancy.db")
        simulator = SimulatedSubscriptionApi(database)
        yield Backend(simulator, simulator.register)
        database.close()
        return
    with running_payfast_api(merchant_id="10000100", passphrase="jt7NOE43FZPn") as standin:

        def seed(token: str, amount_cents: int, frequency: int, run_date: str) -> None:
            standin.add(token, amount=amount_cents, frequency=frequency, run_date=run_date)

        client = HttpSubscriptionApi(
            merchant_id="10000100", passphrase="jt7NOE43FZPn", base_url=standin.url, sandbox=True, sleep=lambda _: None
        )
        yield Backend(client, seed)
        client.close()


def test_fetch_reports_a_new_subscription_active_with_its_terms(backend: Backend) -> None:
    backend.seed(TOKEN, 29900, 3, "2027-01-06")
    found = backend.api.fetch(TOKEN)
    assert (found.token, found.status_text, found.amount_cents, found.frequency) == (TOKEN, "ACTIVE", 29900, 3)
    assert (found.cycles, found.cycles_complete, found.run_date) == (0, 0, "2027-01-06")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda api: api.fetch("unknown"), id="fetch"),
        pytest.param(lambda api: api.pause("unknown"), id="pause"),
        pytest.param(lambda api: api.unpause("unknown"), id="unpause"),
        pytest.param(lambda api: api.cancel("unknown"), id="cancel"),
        pytest.param(lambda api: api.update("unknown", amount_cents=100), id="update"),
    ],
)
def test_an_unknown_token_is_not_found(backend: Backend, call: Callable[[SubscriptionApi], object]) -> None:
    with pytest.raises(NotFoundError):
        call(backend.api)


def test_cancel_twice_is_fine_and_leaves_it_cancelled(backend: Backend) -> None:
    backend.seed(TOKEN, 29900, 3, "2027-01-06")
    backend.api.cancel(TOKEN)
    backend.api.cancel(TOKEN)
    assert backend.api.fetch(TOKEN).status_text == "CANCELLED"


def test_pause_skips_charges_and_unpause_resumes(backend: Backend) -> None:
    backend.seed(TOKEN, 29900, 3, "2027-01-06")
    backend.api.pause(TOKEN, cycles=2)
    paused = backend.api.fetch(TOKEN)
    assert (paused.status_text, paused.run_date) == ("PAUSED", "2027-03-06")

    backend.api.unpause(TOKEN)
    resumed = backend.api.fetch(TOKEN)
    assert (resumed.status_text, resumed.run_date) == ("ACTIVE", "2027-03-06")


def test_pausing_a_paused_or_unpausing_an_active_subscription_is_refused(backend: Backend) -> None:
    backend.seed(TOKEN, 29900, 3, "2027-01-06")
    with pytest.raises(PermanentError, match="not paused"):
        backend.api.unpause(TOKEN)
    backend.api.pause(TOKEN)
    with pytest.raises(PermanentError, match="already paused"):
        backend.api.pause(TOKEN)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda api: api.pause(TOKEN), id="pause"),
        pytest.param(lambda api: api.unpause(TOKEN), id="unpause"),
        pytest.param(lambda api: api.update(TOKEN, amount_cents=100), id="update"),
    ],
)
def test_a_cancelled_subscription_cannot_be_changed(
    backend: Backend, call: Callable[[SubscriptionApi], object]
) -> None:
    backend.seed(TOKEN, 29900, 3, "2027-01-06")
    backend.api.cancel(TOKEN)
    with pytest.raises(PermanentError, match="cancelled"):
        call(backend.api)
    assert backend.api.fetch(TOKEN).amount_cents == 29900


def test_update_changes_only_what_is_given(backend: Backend) -> None:
    backend.seed(TOKEN, 29900, 3, "2027-01-06")
    backend.api.update(TOKEN, amount_cents=49900)
    after_amount = backend.api.fetch(TOKEN)
    assert (after_amount.amount_cents, after_amount.frequency, after_amount.run_date) == (49900, 3, "2027-01-06")

    backend.api.update(TOKEN, frequency=6, run_date="2027-02-01", cycles=4)
    after_all = backend.api.fetch(TOKEN)
    assert (after_all.amount_cents, after_all.frequency, after_all.run_date, after_all.cycles) == (
        49900,
        6,
        "2027-02-01",
        4,
    )


# The simulator's own calls (offline mode's checkout and renewals).


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[SimulatedSubscriptionApi]:
    database = Database(tmp_path / "tenancy.db")
    yield SimulatedSubscriptionApi(database)
    database.close()


def test_each_charge_completes_a_cycle_and_moves_the_run_date_without_drift(
    simulator: SimulatedSubscriptionApi,
) -> None:
    simulator.register(TOKEN, 29900, 3, "2027-01-31")
    run_dates = [simulator.charge(TOKEN).run_date for _ in range(3)]
    # From the anchor, not from the last date: the 31st comes back after February.
    assert run_dates == ["2027-02-28", "2027-03-31", "2027-04-30"]
    assert simulator.fetch(TOKEN).cycles_complete == 3


def test_a_quarterly_charge_moves_three_months(simulator: SimulatedSubscriptionApi) -> None:
    simulator.register(TOKEN, 79900, 4, "2027-01-06")
    assert simulator.charge(TOKEN).run_date == "2027-04-06"


def test_the_last_of_a_limited_number_of_cycles_cancels(simulator: SimulatedSubscriptionApi) -> None:
    simulator.register(TOKEN, 29900, 3, "2027-01-06", cycles=2)
    assert simulator.charge(TOKEN).status_text == "ACTIVE"
    finished = simulator.charge(TOKEN)
    assert (finished.status_text, finished.cycles_complete) == ("CANCELLED", 2)
    with pytest.raises(PermanentError, match="cancelled"):
        simulator.charge(TOKEN)


def test_a_charge_after_a_pause_runs_the_subscription_again(simulator: SimulatedSubscriptionApi) -> None:
    simulator.register(TOKEN, 29900, 3, "2027-01-06")
    simulator.pause(TOKEN, cycles=1)
    charged = simulator.charge(TOKEN)
    assert (charged.status_text, charged.run_date, charged.cycles_complete) == ("ACTIVE", "2027-03-06", 1)


def test_a_new_run_date_re_anchors_the_schedule(simulator: SimulatedSubscriptionApi) -> None:
    simulator.register(TOKEN, 29900, 3, "2027-01-06")
    simulator.charge(TOKEN)
    simulator.update(TOKEN, run_date="2027-03-31")
    assert [simulator.charge(TOKEN).run_date for _ in range(2)] == ["2027-04-30", "2027-05-31"]


def test_charging_an_unknown_token_is_not_found(simulator: SimulatedSubscriptionApi) -> None:
    with pytest.raises(NotFoundError):
        simulator.charge("unknown")


def test_registering_again_alike_changes_nothing_but_other_terms_are_refused(
    simulator: SimulatedSubscriptionApi,
) -> None:
    simulator.register(TOKEN, 29900, 3, "2027-01-06")
    simulator.charge(TOKEN)
    simulator.register(TOKEN, 29900, 3, "2027-01-06")
    assert simulator.fetch(TOKEN).cycles_complete == 1
    with pytest.raises(ItemAlreadyExistsError):
        simulator.register(TOKEN, 49900, 3, "2027-01-06")


@pytest.mark.parametrize(
    ("amount_cents", "frequency", "run_date"),
    [(0, 3, "2027-01-06"), (29900, 7, "2027-01-06"), (29900, 3, "06/01/2027")],
    ids=["zero-amount", "unknown-frequency", "bad-date"],
)
def test_bad_terms_are_refused(
    simulator: SimulatedSubscriptionApi, amount_cents: int, frequency: int, run_date: str
) -> None:
    with pytest.raises(InvalidInputError):
        simulator.register(TOKEN, amount_cents, frequency, run_date)
    with pytest.raises(NotFoundError):
        simulator.fetch(TOKEN)


def test_another_process_sees_the_same_subscriptions(tmp_path: Path) -> None:
    # The CLI and the server each open the database file themselves.
    server_side, cli_side = Database(tmp_path / "tenancy.db"), Database(tmp_path / "tenancy.db")
    try:
        SimulatedSubscriptionApi(server_side).register(TOKEN, 29900, 3, "2027-01-06")
        SimulatedSubscriptionApi(cli_side).cancel(TOKEN)
        assert SimulatedSubscriptionApi(server_side).fetch(TOKEN).status_text == "CANCELLED"
    finally:
        server_side.close()
        cli_side.close()


def test_building_the_simulator_writes_nothing(tmp_path: Path) -> None:
    # A worker builds it late (its first billing step): its table is the database's own, so a busy
    # database at that moment cannot stop the process (the soak's locked SQLite once did).
    database = Database(tmp_path / "tenancy.db")

    def busy() -> None:
        raise AssertionError("the simulator wrote while being built")

    database.before_write = busy
    simulator = SimulatedSubscriptionApi(database)
    database.before_write = None

    simulator.register(TOKEN, 29900, 3, "2027-01-06")
    assert simulator.fetch(TOKEN).amount_cents == 29900
    database.close()
