"""Concurrent duplicates against real processes: `tenancy serve` (with a worker thread of its own)
and two `tenancy worker` processes on one SQLite file, while every ITN arrives ten times at once.
Each payment is provisioned exactly once, no request fails with a 5xx, and no process ever
saw "database is locked"."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tenancy.domain.model import JobStatus, PaymentVerdict

from fleet import EXACTLY_ONCE, LOCK_TROUBLE, Fleet, itn_body, new_payment

PAYMENTS = 20
COPIES = 10


@pytest.fixture
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    running = Fleet(tmp_path_factory.mktemp("concurrency-home"))
    yield running
    running.stop_all()


def test_ten_concurrent_copies_of_twenty_itns_provision_each_payment_exactly_once(fleet: Fleet) -> None:
    server = fleet.serve(workers=1)
    workers = [fleet.worker(concurrency=2) for _ in range(2)]
    payments = [new_payment(f"conc{number}") for number in range(PAYMENTS)]
    # PayFast's retries of one notification are byte-for-byte the same: same pf_payment_id, same signature.
    bodies = [itn_body(transaction_id, email, pf_payment_id=str(10**9 + number))
              for number, (transaction_id, email) in enumerate(payments)]  # fmt: skip
    statuses: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=PAYMENTS * COPIES)) as client:
        # One barrier per ITN: its ten copies leave together, and all twenty ITNs overlap.
        barriers = [threading.Barrier(COPIES) for _ in bodies]

        def post(index: int) -> None:
            try:
                barriers[index].wait(timeout=30)
                response = fleet.post_itn(bodies[index], client)
                with lock:
                    statuses.append(response.status_code)
            except BaseException as error:
                with lock:
                    failures.append(error)

        threads = [threading.Thread(target=post, args=(index,)) for index in range(PAYMENTS) for _ in range(COPIES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)

    assert not failures, failures[:3]
    assert len(statuses) == PAYMENTS * COPIES
    assert [status for status in statuses if status >= 500] == []
    assert set(statuses) == {200}  # the first copy is accepted, the others are answered as duplicates
    for transaction_id, _ in payments:
        fleet.wait_until_succeeded(transaction_id, timeout=60)
    for process in workers:
        assert process.terminate() == 0
    assert server.terminate() == 0

    for transaction_id, email in payments:
        job = fleet.job(transaction_id)
        assert job is not None
        assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1), job
        assert fleet.footprint(transaction_id, email) == EXACTLY_ONCE, transaction_id
    with fleet.services() as services:
        assert services.queue.depth() == (0, 0)
        for transaction_id, _ in payments:
            verdicts = sorted(entry.verdict for entry in services.ledger.find(transaction_id=transaction_id))
            assert verdicts == [PaymentVerdict.ACCEPTED] + [PaymentVerdict.DUPLICATE] * (COPIES - 1)
    # Each process has its own output file: the work really was shared between processes.
    assert sum(1 for process in (server, *workers) if '"job_started"' in process.text()) >= 2
    everything = fleet.log_text()
    assert not LOCK_TROUBLE.findall(everything)
    assert "Traceback" not in everything
