"""The PaymentLedger contract, the same assertions on SQLite and on DynamoDB (moto): every ITN kept,
an accepted pf_payment_id + status accepted once (also under concurrent copies), its job written
and enqueued once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tenancy.adapters.aws.dynamodb import DynamoLedger
from tenancy.bootstrap import Services, build
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.errors import TransientError
from tenancy.ports import JobQueue, PaymentLedger

from aws_support import Backend


def make_payment(
    pf_payment_id: str | None = "1089250",
    *,
    status: str = "COMPLETE",
    received_at: str = "2026-01-18T00:00:00Z",
    transaction_id: str = "TXN-100001",
    email: str = "user@example.com",
    verdict: PaymentVerdict = PaymentVerdict.ACCEPTED,
) -> PaymentRecord:
    fields = (
        ("m_payment_id", transaction_id),
        ("pf_payment_id", pf_payment_id or ""),
        ("payment_status", status),
        ("item_name", "Professional"),
        ("amount_gross", "299.00"),
        ("name_first", ""),
        ("email_address", email),
        ("custom_str1", "professional"),
        ("signature", "ad8e7685c9522c24365d7ccea8cb3db7"),
    )
    return PaymentRecord(
        received_at=received_at,
        source_ip="197.97.145.145",
        fields=fields,
        verdict=verdict,
        pf_payment_id=pf_payment_id,
        transaction_id=transaction_id,
        payment_status=status,
        email=email,
        plan="professional",
        amount_gross="299.00",
    )


def make_job(transaction_id: str = "TXN-100001", created_at: str = "2026-01-18T00:00:00Z") -> ProvisioningJob:
    return ProvisioningJob(
        transaction_id=transaction_id,
        tenant_id=tenant_id_for(transaction_id),
        invoice_number=invoice_number_for(transaction_id),
        email="user@example.com",
        plan="professional",
        tenant_name="User Tenant",
        status=JobStatus.QUEUED,
        created_at=created_at,
        updated_at=created_at,
        pf_payment_id="1089250",
    )


def test_an_accepted_payment_is_kept_with_its_job_written_and_enqueued(services: Services) -> None:
    payment, job = make_payment(), make_job()

    kept = services.ledger.record(payment, job)

    assert kept == payment
    assert services.ledger.find(transaction_id="TXN-100001") == [payment]
    assert services.journal.get("TXN-100001") == job
    assert services.queue.depth() == (1, 0)


def test_the_same_payment_and_status_accepted_again_is_kept_as_duplicate_without_a_second_job(
    services: Services,
) -> None:
    first = services.ledger.record(make_payment(), make_job())
    again = make_payment(received_at="2026-01-18T00:00:05Z")

    kept = services.ledger.record(again, make_job(created_at="2026-01-18T00:00:05Z"))

    assert kept.verdict is PaymentVerdict.DUPLICATE
    assert kept == again.with_verdict(PaymentVerdict.DUPLICATE, "already processed")
    assert services.ledger.find(pf_payment_id="1089250") == [first, kept]
    assert services.journal.get("TXN-100001") == make_job()
    assert services.queue.depth() == (1, 0)


def test_another_status_of_the_same_payment_is_accepted_too(services: Services) -> None:
    pending = services.ledger.record(make_payment(status="PENDING"), None)
    complete = services.ledger.record(make_payment(status="COMPLETE", received_at="2026-01-18T00:01:00Z"), make_job())

    assert [pending.verdict, complete.verdict] == [PaymentVerdict.ACCEPTED, PaymentVerdict.ACCEPTED]
    assert services.queue.depth() == (1, 0)


def test_an_accepted_payment_whose_transaction_has_a_job_already_is_accepted_without_another(
    services: Services,
) -> None:
    existing = make_job()
    services.journal.create(existing)

    kept = services.ledger.record(make_payment(), make_job(created_at="2026-01-19T00:00:00Z"))

    assert kept.verdict is PaymentVerdict.ACCEPTED
    assert services.journal.get("TXN-100001") == existing
    assert services.queue.depth() == (0, 0)


def test_a_rejected_payment_is_kept_and_provisions_nothing(services: Services) -> None:
    rejected = make_payment(verdict=PaymentVerdict.REJECTED).with_verdict(PaymentVerdict.REJECTED, "signature mismatch")

    kept = services.ledger.record(rejected, make_job())

    assert kept == rejected
    assert services.ledger.find(transaction_id="TXN-100001") == [rejected]
    assert services.journal.get("TXN-100001") is None
    assert services.queue.depth() == (0, 0)


def test_a_rejected_payment_does_not_stop_the_real_one_from_being_accepted(services: Services) -> None:
    services.ledger.record(make_payment(verdict=PaymentVerdict.REJECTED), None)

    kept = services.ledger.record(make_payment(received_at="2026-01-18T00:00:01Z"), make_job())

    assert kept.verdict is PaymentVerdict.ACCEPTED
    assert services.queue.depth() == (1, 0)


def test_garbage_without_a_pf_payment_id_or_with_empty_ids_is_kept_as_it_came(services: Services) -> None:
    unreadable = PaymentRecord(
        "2026-01-18T00:00:00Z", "10.0.0.1", (("garbage", "x"),), PaymentVerdict.REJECTED, ("unreadable body",)
    )
    empty_ids = make_payment("", transaction_id="", email="", received_at="2026-01-18T00:00:01Z")
    empty_ids = empty_ids.with_verdict(PaymentVerdict.REJECTED, "missing field pf_payment_id")
    literally_unknown = make_payment("unknown", received_at="2026-01-18T00:00:02Z", verdict=PaymentVerdict.REJECTED)
    for payment in (unreadable, empty_ids, literally_unknown):
        services.ledger.record(payment, None)

    assert services.ledger.find() == [unreadable, empty_ids, literally_unknown]
    assert services.ledger.find(pf_payment_id="unknown") == [literally_unknown]
    assert services.ledger.find(pf_payment_id="") == [empty_ids]
    assert services.ledger.find(transaction_id="") == [empty_ids]
    assert services.ledger.find(email="", pf_payment_id="") == [empty_ids]


def test_find_answers_the_entries_matching_every_given_filter_oldest_first(services: Services) -> None:
    # Two copies in the same second keep the order they came in.
    first = make_payment("1", status="PENDING", received_at="2026-01-18T00:00:00Z")
    copy = make_payment("1", status="PENDING", received_at="2026-01-18T00:00:00Z", verdict=PaymentVerdict.REJECTED)
    second = make_payment("2", received_at="2026-01-18T00:01:00Z")
    other = make_payment(
        "3", transaction_id="TXN-100002", email="other@example.com", received_at="2026-01-18T00:02:00Z"
    )
    kept = [services.ledger.record(payment, None) for payment in (first, copy, second, other)]

    assert services.ledger.find(transaction_id="TXN-100001") == kept[:3]
    assert services.ledger.find(pf_payment_id="1") == kept[:2]
    assert services.ledger.find(email="other@example.com") == [kept[3]]
    assert services.ledger.find(transaction_id="TXN-100001", pf_payment_id="2") == [kept[2]]
    assert services.ledger.find(transaction_id="TXN-100001", email="user@example.com", pf_payment_id="1") == kept[:2]
    assert services.ledger.find(transaction_id="TXN-100002", email="user@example.com") == []
    assert services.ledger.find(transaction_id="TXN-999999") == []
    assert services.ledger.find() == kept


def test_scan_answers_every_entry_since_a_time_oldest_first_in_batches(services: Services) -> None:
    payments = [
        make_payment(str(number), transaction_id=f"TXN-10000{number}", received_at=f"2026-01-18T00:0{number}:00Z")
        for number in range(5)
    ]
    for payment in payments:
        services.ledger.record(payment, make_job(payment.transaction_id or ""))

    batches = list(services.ledger.scan(batch_size=2))
    since = list(services.ledger.scan(since="2026-01-18T00:02:00Z", batch_size=2))

    assert all(0 < len(batch) <= 2 for batch in batches)
    assert [payment for batch in batches for payment in batch] == payments
    assert [payment for batch in since for payment in batch] == payments[2:]
    assert list(services.ledger.scan(since="2026-01-19T00:00:00Z")) == []


def test_entries_are_counted_by_verdict_and_read_by_verdict_since_a_time(services: Services) -> None:
    assert services.ledger.count_by_verdict() == {}
    rejected = PaymentVerdict.REJECTED
    entries = [
        make_payment("1", received_at="2026-01-18T00:01:00Z", verdict=rejected).with_verdict(rejected, "bad"),
        make_payment("2", received_at="2026-01-18T00:02:00Z"),
        make_payment("2", received_at="2026-01-18T00:03:00Z"),  # kept as a duplicate
        make_payment(None, received_at="2026-01-18T00:04:00Z", verdict=rejected),  # no pf_payment_id
        make_payment("5", received_at="2026-01-18T00:05:00Z", verdict=PaymentVerdict.UNCONFIRMED),
        make_payment("6", received_at="2026-01-18T00:05:00Z", verdict=rejected),
    ]
    kept = [services.ledger.record(payment, None) for payment in entries]

    # The accepted entry's dedupe marker is not an entry: one accepted, not two.
    assert services.ledger.count_by_verdict() == {
        PaymentVerdict.ACCEPTED: 1,
        PaymentVerdict.DUPLICATE: 1,
        PaymentVerdict.REJECTED: 3,
        PaymentVerdict.UNCONFIRMED: 1,
    }
    assert services.ledger.count_by_verdict(since="2026-01-18T00:03:00Z") == {
        PaymentVerdict.DUPLICATE: 1,
        PaymentVerdict.REJECTED: 2,
        PaymentVerdict.UNCONFIRMED: 1,
    }
    assert services.ledger.count_by_verdict(since="2026-01-19T00:00:00Z") == {}
    assert services.ledger.with_verdict("rejected", "2026-01-18T00:00:00Z") == [kept[0], kept[3], kept[5]]
    assert services.ledger.with_verdict("rejected", "2026-01-18T00:04:00Z") == [kept[3], kept[5]]
    assert services.ledger.with_verdict("duplicate", "2026-01-18T00:00:00Z") == [kept[2]]
    assert services.ledger.with_verdict("accepted", "2026-01-18T00:02:01Z") == []


def test_paid_purchases_are_counted_by_the_hour_received(services: Services) -> None:
    rejected = PaymentVerdict.REJECTED
    for payment in (
        make_payment("1", received_at="2026-01-18T08:59:59Z"),  # before the first hour asked about
        make_payment("2", received_at="2026-01-18T09:00:00Z"),
        make_payment("2", received_at="2026-01-18T09:10:00Z"),  # a duplicate: not a second payment
        make_payment("3", received_at="2026-01-18T09:59:59Z"),
        make_payment("4", status="PENDING", received_at="2026-01-18T09:20:00Z"),  # not paid yet
        make_payment("5", received_at="2026-01-18T09:30:00Z", verdict=rejected).with_verdict(rejected, "bad"),
        make_payment("6", received_at="2026-01-18T12:00:00Z"),
    ):
        services.ledger.record(payment, None)

    assert services.ledger.paid_by_hour("2026-01-18T09:30:00Z") == {"2026-01-18T09": 2, "2026-01-18T12": 1}
    assert services.ledger.paid_by_hour("2026-01-18T13:00:00Z") == {}


def test_ten_concurrent_copies_of_an_accepted_payment_are_accepted_once_with_one_job(
    backend: Backend, services: Services
) -> None:
    containers: list[Services] = []
    if backend.on_moto:
        # Ten Lambda containers, each with the services (and clients) it builds for itself.
        containers = [build(services.settings, clock=backend.clock) for _ in range(10)]
        ledgers = [container.ledger for container in containers]
    else:
        ledgers = [services.ledger] * 10  # one SQLite file: each thread takes its own connection
    start = threading.Barrier(10)

    def deliver(ledger: PaymentLedger) -> PaymentVerdict:
        start.wait()
        return ledger.record(make_payment(), make_job()).verdict

    with ThreadPoolExecutor(max_workers=10) as pool:
        verdicts = list(pool.map(deliver, ledgers))
    for container in containers:
        container.close()

    assert sorted(verdicts) == [PaymentVerdict.ACCEPTED] + [PaymentVerdict.DUPLICATE] * 9
    assert sorted(payment.verdict for payment in services.ledger.find(pf_payment_id="1089250")) == sorted(verdicts)
    assert services.journal.find(email="user@example.com") == [make_job()]
    assert services.queue.depth() == (1, 0)


# DynamoDB only: the items, the transaction's retries, and an enqueue that fails ------------------


def test_an_accepted_itn_is_an_entry_plus_the_marker_whose_conditional_put_is_the_dedupe(
    aws_backend: Backend,
) -> None:
    aws_backend.services.ledger.record(make_payment(), make_job())

    items = aws_backend.moto.session.client("dynamodb").query(
        TableName="payments",
        KeyConditionExpression="pf_payment_id = :id",
        ExpressionAttributeValues={":id": {"S": "1089250"}},
    )["Items"]

    marker, entry = items  # "ACCEPTED#…" sorts before "ITN#…"
    assert marker["entry_key"] == {"S": "ACCEPTED#COMPLETE"}
    assert marker["accepted_entry_key"] == entry["entry_key"]
    assert not {"transaction_id", "email", "entry_type"} & set(marker)  # so no index lists it
    assert entry["entry_key"]["S"].startswith("ITN#2026-01-18T00:00:00Z#")
    assert entry["verdict"] == {"S": "accepted"}
    assert entry["fields"]["L"][0] == {"L": [{"S": "m_payment_id"}, {"S": "TXN-100001"}]}
    assert entry["reasons"] == {"L": []}


def test_a_transaction_conflict_with_a_concurrent_copy_is_tried_again(
    aws_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    transact = DynamoDBBackend.transact_write_items
    conflicts = [("TransactionConflict", "Transaction is ongoing for the item", None), (None, None, None)]

    def conflict_once(self: DynamoDBBackend, items: list[dict[str, object]]) -> None:
        if conflicts:
            error = TransactionCanceledException(conflicts + [(None, None, None)] * (len(items) - 2))
            conflicts.clear()
            raise error
        transact(self, items)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", conflict_once)
    ledger, queue = aws_backend.services.ledger, aws_backend.services.queue

    kept = ledger.record(make_payment(), make_job())

    assert kept.verdict is PaymentVerdict.ACCEPTED
    assert [payment.verdict for payment in ledger.find(pf_payment_id="1089250")] == [PaymentVerdict.ACCEPTED]
    assert queue.depth() == (1, 0)


def test_a_conflict_that_never_clears_is_transient_and_keeps_nothing(
    aws_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    def always_conflict(self: DynamoDBBackend, items: list[dict[str, object]]) -> None:
        raise TransactionCanceledException([("TransactionConflict", "Transaction is ongoing", None)] * len(items))

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", always_conflict)
    monkeypatch.setattr("tenancy.adapters.aws.dynamodb._CONFLICT_BACKOFF_SECONDS", 0.0)
    ledger = aws_backend.services.ledger

    with pytest.raises(TransientError):  # the ITN handler answers 5xx and PayFast sends the ITN again
        ledger.record(make_payment(), make_job())

    assert ledger.find(pf_payment_id="1089250") == []


class _UnreachableQueue:
    """The work queue with SQS out of reach: every send fails."""

    def __init__(self, real: JobQueue) -> None:
        self._real = real

    def send(self, transaction_id: str, delay_seconds: float = 0) -> None:
        raise TransientError("sending a provisioning message: EndpointConnectionError")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_when_the_enqueue_fails_the_payment_stays_accepted_and_its_job_stays_queued_for_the_runbook(
    aws_backend: Backend,
) -> None:
    services = aws_backend.services
    settings = services.settings
    ledger = DynamoLedger(
        aws_backend.moto.session.client("dynamodb"),
        settings.payments_table,
        settings.provisioning_table,
        _UnreachableQueue(services.queue),
    )

    kept = ledger.record(make_payment(), make_job())

    assert kept.verdict is PaymentVerdict.ACCEPTED
    job = services.journal.get("TXN-100001")
    assert job is not None
    assert job.status is JobStatus.QUEUED
