"""TENANCY_FAULTS, the test-only fault injection: what it accepts, what it refuses, and that it is
off (and the worker unwrapped) unless set. The crashes themselves run in tests/reliability/."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tenancy.bootstrap import build
from tenancy.domain.model import JobStatus, ProvisioningJob, Step
from tenancy.faults import FaultKind, FaultRule, Faults, FaultyMailer

from helpers import make_settings


def test_rules_are_parsed_from_a_comma_list() -> None:
    faults = Faults.parse(" crash_after:identity_user , crash_after:activate:once,crash_after_send:once,"
                          "slow_step:users_record:2.5")  # fmt: skip

    assert faults.rules == (
        FaultRule(FaultKind.CRASH_AFTER, Step.IDENTITY_USER),
        FaultRule(FaultKind.CRASH_AFTER, Step.ACTIVATE, once=True),
        FaultRule(FaultKind.CRASH_AFTER_SEND, once=True),
        FaultRule(FaultKind.SLOW_STEP, Step.USERS_RECORD, seconds=2.5),
    )
    assert faults.rules[1].marker_name == "crash_after-activate.done"
    assert faults.rules[2].marker_name == "crash_after_send-mail.done"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("explode:identity_user", "unknown fault"),
        ("crash_after", "needs a step"),
        ("crash_after:cognito", "unknown step"),
        ("crash_after:activate:twice", "optional ':once'"),
        ("crash_after_send:activate", "optional ':once'"),
        ("slow_step:activate", "needs seconds"),
        ("slow_step:activate:soon", "needs seconds"),
        ("slow_step:activate:9999", "between 0 and 600"),
    ],
)
def test_a_malformed_rule_is_refused_when_the_settings_load(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        make_settings(tmp_path, faults=text)


def test_without_faults_the_worker_gets_the_real_mailer_and_no_hook(tmp_path: Path) -> None:
    services = build(make_settings(tmp_path))
    try:
        assert not services.settings.fault_plan
        assert Faults().after_step(tmp_path) is None
        assert Faults().mailer(services.mailer, tmp_path) is services.mailer
        assert isinstance(Faults.parse("crash_after_send").mailer(services.mailer, tmp_path), FaultyMailer)
    finally:
        services.close()


def test_a_slow_step_sleeps_only_after_its_own_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("tenancy.faults.time.sleep", slept.append)
    hook = Faults.parse("slow_step:owner_link:0.5").after_step(tmp_path)
    assert hook is not None
    job = ProvisioningJob(
        transaction_id="TXN-1", tenant_id="ten_1", invoice_number="INV-1", email="a@example.com",
        plan="starter", tenant_name="A", status=JobStatus.RUNNING, created_at="", updated_at="",
    )  # fmt: skip

    for step in Step:
        hook(step, job)

    assert slept == [0.5]
