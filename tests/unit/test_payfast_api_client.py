"""HttpSubscriptionApi against a local stand-in of PayFast's subscription API, over real HTTP: the
stand-in checks every call's signature, so a call it answered 2xx/5xx/404 was signed right."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from structlog.testing import capture_logs

from tenancy.adapters.payfast_api import HttpSubscriptionApi
from tenancy.config import Settings
from tenancy.domain.billing import PayfastSubscription
from tenancy.errors import InvalidInputError, NotFoundError, PermanentError, TransientError

from payfast_api_standin import PayfastApiStandIn, running_payfast_api

MERCHANT_ID = "10000100"
PASSPHRASE = "Correct horse~battery+staple&1"
TOKEN = "2afa4575-5628-051a-d0ed-4e071b56a7b0"
SAST = timezone(timedelta(hours=2))


@pytest.fixture
def standin() -> Iterator[PayfastApiStandIn]:
    with running_payfast_api(merchant_id=MERCHANT_ID, passphrase=PASSPHRASE) as server:
        server.add(TOKEN, amount=29900, frequency=3, run_date="2027-01-06", cycles_complete=3)
        yield server


class Sleeps(list[float]):
    """Records the backoff delays instead of waiting them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(
    standin: PayfastApiStandIn, sleeps: Sleeps, *, passphrase: str | None = PASSPHRASE, **options: object
) -> HttpSubscriptionApi:
    minutes = iter(range(10_000))
    settings: dict[str, object] = {"sandbox": True, "max_attempts": 3, "timeout_seconds": 5.0, **options}
    return HttpSubscriptionApi(
        merchant_id=MERCHANT_ID,
        passphrase=passphrase,
        base_url=standin.url,
        sleep=sleeps,
        # A clock that moves a minute per call, so every attempt carries its own timestamp.
        clock=lambda: datetime(2026, 12, 6, 13, 45, tzinfo=SAST) + timedelta(minutes=next(minutes)),
        **settings,  # type: ignore[arg-type]
    )


@pytest.fixture
def client(standin: PayfastApiStandIn, sleeps: Sleeps) -> Iterator[HttpSubscriptionApi]:
    api = make_client(standin, sleeps)
    yield api
    api.close()


def test_fetch_reads_the_subscription_from_a_signed_sandbox_call(
    client: HttpSubscriptionApi, standin: PayfastApiStandIn
) -> None:
    assert client.fetch(TOKEN) == PayfastSubscription(
        token=TOKEN,
        status_text="ACTIVE",
        amount_cents=29900,
        frequency=3,
        cycles=0,
        cycles_complete=3,
        run_date="2027-01-06",
    )
    [call] = standin.recorded()
    assert (call.method, call.path, call.query, call.status) == (
        "GET",
        f"/subscriptions/{TOKEN}/fetch",
        {"testing": "true"},
        200,
    )
    assert call.headers["merchant-id"] == MERCHANT_ID
    assert call.headers["version"] == "v1"
    assert call.headers["timestamp"] == "2026-12-06T13:45:00+0200"
    assert len(call.headers["signature"]) == 32


def test_live_mode_sends_no_testing_switch(standin: PayfastApiStandIn, sleeps: Sleeps) -> None:
    api = make_client(standin, sleeps, sandbox=False)
    try:
        api.fetch(TOKEN)
    finally:
        api.close()
    [call] = standin.recorded()
    assert call.query == {}
    assert call.status == 200


def test_update_sends_amounts_in_cents_as_signed_json(client: HttpSubscriptionApi, standin: PayfastApiStandIn) -> None:
    client.update(TOKEN, amount_cents=49900, frequency=6, run_date="2027-02-01", cycles=12)

    [call] = standin.recorded()
    assert (call.method, call.path, call.status) == ("PATCH", f"/subscriptions/{TOKEN}/update", 200)
    assert call.body == {"amount": 49900, "frequency": 6, "run_date": "2027-02-01", "cycles": 12}
    assert call.headers["content-type"] == "application/json"
    after = client.fetch(TOKEN)
    assert (after.amount_cents, after.frequency, after.run_date, after.cycles) == (49900, 6, "2027-02-01", 12)


def test_update_with_nothing_to_change_calls_nobody(client: HttpSubscriptionApi, standin: PayfastApiStandIn) -> None:
    client.update(TOKEN)
    assert standin.recorded() == []


def test_a_non_positive_amount_is_refused_before_any_call(
    client: HttpSubscriptionApi, standin: PayfastApiStandIn
) -> None:
    with pytest.raises(InvalidInputError, match="amount_cents"):
        client.update(TOKEN, amount_cents=0)
    assert standin.recorded() == []


def test_pause_then_unpause_round_trip(client: HttpSubscriptionApi, standin: PayfastApiStandIn) -> None:
    client.pause(TOKEN, cycles=2)
    assert client.fetch(TOKEN).status_text == "PAUSED"
    client.unpause(TOKEN)
    assert client.fetch(TOKEN).status_text == "ACTIVE"
    pause = standin.recorded()[0]
    assert (pause.method, pause.path, pause.body, pause.status) == (
        "PUT",
        f"/subscriptions/{TOKEN}/pause",
        {"cycles": 2},
        200,
    )


