"""SIGTERM while a job is in flight: the worker finishes the job in hand before it exits 0; a
worker killed outright (its grace period over) leaves a job the restart finishes; `tenancy serve`
stops its in-process workers the same way and leaves no traceback.

The job is held in flight with `TENANCY_FAULTS=slow_step:users_record:<seconds>` (tenancy.faults):
a sleep right after the users record is written and recorded, before the tenant is activated.
"""

from __future__ import annotations

import time

import pytest

from tenancy.domain.model import JobStatus, Step

from fleet import EXACTLY_ONCE, Fleet, Process, new_payment

SLOW_SECONDS = 2.0
SLOW = f"slow_step:users_record:{SLOW_SECONDS}"


def pay_and_wait_until_in_flight(fleet: Fleet, prefix: str) -> tuple[str, str]:
    """Posts an ITN and returns once the job sleeps inside the slow step."""
    transaction_id, email = new_payment(prefix)
    fleet.pay(transaction_id, email)
    fleet.wait_for_job(transaction_id, lambda job: Step.USERS_RECORD in job.completed_steps, timeout=30)
    return transaction_id, email


def assert_healthy_exactly_once(fleet: Fleet, transaction_id: str, email: str) -> None:
    code, diagnosis = fleet.diagnose(transaction_id)
    assert (code, diagnosis["finding"]) == (0, "healthy"), diagnosis
    assert fleet.footprint(transaction_id, email) == EXACTLY_ONCE


def stop_and_time(process: Process) -> tuple[int, float]:
    started = time.monotonic()
    code = process.terminate(timeout=30)
    return code, time.monotonic() - started


def test_sigterm_lets_a_worker_finish_the_job_in_flight_and_exit_0(tmp_path_factory: pytest.TempPathFactory) -> None:
    fleet = Fleet(tmp_path_factory.mktemp("sigterm-worker"))
    fleet.serve(workers=0)
    worker = fleet.worker(faults=SLOW)
    transaction_id, email = pay_and_wait_until_in_flight(fleet, "sigterm")

    code, took = stop_and_time(worker)

    assert code == 0, worker.text()
    assert took >= SLOW_SECONDS / 2  # it waited for the step in hand instead of walking away
    job = fleet.job(transaction_id)
    assert job is not None
    assert (job.status, job.attempts, job.completed_steps) == (JobStatus.SUCCEEDED, 1, tuple(Step))
    assert '"worker_stopped"' in worker.text().splitlines()[-1]  # the job first, then the loop ended
    assert "Traceback" not in worker.text()
    restarted = fleet.worker()  # nothing left for it: the queue is empty
    assert restarted.terminate() == 0
    assert_healthy_exactly_once(fleet, transaction_id, email)
    fleet.stop_all()


def test_a_worker_killed_when_its_grace_period_runs_out_leaves_a_job_the_restart_finishes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A supervisor that gives up waiting sends SIGKILL: the job is then half done, its message
    still leased. Nothing half-written is lost: the lease runs out, and a restarted worker
    carries on from the last recorded step."""
    fleet = Fleet(tmp_path_factory.mktemp("sigkill-worker"))
    fleet.serve(workers=0)
    worker = fleet.worker(faults="slow_step:users_record:30")
    transaction_id, email = pay_and_wait_until_in_flight(fleet, "grace")

    assert worker.kill() == -9
    half_done = fleet.job(transaction_id)
    assert half_done is not None
    assert half_done.status is JobStatus.RUNNING
    assert half_done.completed_steps == tuple(Step)[: list(Step).index(Step.USERS_RECORD) + 1]

    restarted = fleet.worker()
    done = fleet.wait_until_succeeded(transaction_id)
    assert restarted.terminate() == 0
    assert done.attempts == 2
    assert_healthy_exactly_once(fleet, transaction_id, email)
    fleet.stop_all()


def test_sigterm_lets_tenancy_serve_finish_its_in_process_job_and_leave_no_traceback(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fleet = Fleet(tmp_path_factory.mktemp("sigterm-serve"))
    server = fleet.serve(workers=1, faults=SLOW)
    transaction_id, email = pay_and_wait_until_in_flight(fleet, "serve")

    code, took = stop_and_time(server)

    assert code == 0, server.text()
    assert took >= SLOW_SECONDS / 2
    output = server.text()
    assert "Traceback" not in output
    assert "Application shutdown complete" in output
    job = fleet.job(transaction_id)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    assert_healthy_exactly_once(fleet, transaction_id, email)


def test_tenancy_serve_exits_0_on_sigterm(tmp_path_factory: pytest.TempPathFactory) -> None:
    fleet = Fleet(tmp_path_factory.mktemp("serve-exit"))
    server = fleet.serve(workers=1)

    assert server.terminate() == 0
    assert "Traceback" not in server.text()
