"""Hostile input: every ITN of the corpus is refused with a 4xx and a reason, kept in the ledger
as rejected, provisions nothing, and leaves no traceback in the server's log; so is a checkout
form the server itself signed, passed off as an ITN (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tenancy.config import PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.model import PaymentVerdict
from tenancy.payments.payfast import itn_signature
from tenancy.payments.simulator import encode_form

from corpus_builder import CORPUS, cases, one_megabyte_body, signed
from page_client import csrf_token_in, form_fields
from servers import PAYFAST_ADDRESS, PayfastStandIn, RunningServer, free_port, server_env, start_server, stop_server

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CORPUS_FILES = sorted(CORPUS.glob("*.itn"))


@pytest.fixture(scope="module")
def permissive_payfast() -> Iterator[PayfastStandIn]:
    import threading

    stand_in = PayfastStandIn(free_port(), permissive=True)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    yield stand_in
    stand_in.shutdown()
    stand_in.server_close()


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory, permissive_payfast: PayfastStandIn
                   ) -> Iterator[RunningServer]:  # fmt: skip
    home = tmp_path_factory.mktemp("hostile-home")
    env = server_env(home, free_port(), free_port(), permissive_payfast.server_address[1])
    running = start_server(home, env)
    yield running
    stop_server(running)


def post(server: RunningServer, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/payments/payfast/itn",
        content=body,
        headers={**FORM, "X-Forwarded-For": PAYFAST_ADDRESS},
        timeout=30,
    )


def rejected_entries(server: RunningServer) -> int:
    services = server.services()
    try:
        return sum(1 for batch in services.ledger.scan() for entry in batch if entry.verdict is PaymentVerdict.REJECTED)
    finally:
        services.close()


def test_the_corpus_files_are_what_the_builder_makes() -> None:
    built = cases()
    assert len(built) >= 74
    assert {path.name for path in CORPUS_FILES} == set(built)
    for path in CORPUS_FILES:
        assert path.read_bytes() == built[path.name], path.name


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda path: path.stem)
def test_hostile_itn_is_refused_with_a_reason_and_kept_as_rejected(hostile_server: RunningServer, path: Path) -> None:
    reason = path.stem.split("__", 1)[1].replace("-", " ")
    before = rejected_entries(hostile_server)

    response = post(hostile_server, path.read_bytes())

    assert 400 <= response.status_code < 500, response.text
    assert reason.replace(" ", "") in response.json()["detail"].replace(" ", "").replace("-", ""), response.text
    assert rejected_entries(hostile_server) == before + 1


def test_a_one_megabyte_body_is_refused_as_too_large_and_kept(hostile_server: RunningServer) -> None:
    before = rejected_entries(hostile_server)

    response = post(hostile_server, one_megabyte_body())

    assert response.status_code == 413
    assert response.json()["detail"] == "body too large"
    assert rejected_entries(hostile_server) == before + 1


def test_a_replayed_pending_itn_after_completion_is_refused_and_changes_nothing(hostile_server: RunningServer) -> None:
    complete = signed(transaction_id="TXN-REPLAY", pf_payment_id="7100001", email="replay@example.com")
    pending = signed(transaction_id="TXN-REPLAY", pf_payment_id="7100001", email="replay@example.com",
                     status="PENDING")  # fmt: skip

    assert post(hostile_server, encode_form(complete)).status_code == 200
    replayed = post(hostile_server, encode_form(pending))

    assert replayed.status_code == 400
    assert "stale" in replayed.json()["detail"]


def checkout_form(server: RunningServer) -> list[tuple[str, str]]:
    """The signed PayFast form the server's checkout page hands anyone who asks, as a browser
    reads it. The CSRF cookie is Secure, so over http it is sent by hand."""
    with httpx.Client(base_url=server.base_url, headers={"Origin": server.base_url}, timeout=30) as client:
        page = client.get("/checkout?plan=professional")
        cookies = "; ".join(cookie.split(";", 1)[0] for cookie in page.headers.get_list("set-cookie"))
        data = {"csrf_token": csrf_token_in(page.text), "plan": "professional", "name": "Eve Mallory",
                "email": "eve@example.com"}  # fmt: skip
        response = client.post("/checkout", data=data, headers={"Cookie": cookies})
    assert response.status_code == 200, response.text
    return form_fields(response.text, "payfast-form")


def test_a_checkout_form_passed_off_as_an_itn_is_refused_and_provisions_nothing(hostile_server: RunningServer) -> None:
    form = checkout_form(hostile_server)
    transaction_id = dict(form)["m_payment_id"]
    # A real forgery: the form's own signature is what the ITN rule computes for the fields before it.
    assert itn_signature(form[:-1], PAYFAST_SANDBOX_PASSPHRASE) == dict(form)["signature"]
    paid = [("pf_payment_id", "7300001"), ("payment_status", "COMPLETE"), ("amount_gross", "299.00")]
    before = rejected_entries(hostile_server)

    response = post(hostile_server, encode_form([*form, *paid]))

    assert response.status_code == 400
    assert response.json() == {"detail": "field after signature: 'pf_payment_id' is not signed"}
    assert rejected_entries(hostile_server) == before + 1
    services = hostile_server.services()
    try:
        [kept] = services.ledger.find(transaction_id=transaction_id)
        assert kept.verdict is PaymentVerdict.REJECTED
        assert services.journal.get(transaction_id) is None
    finally:
        services.close()


def test_an_amount_of_1e1000000_is_a_400_kept_in_the_ledger(hostile_server: RunningServer) -> None:
    body = encode_form(signed(transaction_id="TXN-OVERFLOW", pf_payment_id="7300002", amount_gross="1e1000000"))

    response = post(hostile_server, body)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("amount_gross '1e1000000' is not an amount")
    services = hostile_server.services()
    try:
        [kept] = services.ledger.find(transaction_id="TXN-OVERFLOW")
        assert (kept.verdict, kept.amount_gross) == (PaymentVerdict.REJECTED, "1e1000000")
        assert kept.reasons == (response.json()["detail"],)
        assert services.journal.get("TXN-OVERFLOW") is None
    finally:
        services.close()


def test_nothing_was_provisioned_by_any_hostile_itn_and_no_traceback_was_logged(hostile_server: RunningServer) -> None:
    # Runs after the corpus (file order); only TXN-REPLAY's genuine COMPLETE may have made a job.
    services = hostile_server.services()
    try:
        jobs = [job.transaction_id for batch in services.journal.scan() for job in batch]
    finally:
        services.close()
    assert set(jobs) <= {"TXN-REPLAY"}
    log = hostile_server.log_text()
    assert "Traceback" not in log
    assert "itn_received" in log
