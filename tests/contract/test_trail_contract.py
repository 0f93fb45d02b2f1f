"""The RepairTrail contract, the same assertions on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import pytest

from tenancy.domain.model import RepairRecord
from tenancy.ports import RepairTrail

from aws_support import Backend


def make_entry(
    at: str = "2026-01-18T00:00:00Z",
    *,
    transaction_id: str | None = "TXN-100001",
    tenant_id: str | None = "ten_XXXXX",
    email: str | None = "user@example.com",
    finding: str = "4.3 tenant record missing",
) -> RepairRecord:
    return RepairRecord(
        at=at,
        operator="ops@example.com",
        transaction_id=transaction_id,
        tenant_id=tenant_id,
        email=email,
        finding=finding,
        actions=("create tenant record", "update identity attributes"),
        before={"tenant": None, "identity": {"status": "CONFIRMED", "attributes": {"custom:tenant_id": ""}}},
        after={"tenant": {"status": "active", "limits": {"max_sites": 5}}, "steps": ["tenant_record"], "ok": True},
        outcome="repaired",
    )


@pytest.fixture
def trail(backend: Backend) -> RepairTrail:
    return backend.services.trail


def test_a_recorded_repair_reads_back_with_its_states_before_and_after(trail: RepairTrail) -> None:
    entry = make_entry()

    trail.record(entry)

    assert trail.entries(transaction_id="TXN-100001") == [entry]


def test_every_entry_is_answered_oldest_first_when_no_subject_is_given(trail: RepairTrail) -> None:
    later = make_entry("2026-01-18T00:05:00Z", finding="later")
    earlier = make_entry("2026-01-18T00:01:00Z", finding="earlier")
    # Two repairs in the same second keep the order they were recorded in.
    same_second = [make_entry("2026-01-18T00:09:00Z", finding=f"same second {number}") for number in range(3)]
    anonymous = make_entry("2026-01-18T00:10:00Z", transaction_id=None, tenant_id=None, email=None)
    for entry in (earlier, later, *same_second, anonymous):
        trail.record(entry)

    assert trail.entries() == [earlier, later, *same_second, anonymous]


def test_entries_are_those_about_any_of_the_given_subjects_each_once(trail: RepairTrail) -> None:
    by_transaction = make_entry("2026-01-18T00:01:00Z", transaction_id="TXN-1", tenant_id=None, email=None)
    by_tenant = make_entry("2026-01-18T00:02:00Z", transaction_id=None, tenant_id="ten_2", email=None)
    by_email = make_entry("2026-01-18T00:03:00Z", transaction_id=None, tenant_id=None, email="three@example.com")
    all_three = make_entry("2026-01-18T00:04:00Z", transaction_id="TXN-1", tenant_id="ten_2", email="three@example.com")
    unrelated = make_entry("2026-01-18T00:05:00Z", transaction_id="TXN-9", tenant_id="ten_9", email="nine@example.com")
    for entry in (by_transaction, by_tenant, by_email, all_three, unrelated):
        trail.record(entry)

    assert trail.entries(transaction_id="TXN-1") == [by_transaction, all_three]
    assert trail.entries(tenant_id="ten_2") == [by_tenant, all_three]
    assert trail.entries(email="three@example.com") == [by_email, all_three]
    assert trail.entries(transaction_id="TXN-1", tenant_id="ten_2", email="three@example.com") == [
        by_transaction,
        by_tenant,
        by_email,
        all_three,
    ]
    assert trail.entries(transaction_id="TXN-404") == []


def test_a_repair_item_keeps_its_states_as_json_strings(aws_backend: Backend) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    aws_backend.services.trail.record(make_entry())

    (item,) = client.scan(TableName="repairs")["Items"]

    assert item["before"]["S"].startswith('{"tenant": null')
    assert item["actions"] == {"L": [{"S": "create tenant record"}, {"S": "update identity attributes"}]}
    assert item["transaction_id"] == {"S": "TXN-100001"}
