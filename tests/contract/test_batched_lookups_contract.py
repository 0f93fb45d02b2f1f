"""The batched look-ups the weekly audit asks of each store (a page of purchases at a time), on
SQLite and on AWS (moto): each answers exactly what the single look-up it batches answers, key by
key (emails matched normalized, ITNs and users records oldest first, mail newest first up to the
limit), and leaves out the keys that find nothing."""

from __future__ import annotations

import dataclasses

from test_journal_contract import make_job
from test_ledger_contract import make_payment
from test_store_contract import make_tenant, make_user

from tenancy.bootstrap import Services
from tenancy.domain.model import OutgoingEmail, PaymentVerdict, UserRecord, UserStatus

from aws_support import Backend

MISSING = "TXN-999999"


def test_jobs_are_read_many_at_once_as_one_at_a_time(services: Services) -> None:
    for number in range(5):
        services.journal.create(make_job(f"TXN-10000{number}", created_at=f"2026-01-18T00:0{number}:00Z"))
    asked = ["TXN-100003", "TXN-100000", MISSING, "TXN-100003", "TXN-100004"]

    jobs = services.journal.get_many(asked)

    assert jobs == {
        transaction_id: services.journal.get(transaction_id) for transaction_id in asked if transaction_id != MISSING
    }
    assert services.journal.tenant_ids(asked) == {t: job.tenant_id for t, job in jobs.items()}
    assert set(jobs) == {"TXN-100000", "TXN-100003", "TXN-100004"}
    assert services.journal.get_many([]) == {}
    assert services.journal.tenant_ids([]) == {}


def test_itns_are_found_for_many_transactions_oldest_first_as_find_finds_them(services: Services) -> None:
    kept = [
        services.ledger.record(make_payment("1", status="PENDING", received_at="2026-01-18T00:00:00Z"), None),
        services.ledger.record(
            make_payment("2", received_at="2026-01-18T00:01:00Z", transaction_id="TXN-100002"), None
        ),
        services.ledger.record(make_payment("1", received_at="2026-01-18T00:02:00Z"), None),
        services.ledger.record(
            make_payment("3", received_at="2026-01-18T00:03:00Z", verdict=PaymentVerdict.REJECTED), None
        ),
    ]
    asked = ["TXN-100001", MISSING, "TXN-100002"]

    found = services.ledger.find_many(asked)

    assert found == {"TXN-100001": [kept[0], kept[2], kept[3]], "TXN-100002": [kept[1]]}
    assert found == {t: services.ledger.find(transaction_id=t) for t in asked if t != MISSING}
    without_fields = services.ledger.find_many(asked, with_fields=False)
    assert without_fields == {
        transaction_id: [dataclasses.replace(payment, fields=()) for payment in payments]
        for transaction_id, payments in found.items()
    }
    assert all(payment.fields for payments in found.values() for payment in payments)


def test_the_ledger_lists_each_entry_s_transaction_verdict_and_arrival_as_scan_does(services: Services) -> None:
    for number in range(5):
        verdict = PaymentVerdict.REJECTED if number % 2 else PaymentVerdict.ACCEPTED
        payment = make_payment(
            str(number),
            transaction_id=f"TXN-10000{number}",
            received_at=f"2026-01-18T00:0{number}:00Z",
            verdict=verdict,
        )
        services.ledger.record(payment, None)

    for since in (None, "2026-01-18T00:02:00Z"):
        listed = list(services.ledger.scan_transactions(since, batch_size=2))
        scanned = list(services.ledger.scan(since, batch_size=2))
        assert all(0 < len(batch) <= 2 for batch in listed)
        assert [entry for batch in listed for entry in batch] == [
            (payment.transaction_id, payment.verdict, payment.received_at) for batch in scanned for payment in batch
        ]


