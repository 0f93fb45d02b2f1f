"""The ProvisioningJournal contract, the same assertions on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import pytest

from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, ProvisioningJob, Step
from tenancy.ports import ProvisioningJournal

from aws_support import Backend


def make_job(
    transaction_id: str = "TXN-100001",
    *,
    email: str = "user@example.com",
    status: JobStatus = JobStatus.QUEUED,
    created_at: str = "2026-01-18T00:00:00Z",
    updated_at: str | None = None,
) -> ProvisioningJob:
    return ProvisioningJob(
        transaction_id=transaction_id,
        tenant_id=tenant_id_for(transaction_id),
        invoice_number=invoice_number_for(transaction_id),
        email=email,
        plan="professional",
        tenant_name="User Tenant",
        status=status,
        created_at=created_at,
        updated_at=updated_at or created_at,
        pf_payment_id="1089250",
    )


@pytest.fixture
def journal(backend: Backend) -> ProvisioningJournal:
    return backend.services.journal


def test_a_job_is_created_once_per_transaction(journal: ProvisioningJournal) -> None:
    first = make_job()

    assert journal.create(first) is True
    assert journal.create(make_job(status=JobStatus.RUNNING, created_at="2026-01-19T00:00:00Z")) is False

    assert journal.get("TXN-100001") == first


def test_a_missing_job_is_none(journal: ProvisioningJournal) -> None:
    assert journal.get("TXN-999999") is None


def test_save_replaces_the_job_including_fields_set_back_to_none(journal: ProvisioningJournal) -> None:
    journal.create(make_job())
    retrying = make_job().with_changes(
        status=JobStatus.RETRYING,
        completed_steps=(Step.TENANT_RECORD, Step.IDENTITY_USER),
        attempts=2,
        owner_user_id="cognito-sub-1",
        last_error="SES throttled",
        review_reason="check the owner",
        next_attempt_at="2026-01-18T00:05:00Z",
        updated_at="2026-01-18T00:01:00Z",
    )

    journal.save(retrying)
    assert journal.get("TXN-100001") == retrying

    succeeded = retrying.with_changes(
        status=JobStatus.SUCCEEDED,
        completed_steps=tuple(Step),
        attempts=3,
        last_error=None,
        review_reason=None,
        next_attempt_at=None,
        pf_payment_id=None,
        updated_at="2026-01-18T00:06:00Z",
    )
    journal.save(succeeded)
    assert journal.get("TXN-100001") == succeeded


def test_find_by_email_or_tenant_answers_matching_jobs_oldest_first(journal: ProvisioningJournal) -> None:
    newer = make_job("TXN-100003", created_at="2026-01-20T00:00:00Z")
    older = make_job("TXN-100001", created_at="2026-01-18T00:00:00Z")
    other = make_job("TXN-100002", email="other@example.com", created_at="2026-01-19T00:00:00Z")
    for job in (newer, older, other):
        journal.create(job)

    assert journal.find(email="USER@example.com ") == [older, newer]
    assert journal.find(tenant_id=tenant_id_for("TXN-100002")) == [other]
    assert journal.find(email="user@example.com", tenant_id=tenant_id_for("TXN-100003")) == [newer]
    assert journal.find(email="other@example.com", tenant_id=tenant_id_for("TXN-100003")) == []
    assert journal.find(email="nobody@example.com") == []
    assert journal.find() == [older, other, newer]


def test_list_jobs_answers_the_newest_first_optionally_of_one_status_up_to_the_limit(
    journal: ProvisioningJournal,
) -> None:
    jobs = [
        make_job(f"TXN-10000{number}", status=status, updated_at=f"2026-01-18T00:0{number}:00Z")
        for number, status in enumerate(
            [JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.RETRYING, JobStatus.SUCCEEDED]
        )
    ]
    for job in jobs:
        journal.create(job)

    assert journal.list_jobs() == list(reversed(jobs))
    assert journal.list_jobs(limit=2) == [jobs[4], jobs[3]]
    assert journal.list_jobs(JobStatus.SUCCEEDED) == [jobs[4], jobs[2], jobs[0]]
    assert journal.list_jobs(JobStatus.SUCCEEDED, limit=2) == [jobs[4], jobs[2]]
    assert journal.list_jobs(JobStatus.DEAD_LETTERED) == []


def test_scan_returns_every_job_in_batches_no_larger_than_asked(journal: ProvisioningJournal) -> None:
    created = [make_job(f"TXN-2000{number:02d}") for number in range(7)]
    for job in created:
        journal.create(job)

    batches = list(journal.scan(batch_size=3))

    assert len(batches) >= 3
    assert all(0 < len(batch) <= 3 for batch in batches)
    assert sorted((job for batch in batches for job in batch), key=lambda job: job.transaction_id) == created


def test_a_journal_item_keeps_steps_as_a_list_attempts_as_a_number_and_omits_unset_fields(
    aws_backend: Backend,
) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    journal = aws_backend.services.journal
    journal.create(make_job().with_changes(completed_steps=(Step.TENANT_RECORD,), attempts=1))

    item = client.get_item(TableName="provisioning", Key={"transaction_id": {"S": "TXN-100001"}})["Item"]

    assert item["completed_steps"] == {"L": [{"S": "tenant_record"}]}
    assert item["attempts"] == {"N": "1"}
    assert item["status"] == {"S": "queued"}
    assert not {"owner_user_id", "last_error", "review_reason", "next_attempt_at"} & set(item)


def test_a_claimed_save_writes_only_over_the_claim_it_expects(journal: ProvisioningJournal) -> None:
    journal.create(make_job("TXN-CLAIM"))
    first = make_job("TXN-CLAIM", status=JobStatus.RUNNING).with_changes(attempts=1, claim="run-1")
    second = first.with_changes(attempts=2, claim="run-2")

    assert journal.save_claimed(first, expected_claim=None)  # unclaimed: the first run takes it
    assert not journal.save_claimed(second, expected_claim=None)  # read before run-1 claimed: refused
    assert journal.get("TXN-CLAIM") == first
    assert journal.save_claimed(second, expected_claim="run-1")  # taken over (run-1 outlived its lease)
    assert not journal.save_claimed(first.with_changes(completed_steps=(Step.TENANT_RECORD,)),
                                    expected_claim="run-1")  # fmt: skip
    assert journal.get("TXN-CLAIM") == second


def test_a_claimed_save_never_creates_a_job(journal: ProvisioningJournal) -> None:
    assert not journal.save_claimed(make_job("TXN-NONE").with_changes(claim="run-1"), expected_claim=None)
    assert journal.get("TXN-NONE") is None


def test_an_unconditional_save_releases_the_claim(journal: ProvisioningJournal) -> None:
    journal.create(make_job("TXN-OPS"))
    assert journal.save_claimed(make_job("TXN-OPS").with_changes(attempts=1, claim="run-1"), expected_claim=None)

    journal.save(make_job("TXN-OPS", status=JobStatus.QUEUED))  # an operator's repair or redrive

    assert journal.get("TXN-OPS") == make_job("TXN-OPS", status=JobStatus.QUEUED)
    assert not journal.save_claimed(make_job("TXN-OPS").with_changes(attempts=2, claim="run-1"),
                                    expected_claim="run-1")  # fmt: skip


def test_stale_jobs_are_those_written_before_the_cutoff_in_a_status_oldest_first(journal: ProvisioningJournal) -> None:
    for number, (status, updated_at) in enumerate([
        (JobStatus.QUEUED, "2026-01-18T00:05:00Z"),
        (JobStatus.QUEUED, "2026-01-18T00:01:00Z"),
        (JobStatus.QUEUED, "2026-01-18T00:30:00Z"),  # after the cutoff: not stale
        (JobStatus.RUNNING, "2026-01-18T00:02:00Z"),  # another status
        (JobStatus.QUEUED, "2026-01-18T00:03:00Z"),
    ]):  # fmt: skip
        journal.create(make_job(f"TXN-STALE{number}", status=status, updated_at=updated_at))

    stale = journal.stale_jobs("queued", "2026-01-18T00:10:00Z")
    first_two = journal.stale_jobs("queued", "2026-01-18T00:10:00Z", limit=2)

    assert [job.transaction_id for job in stale] == ["TXN-STALE1", "TXN-STALE4", "TXN-STALE0"]
    assert [job.transaction_id for job in first_two] == ["TXN-STALE1", "TXN-STALE4"]
    assert [job.transaction_id for job in journal.stale_jobs("running", "2026-01-18T00:10:00Z")] == ["TXN-STALE3"]


def test_jobs_are_counted_by_status_and_since_a_last_write_with_enough_attempts(journal: ProvisioningJournal) -> None:
    assert journal.count_by_status() == {}
    for number, (status, updated_at, attempts) in enumerate([
        (JobStatus.SUCCEEDED, "2026-01-18T00:01:00Z", 1),  # before the cutoff
        (JobStatus.SUCCEEDED, "2026-01-18T00:05:00Z", 1),  # at the cutoff: counted
        (JobStatus.SUCCEEDED, "2026-01-18T00:05:00Z", 3),
        (JobStatus.SUCCEEDED, "2026-01-18T00:09:00Z", 2),
        (JobStatus.QUEUED, "2026-01-18T00:06:00Z", 0),
        (JobStatus.DEAD_LETTERED, "2026-01-18T00:07:00Z", 5),
    ]):  # fmt: skip
        job = make_job(f"TXN-COUNT{number}", status=status, updated_at=updated_at).with_changes(attempts=attempts)
        assert journal.create(job)

    assert journal.count_by_status() == {JobStatus.SUCCEEDED: 4, JobStatus.QUEUED: 1, JobStatus.DEAD_LETTERED: 1}
    assert journal.count_updated_since("succeeded", "2026-01-18T00:05:00Z") == 3
    assert journal.count_updated_since("succeeded", "2026-01-18T00:05:00Z", min_attempts=2) == 2
    assert journal.count_updated_since("succeeded", "2026-01-18T00:00:00Z", min_attempts=3) == 1
    assert journal.count_updated_since("succeeded", "2026-01-18T00:09:01Z") == 0
    assert journal.count_updated_since("dead_lettered", "2026-01-18T00:00:00Z") == 1
    assert journal.count_updated_since("running", "2026-01-18T00:00:00Z") == 0

    journal.save(make_job("TXN-COUNT4", status=JobStatus.RUNNING, updated_at="2026-01-18T00:08:00Z"))

    assert journal.count_by_status() == {JobStatus.SUCCEEDED: 4, JobStatus.RUNNING: 1, JobStatus.DEAD_LETTERED: 1}
    assert journal.count_updated_since("queued", "2026-01-18T00:00:00Z") == 0


def test_succeeded_jobs_are_counted_by_the_hour_of_their_last_update(journal: ProvisioningJournal) -> None:
    for number, (status, updated_at) in enumerate([
        (JobStatus.SUCCEEDED, "2026-01-18T08:59:59Z"),  # before the first hour asked about
        (JobStatus.SUCCEEDED, "2026-01-18T09:00:00Z"),
        (JobStatus.SUCCEEDED, "2026-01-18T09:59:59Z"),
        (JobStatus.SUCCEEDED, "2026-01-18T11:30:00Z"),
        (JobStatus.DEAD_LETTERED, "2026-01-18T09:30:00Z"),
    ]):  # fmt: skip
        assert journal.create(make_job(f"TXN-HOUR{number}", status=status, updated_at=updated_at))

    assert journal.succeeded_by_hour("2026-01-18T09:15:00Z") == {"2026-01-18T09": 2, "2026-01-18T11": 1}

    # A job that succeeds later counts in the hour it did; one that leaves success no longer counts.
    journal.save(make_job("TXN-HOUR4", status=JobStatus.SUCCEEDED, updated_at="2026-01-18T11:45:00Z"))
    journal.save(make_job("TXN-HOUR1", status=JobStatus.QUEUED, updated_at="2026-01-18T12:00:00Z"))
    journal.save(make_job("TXN-HOUR2", status=JobStatus.SUCCEEDED, updated_at="2026-01-18T12:10:00Z"))

    assert journal.succeeded_by_hour("2026-01-18T09:00:00Z") == {"2026-01-18T11": 2, "2026-01-18T12": 1}


def test_a_hand_written_item_with_a_null_claim_can_be_claimed(aws_backend: Backend) -> None:
    client = aws_backend.moto.session.client("dynamodb")
    journal = aws_backend.services.journal
    journal.create(make_job("TXN-NULL1"))
    client.update_item(
        TableName=aws_backend.services.settings.provisioning_table,
        Key={"transaction_id": {"S": "TXN-NULL1"}},
        UpdateExpression="SET #claim = :null",
        ExpressionAttributeNames={"#claim": "claim"},
        ExpressionAttributeValues={":null": {"NULL": True}},
    )
    stored = journal.get("TXN-NULL1")
    assert stored is not None
    assert stored.claim is None

    assert journal.save_claimed(stored.with_changes(attempts=1, claim="run-1"), expected_claim=None)
    assert journal.get("TXN-NULL1").claim == "run-1"  # type: ignore[union-attr]
