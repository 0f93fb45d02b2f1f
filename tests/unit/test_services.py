"""The composition root's `Services`: each service is built once per instance, and
`dataclasses.replace` makes an instance whose services are built on the replaced adapters."""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from tenancy.bootstrap import Services, build
from tenancy.domain.model import JobStatus
from tenancy.errors import ConfigurationError
from tenancy.ports import JobQueue

from helpers import journal_job, make_settings

SERVICES = sorted(name for name, member in vars(Services).items() if isinstance(member, cached_property))


class WatchedQueue:
    """The real queue, with the name of every method called on it written down."""

    def __init__(self, real: JobQueue) -> None:
        self._real = real
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        member = getattr(self._real, name)
        if not callable(member):
            return member

        def watched(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return member(*args, **kwargs)

        return watched


def test_the_services_are_cached_properties_not_methods() -> None:
    assert {
        "intake",
        "accounts",
        "sessions",
        "operators",
        "saga",
        "worker",
        "sweeper",
        "evidence_stores",
        "runbook",
        "alert_monitor",
        "alert_dispatcher",
        "logs",
    } <= set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_built_once_per_services(services: Services, name: str) -> None:
    assert getattr(services, name) is getattr(services, name)


def test_a_replaced_adapter_reaches_the_new_instances_services_and_not_the_old_ones(services: Services) -> None:
    old_runbook, old_worker = services.runbook, services.worker
    watched = WatchedQueue(services.queue)
    replaced = dataclasses.replace(services, queue=watched)
    job = journal_job(services, "TXN-REPLACED1", "owner@example.com")
    services.queue.send(job.transaction_id)

    assert replaced.worker.poll_once() == 1
    assert replaced.runbook.dead_letters() == []
    assert {"receive", "delete", "messages"} <= set(watched.calls)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.status is JobStatus.SUCCEEDED

    # The old instance keeps the services it built, still on the queue it was built with.
    assert services.runbook is old_runbook
    assert services.worker is old_worker
    assert replaced.runbook is not old_runbook
    assert replaced.worker is not old_worker
    seen = list(watched.calls)
    services.queue.send(journal_job(services, "TXN-REPLACED2", "other@example.com").transaction_id)
    assert services.worker.poll_once() == 1
    assert services.runbook.dead_letters() == []
    assert watched.calls == seen


def test_the_fault_plan_hooks_the_workers_saga_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("tenancy.faults.time.sleep", slept.append)
    services = build(make_settings(tmp_path / "home", faults="slow_step:owner_link:0.5"))
    try:
        services.saga.run(journal_job(services, "TXN-PLAIN1", "plain@example.com"))
        assert slept == []

        job = journal_job(services, "TXN-FAULTY1", "faulty@example.com")
        services.queue.send(job.transaction_id)
        assert services.worker.poll_once() == 1
        assert slept == [0.5]
    finally:
        services.close()


def test_subscriptions_without_a_passphrase_are_refused_at_start_once_off_plans_are_not(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="need a passphrase: set TENANCY_PAYFAST_PASSPHRASE"):
        build(make_settings(tmp_path / "monthly", payfast_passphrase=""))
    once_off = tmp_path / "plans.toml"
    once_off.write_text(
        '[plans.lifetime]\nprice_zar = "500.00"\nbilling = "once"\nmax_sites = 1\n'
        "max_generations_per_month = 10\nmax_storage_mb = 10\ncustom_domain_allowed = false\n"
    )
    built = build(make_settings(tmp_path / "once", payfast_passphrase="", plans_file=once_off))
    try:
        assert built.plans.names() == ("lifetime",)
    finally:
        built.close()