def test_tenants_are_read_by_id_and_by_transaction_many_at_once(services: Services) -> None:
    own = make_tenant("TXN-100001")
    alone = make_tenant("TXN-100002", tenant_id="ten_HANDMADE2", created_at="2026-01-18T00:05:00Z")
    beside = make_tenant("TXN-100001", tenant_id="ten_HANDMADE1", created_at="2026-01-17T00:00:00Z")
    earlier = make_tenant("TXN-100003", tenant_id="ten_HANDMADE3", created_at="2026-01-17T00:00:00Z")
    later = make_tenant("TXN-100003", tenant_id="ten_HANDMADE4", created_at="2026-01-19T00:00:00Z")
    for tenant in (own, alone, beside, earlier, later):
        services.tenants.put(tenant)
    transactions = ["TXN-100001", "TXN-100002", "TXN-100003", MISSING]

    by_id = services.tenants.get_many([own.tenant_id, alone.tenant_id, "ten_NOSUCH"])
    billed = services.tenants.find_by_transactions(transactions)

    assert by_id == {own.tenant_id: own, alone.tenant_id: alone}
    # The derived id wins over an earlier hand-made one; among hand-made ones, the earliest.
    assert billed == {"TXN-100001": own, "TXN-100002": alone, "TXN-100003": earlier}
    assert billed == {t: services.tenants.find_by_transaction(t) for t in transactions if t != MISSING}


def test_the_tenants_list_each_tenant_s_id_billing_and_creation_as_scan_reads_them(services: Services) -> None:
    for number in range(5):
        services.tenants.create(make_tenant(f"TXN-10000{number}", created_at=f"2026-01-18T00:0{number}:00Z"))

    listed = [entry for batch in services.tenants.scan_created(batch_size=2) for entry in batch]

    assert all(0 < len(batch) <= 2 for batch in services.tenants.scan_created(batch_size=2))
    expected = [
        (tenant.tenant_id, tenant.billing.transaction_id, tenant.created_at)
        for batch in services.tenants.scan()
        for tenant in batch
    ]
    assert sorted(listed) == sorted(expected)
    assert len(listed) == 5


def test_users_records_are_found_for_many_emails_oldest_first_as_given(services: Services) -> None:
    services.users.create(make_user("u-2", email="Owner@Example.com", created_at="2026-01-18T00:01:00Z"))
    services.users.create(make_user("u-1", email="owner@example.com", created_at="2026-01-18T00:00:00Z"))
    services.users.create(make_user("u-3", email="other@example.com"))
    services.users.put(
        UserRecord("u-4", "ten_X", "third@example.com", "tenant_admin", UserStatus.ACTIVE, "2026-01-18T00:00:00Z")
    )
    asked = [" OWNER@example.com ", "other@example.com", "nobody@example.com", "owner@example.com"]

    found = services.users.find_by_emails(asked)

    assert found == {email: services.users.find_by_email(email) for email in asked if email != "nobody@example.com"}
    assert [record.user_id for record in found["owner@example.com"]] == ["u-1", "u-2"]


def test_identity_users_are_read_many_at_once_by_the_username_as_given(services: Services) -> None:
    for email in ("owner@example.com", "other@example.com"):
        services.identity.create_user(email, {"email": email, "custom:tenant_id": "ten_X"}, "Temporary-Passw0rd!")
    asked = ["Owner@Example.com", " other@example.com", "nobody@example.com", "own\u200ber@example.com", ""]

    found = services.identity.get_users(asked)

    assert set(found) == {"Owner@Example.com", " other@example.com"}
    assert found == {username: services.identity.get_user(username) for username in found}


def test_mail_is_read_for_many_recipients_newest_first_up_to_the_limit(backend: Backend) -> None:
    mailer = backend.services.mailer
    for number in range(4):
        mailer.send(OutgoingEmail("owner@example.com", f"Email {number}", "Hello", tags={"n": str(number)}))
        backend.clock.advance(1)
    mailer.send(OutgoingEmail("Other@Example.com", "Other", "Hello"))
    mailer.send(OutgoingEmail("other@example.com", "Same second", "Hello"))
    asked = ["OWNER@example.com", " other@example.com ", "nobody@example.com"]

    found = mailer.outboxes(asked, limit=3)

    assert found == {recipient: list(mailer.outbox(recipient, limit=3)) for recipient in asked[:2]}
    assert [email.subject for email in found["OWNER@example.com"]] == ["Email 3", "Email 2", "Email 1"]
    assert [email.subject for email in found[" other@example.com "]] == ["Same second", "Other"]
    assert mailer.outboxes(asked, limit=0) == {}
    assert dataclasses.asdict(found["OWNER@example.com"][0])["tags"] == {"n": "3"}
