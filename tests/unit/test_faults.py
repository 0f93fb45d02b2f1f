"""TENANCY_FAULTS, the test-only fault injection: what it accepts, what it refuses, and that it is
off (and the worker unwrapped) unless set; `rate:` rules' dice and the count read back from the
log files. The crashes themselves run in tests/reliability/; the rates' effect on each backend in
tests/contract/test_fault_rates.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from tenancy.bootstrap import build
from tenancy.domain.model import JobStatus, ProvisioningJob, Step
from tenancy.faults import FaultKind, FaultRule, Faults, FaultyMailer, InjectedFault, count_injected

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
        ("rate", "needs a fault and a fraction"),
        ("rate:mail_refused", "needs a fault and a fraction"),
        ("rate:mail_refused:0.1:once", "needs a fault and a fraction"),
        ("rate:disk_full:0.1", "unknown rate fault 'disk_full'"),
        ("rate:mail_refused:often", "needs a fraction"),
        ("rate:mail_refused:0", "more than 0 and at most 1"),
        ("rate:mail_refused:-0.5", "more than 0 and at most 1"),
        ("rate:mail_refused:1.5", "more than 0 and at most 1"),
        ("rate:mail_refused:nan", "more than 0 and at most 1"),
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


def test_rate_rules_name_a_fault_and_a_fraction_and_mix_with_the_others(tmp_path: Path) -> None:
    text = "rate:mail_refused:0.05, rate:mail_timeout:0.01,rate:identity_throttled:1,crash_after:activate:once," \
           "rate:store_throttled:0.5,rate:queue_send_failed:0.2"  # fmt: skip

    faults = make_settings(tmp_path, faults=text).fault_plan

    assert faults.rules[0] == FaultRule(FaultKind.RATE, fault=InjectedFault.MAIL_REFUSED, fraction=0.05)
    assert [(rule.fault, rule.fraction) for rule in faults.rules if rule.kind is FaultKind.RATE] == [
        (InjectedFault.MAIL_REFUSED, 0.05),
        (InjectedFault.MAIL_TIMEOUT, 0.01),
        (InjectedFault.IDENTITY_THROTTLED, 1.0),
        (InjectedFault.STORE_THROTTLED, 0.5),
        (InjectedFault.QUEUE_SEND_FAILED, 0.2),
    ]
    assert all(fault in faults.rates() for fault in InjectedFault)
    # The rates hook nothing the step rules do: no after_step hook for them, no wrapped mailer.
    assert Faults.parse("rate:mail_refused:0.5").after_step(tmp_path) is None


def test_without_rate_rules_there_are_no_dice_to_roll() -> None:
    rates = Faults.parse("crash_after:activate").rates()

    assert not rates
    assert not any(rates.roll(fault, "nowhere") for fault in InjectedFault)


def test_a_rate_injects_about_its_fraction_of_the_calls_and_only_its_own_fault() -> None:
    rates = Faults.parse("rate:store_throttled:0.25,rate:mail_refused:1.0").rates()

    with structlog.testing.capture_logs() as logs:
        throttled = sum(rates.roll(InjectedFault.STORE_THROTTLED, "sqlite.begin") for _ in range(4000))
        refused = sum(rates.roll(InjectedFault.MAIL_REFUSED, "smtp.deliver") for _ in range(10))
        timed_out = sum(rates.roll(InjectedFault.MAIL_TIMEOUT, "smtp.deliver") for _ in range(10))

    assert 800 < throttled < 1200  # 1000 expected; this band is over 7 standard deviations wide
    assert (refused, timed_out) == (10, 0)
    injected = [entry for entry in logs if entry["event"] == "fault_injected"]
    assert len(injected) == throttled + refused  # one line per injection, none for a call let through
    assert {(entry["fault"], entry["at"], entry["log_level"]) for entry in injected} == {
        ("store_throttled", "sqlite.begin", "warning"),
        ("mail_refused", "smtp.deliver", "warning"),
    }


def test_injections_are_counted_from_every_log_file_as_they_were_written(log_dir: Path) -> None:
    rates = Faults.parse("rate:store_throttled:1.0,rate:identity_throttled:1.0").rates()
    for _ in range(3):
        rates.roll(InjectedFault.STORE_THROTTLED, "dynamodb.PutItem")
    rates.roll(InjectedFault.IDENTITY_THROTTLED, "cognito-idp.AdminCreateUser")
    structlog.get_logger("tenancy.provisioning.worker").warning("job_retry", fault="store_throttled")
    # Another process's file, with a line its SIGKILL cut short.
    with (log_dir / "provisioning.log").open("a") as other:
        other.write(json.dumps({"event": "fault_injected", "fault": "mail_timeout", "at": "smtp.deliver"}) + "\n")
        other.write('{"event": "fault_injected", "fault": "mail_ti')

    assert count_injected(log_dir) == {"store_throttled": 3, "identity_throttled": 1, "mail_timeout": 1}
    assert count_injected(log_dir.parent / "nowhere") == {}
