"""Stale dead-letter messages: a job that healed can leave a copy in the DLQ (the sweep parked a
second one, or a redrive moved only one of two), and that copy keeps `dlq_not_empty` firing.
`remove_dead_letter` and `remove_healed_dead_letters` take such copies out, only when diagnose
calls their purchase healthy unless an operator names the message, and keep each in the trail."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenancy.advice import next_action
from tenancy.bootstrap import Services, build
from tenancy.domain.model import JobStatus, QueuedMessage
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding

from helpers import BrokenTenantStore, make_settings, pay, work

STALLED = "stalled: its run stopped 2 times without a word (after 2 attempts)"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build(make_settings(tmp_path / "home", payfast_mode="offline", retry_max_attempts=2))
    yield built
    built.close()


def dead_lettered(services: Services, email: str) -> str:
    transaction_id = pay(services, email)
    work(dataclasses.replace(services, tenants=BrokenTenantStore(services.tenants)))
    job = services.journal.get(transaction_id)
    assert job is not None
    assert job.status is JobStatus.DEAD_LETTERED
    return transaction_id


def parked(services: Services, transaction_id: str) -> list[QueuedMessage]:
    return [message for message in services.runbook.dead_letters() if message.transaction_id == transaction_id]


def healed_with_a_stale_copy(services: Services, email: str) -> tuple[str, QueuedMessage]:
    """Dead-lettered twice over (the worker parked it, and the sweep parked a second copy), then
    one copy redriven and the job provisioned: the other copy stays behind."""
    transaction_id = dead_lettered(services, email)
    services.queue.send_dead_letter(transaction_id, STALLED)
    first, stale = parked(services, transaction_id)
    assert services.runbook.redrive(first.message_id, operator="ops-a")
    work(services)
    assert services.runbook.diagnose(Selector(transaction_id=transaction_id)).healthy
    return transaction_id, stale


def dlq_alert_value(services: Services) -> float:
    return services.alert_monitor.check().result("dlq_not_empty").value


def test_a_stale_copy_keeps_the_alarm_firing_and_diagnose_names_the_command_that_removes_it(
    services: Services,
) -> None:
    transaction_id, stale = healed_with_a_stale_copy(services, "healed@example.com")

    diagnosis = services.runbook.diagnose(Selector(transaction_id=transaction_id))

    assert dlq_alert_value(services) == 1
    assert diagnosis.finding is Finding.HEALTHY
    assert diagnosis.next_step.stale_dead_letters == (stale.message_id,)
    assert f"`tenancy dlq remove {stale.message_id}`" in next_action(diagnosis)


def test_remove_healed_takes_out_only_messages_whose_purchase_is_healthy(services: Services) -> None:
    healed, stale = healed_with_a_stale_copy(services, "healed@example.com")
    broken = dead_lettered(services, "broken@example.com")
    [broken_message] = parked(services, broken)

    preview = services.runbook.remove_healed_dead_letters(operator="ops-b", dry_run=True)

    assert [(d.message.message_id, d.healed, d.removed) for d in preview] == [
        (stale.message_id, True, False),
        (broken_message.message_id, False, False),
    ]
    assert dlq_alert_value(services) == 2  # a dry run changes nothing

    decisions = services.runbook.remove_healed_dead_letters(operator="ops-b")

    assert [(d.message.message_id, d.removed) for d in decisions] == [
        (stale.message_id, True),
        (broken_message.message_id, False),
    ]
    kept = decisions[1]
    assert kept.reason.startswith("the purchase is provisioning_failed: Paid, but no tenant record")
    assert kept.as_document(next_action)["next_action"] == f"tenancy repair --transaction-id {broken} --yes  " + (
        "(re-runs provisioning from the failed step)"
    )
    assert [message.transaction_id for message in services.runbook.dead_letters()] == [broken]
    assert dlq_alert_value(services) == 1  # the broken purchase still fires it, as it should
    trail = services.trail.entries(transaction_id=healed)
    assert [(entry.outcome, entry.operator, entry.finding) for entry in trail] == [
        ("redriven", "ops-a", "provisioning_failed"),
        ("removed", "ops-b", "healthy"),
    ]
    assert trail[1].actions == (
        f"removed message {stale.message_id} from the dead-letter queue (last error: {STALLED})",
    )
    assert services.trail.entries(transaction_id=broken) == []
    assert services.runbook.remove_healed_dead_letters(operator="ops-b") == decisions[1:]


def test_remove_by_id_takes_out_the_named_message_even_if_its_purchase_is_broken(services: Services) -> None:
    broken = dead_lettered(services, "broken@example.com")
    [message] = parked(services, broken)

    refused = services.runbook.remove_dead_letter(message.message_id, operator="ops", only_if_healed=True)
    removed = services.runbook.remove_dead_letter(message.message_id, operator="ops")

    assert refused is not None
    assert (refused.removed, refused.healed) == (False, False)
    assert removed is not None
    assert (removed.removed, removed.healed) == (True, False)
    assert services.runbook.dead_letters() == []
    # The journal still knows: the purchase is diagnosed, audited and alerted on as before.
    assert services.runbook.diagnose(Selector(transaction_id=broken)).finding is Finding.PROVISIONING_FAILED
    assert services.alert_monitor.check().result("multiple_failures").value == 1
    assert services.runbook.remove_dead_letter(message.message_id, operator="ops") is None
    assert services.runbook.remove_dead_letter("no-such-message", operator="ops") is None


def test_a_message_that_names_no_purchase_is_kept_by_healed_and_removed_by_its_id(services: Services) -> None:
    services.queue.send_dead_letter("", "not a provisioning message")
    [foreign] = services.runbook.dead_letters()

    [decision] = services.runbook.remove_healed_dead_letters(operator="ops")
    removed = services.runbook.remove_dead_letter(foreign.message_id, operator="ops")

    assert (decision.removed, decision.diagnosis) == (False, None)
    assert decision.reason.startswith("names no purchase")
    assert removed is not None
    assert removed.removed
    assert services.queue.depth() == (0, 0)
    assert services.trail.entries() == []  # no purchase to keep it under; the log has it