def test_cancel_of_an_already_cancelled_subscription_is_success(
    client: HttpSubscriptionApi, standin: PayfastApiStandIn
) -> None:
    client.cancel(TOKEN)
    client.cancel(TOKEN)

    assert [call.status for call in standin.recorded()] == [200, 400]
    assert standin.subscription(TOKEN)["status_text"] == "CANCELLED"


def test_other_refusals_are_permanent_with_payfasts_reason(
    client: HttpSubscriptionApi, standin: PayfastApiStandIn
) -> None:
    client.cancel(TOKEN)
    with pytest.raises(PermanentError, match="400 Failure - The subscription status is cancelled"):
        client.pause(TOKEN)
    # A refusal is not retried.
    assert len(standin.recorded()) == 2


def test_unknown_token_is_not_found_without_retrying(
    client: HttpSubscriptionApi, standin: PayfastApiStandIn, sleeps: Sleeps
) -> None:
    with pytest.raises(NotFoundError):
        client.fetch("no-such-token")
    assert [call.status for call in standin.recorded()] == [404]
    assert sleeps == []


def test_server_errors_are_retried_with_backoff_then_succeed(
    client: HttpSubscriptionApi, standin: PayfastApiStandIn, sleeps: Sleeps
) -> None:
    standin.fail_next(2, status=500)

    client.cancel(TOKEN)

    calls = standin.recorded()
    # Each attempt is signed afresh (a new timestamp) and the stand-in accepted every signature.
    assert [call.status for call in calls] == [500, 500, 200]
    assert len({call.headers["timestamp"] for call in calls}) == 3
    assert sleeps == [0.5, 1.0]
    assert standin.subscription(TOKEN)["status_text"] == "CANCELLED"


def test_server_errors_that_persist_become_transient(
    client: HttpSubscriptionApi, standin: PayfastApiStandIn, sleeps: Sleeps
) -> None:
    standin.fail_next(10, status=503)

    with pytest.raises(TransientError, match="answered 503 after 3 attempts"):
        client.cancel(TOKEN)

    assert [call.status for call in standin.recorded()] == [503, 503, 503]
    assert sleeps == [0.5, 1.0]
    assert standin.subscription(TOKEN)["status_text"] == "ACTIVE"


def test_a_timeout_is_retried(standin: PayfastApiStandIn, sleeps: Sleeps) -> None:
    api = make_client(standin, sleeps, timeout_seconds=0.5)
    standin.stall_next(1)
    try:
        assert api.fetch(TOKEN).token == TOKEN
    finally:
        api.close()
    assert sleeps == [0.5]


def test_an_unreachable_payfast_is_transient(sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    api = HttpSubscriptionApi(
        merchant_id=MERCHANT_ID, passphrase=PASSPHRASE, base_url=f"http://127.0.0.1:{closed_port}", sleep=sleeps
    )
    try:
        with pytest.raises(TransientError, match=r"unreachable \(ConnectError\) after 3 attempts"):
            api.fetch(TOKEN)
    finally:
        api.close()
    assert sleeps == [0.5, 1.0]


def test_a_wrong_passphrase_is_refused_by_payfast_and_permanent(standin: PayfastApiStandIn, sleeps: Sleeps) -> None:
    api = make_client(standin, sleeps, passphrase="not the passphrase")
    try:
        with pytest.raises(PermanentError, match="401 Merchant authorization failed"):
            api.fetch(TOKEN)
    finally:
        api.close()
    assert [call.status for call in standin.recorded()] == [401]


def test_no_error_or_log_line_carries_the_passphrase_or_a_signature(standin: PayfastApiStandIn, sleeps: Sleeps) -> None:
    wrong = make_client(standin, sleeps, passphrase="wrong " + PASSPHRASE)
    right = make_client(standin, sleeps)
    failing_calls: list[Callable[[], object]] = [
        lambda: wrong.fetch(TOKEN),  # 401: the signature does not match
        lambda: right.fetch("no-such-token"),  # 404
        lambda: right.fetch(TOKEN),  # 500 three times: retried, logged, transient
        lambda: right.pause(TOKEN),  # 400 on a cancelled subscription
    ]
    messages: list[str] = []
    with capture_logs() as logs:
        for number, call in enumerate(failing_calls):
            if number == 2:
                standin.fail_next(3)
            if number == 3:
                right.cancel(TOKEN)
            with pytest.raises((PermanentError, NotFoundError, TransientError)) as raised:
                call()
            messages.append(str(raised.value))
    wrong.close()
    right.close()

    signatures = {call.headers["signature"] for call in standin.recorded()}
    assert [call.status for call in standin.recorded()] == [401, 404, 500, 500, 500, 200, 400]
    assert any(entry["event"] == "payfast_api_retry" for entry in logs)
    for text in [*messages, *(repr(entry) for entry in logs)]:
        assert "horse" not in text
        assert not any(signature in text for signature in signatures)


def test_settings_name_payfasts_api_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENANCY_PAYFAST_API_URL", raising=False)
    assert Settings().effective_payfast_api_url == "https://api.payfast.co.za"
    told = Settings(payfast_api_url="http://127.0.0.1:9/", payfast_api_timeout_seconds=2.5)
    assert told.effective_payfast_api_url == "http://127.0.0.1:9"
    assert told.payfast_api_timeout_seconds == 2.5
