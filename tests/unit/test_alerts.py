"""Alerts (RB-001 sections 6 and 7): each rule at its threshold edges on constructed data, the
monitor over the real stores, watch transitions, and every notifier against a real webhooks."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError

from tenancy.adapters.notifiers import (
    EmailNotifier,
    LogNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    UnconfiguredNotifier,
)
from tenancy.bootstrap import Services, build
from tenancy.cli.alerts import parse_interval
from tenancy.config import ALERT_TARGETS, Settings
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.errors import InvalidInputError, TransientError
from tenancy.payments.intake import IntakePolicy, PaymentIntake
from tenancy.payments.simulator import build_itn, encode_form
from tenancy.runbook.alerts import (
    AlertDispatcher,
    AlertInputs,
    AlertResult,
    AlertThresholds,
    AlertWatch,
    Severity,
    evaluate,
    failed_an_attempt,
    rejection_kind,
)
from tenancy.runbook.findings import ESCALATION
from tenancy.web.app import create_app

from helpers import make_settings
from servers import WebhookReceiver

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
THRESHOLDS = AlertThresholds()  # the defaults: 60 min window, 0.2 error rate over >= 5 jobs, >3, >5, 60 min
_serial = iter(range(100000, 999999))


def ago(minutes: float) -> str:
    return format_timestamp(NOW - timedelta(minutes=minutes))


def job(status: JobStatus = JobStatus.SUCCEEDED, *, attempts: int = 1, created: float = 5, updated: float = 1,
        **changes: Any) -> ProvisioningJob:  # fmt: skip
    transaction_id = f"TXN-{next(_serial)}"
    return ProvisioningJob(
        transaction_id=transaction_id,
        tenant_id=tenant_id_for(transaction_id),
        invoice_number=invoice_number_for(transaction_id),
        email=f"{transaction_id.lower()}@example.com",
        plan="professional",
        tenant_name="Acme",
        status=status,
        created_at=ago(created),
        updated_at=ago(updated),
        attempts=attempts,
        **changes,
    )


def rejected(reason: str, minutes_ago: float = 1) -> PaymentRecord:
    return PaymentRecord(ago(minutes_ago), "197.97.145.150", (), PaymentVerdict.REJECTED, (reason,))


def rule(name: str, inputs: AlertInputs, thresholds: AlertThresholds = THRESHOLDS) -> AlertResult:
    return next(result for result in evaluate(inputs, thresholds, NOW) if result.rule == name)


def inputs(
    *, dlq: int = 0, jobs: tuple[ProvisioningJob, ...] = (), payments: tuple[PaymentRecord, ...] = ()
) -> AlertInputs:
    return AlertInputs(queue_depth=0, dlq_depth=dlq, jobs=jobs, payments=payments)


# --- the rules, each at its edge -------------------------------------------------------------


def test_every_rule_is_evaluated_in_a_fixed_order_and_nothing_fires_on_empty_stores() -> None:
    results = evaluate(inputs(), THRESHOLDS, NOW)

    assert [result.rule for result in results] == [
        "dlq_not_empty",
        "error_rate",
        "multiple_failures",
        "payment_failures",
        "security_rejections",
        "unresolved_over_an_hour",
        "suspensions_high",
        "events_undelivered",
    ]
    assert not any(result.firing for result in results)


def test_dlq_not_empty_fires_on_one_dead_letter_and_goes_to_the_engineering_lead() -> None:
    assert not rule("dlq_not_empty", inputs(dlq=0)).firing

    result = rule("dlq_not_empty", inputs(dlq=1))

    assert result.firing
    assert (result.value, result.threshold) == (1, 0)
    assert result.target == "engineering"
    assert result.escalate_to == "Engineering Lead (Slack #platform-alerts)"
    assert result.severity is Severity.ERROR


def test_error_rate_at_the_threshold_does_not_fire_and_just_above_it_does() -> None:
    at_threshold = (*[job() for _ in range(8)], job(JobStatus.DEAD_LETTERED), job(attempts=2))
    above = (*[job() for _ in range(7)], job(JobStatus.DEAD_LETTERED), job(attempts=2), job(JobStatus.RETRYING))

    assert rule("error_rate", inputs(jobs=at_threshold)).value == 0.2
    assert not rule("error_rate", inputs(jobs=at_threshold)).firing
    result = rule("error_rate", inputs(jobs=above))
    assert result.value == 0.3
    assert result.firing
    assert result.target == "engineering"


def test_error_rate_is_not_judged_below_the_minimum_sample() -> None:
    four_failed = tuple(job(JobStatus.DEAD_LETTERED) for _ in range(4))
    five_failed = (*four_failed, job(JobStatus.DEAD_LETTERED))

    below = rule("error_rate", inputs(jobs=four_failed))
    assert below.value == 1.0
    assert not below.firing
    assert "not judged" in below.message
    assert rule("error_rate", inputs(jobs=five_failed)).firing


def test_error_rate_counts_only_jobs_updated_within_the_window() -> None:
    old_failures = tuple(job(JobStatus.DEAD_LETTERED, updated=61, created=90) for _ in range(5))
    recent = tuple(job() for _ in range(5))

    result = rule("error_rate", inputs(jobs=(*old_failures, *recent)))

    assert result.value == 0.0
    assert not result.firing


def test_a_job_that_succeeded_on_a_retry_failed_an_attempt_and_a_first_time_success_did_not() -> None:
    assert failed_an_attempt(job(attempts=2))
    assert failed_an_attempt(job(JobStatus.RETRYING, attempts=1))
    assert failed_an_attempt(job(JobStatus.DEAD_LETTERED, attempts=1))
    assert not failed_an_attempt(job(attempts=1))
    assert not failed_an_attempt(job(JobStatus.NEEDS_REVIEW, attempts=1))


def test_multiple_failures_fires_on_more_than_three_unresolved_failures() -> None:
    three = (job(JobStatus.DEAD_LETTERED), job(JobStatus.DEAD_LETTERED), job(JobStatus.RETRYING))
    resolved_or_review = (job(attempts=3), job(JobStatus.NEEDS_REVIEW))

    assert not rule("multiple_failures", inputs(jobs=(*three, *resolved_or_review))).firing
    result = rule("multiple_failures", inputs(jobs=(*three, job(JobStatus.RETRYING, updated=600, created=700))))
    assert result.firing
    assert (result.value, result.threshold) == (4, 3)
    assert result.target == "engineering"


@pytest.mark.parametrize(
    "reason",
    ["merchant_id is not ours", "amount_gross does not match the Professional price 299.00", "unknown plan 'gold'"],
)
def test_one_payment_rejection_in_the_window_goes_to_finance(reason: str) -> None:
    result = rule("payment_failures", inputs(payments=(rejected(reason),)))

    assert result.firing
    assert result.value == 1
    assert result.target == "finance"
    assert result.escalate_to == "Finance Team (finance@company.com)"


def test_payment_rejections_outside_the_window_and_security_rejections_are_not_finances() -> None:
    payments = (rejected("merchant_id is not ours", minutes_ago=61), rejected("signature mismatch"))

    assert not rule("payment_failures", inputs(payments=payments)).firing


def test_a_paid_job_needing_review_in_the_window_goes_to_finance() -> None:
    review = job(JobStatus.NEEDS_REVIEW, review_reason="owner@example.com already owns active tenant ten_x")

    assert rule("payment_failures", inputs(jobs=(review,))).firing
    assert not rule("payment_failures", inputs(jobs=(replace(review, updated_at=ago(61)),))).firing


def test_security_rejections_fire_above_five_in_the_window() -> None:
    kinds = ("signature mismatch", "source address 8.8.8.8 is not in PayFast's ranges",
             "PayFast did not confirm the payment")  # fmt: skip
    five = tuple(rejected(kinds[n % 3]) for n in range(5))
    outside = rejected("signature mismatch", minutes_ago=61)

    assert not rule("security_rejections", inputs(payments=(*five, outside))).firing
    result = rule("security_rejections", inputs(payments=(*five, rejected("missing field signature"))))
    assert result.firing
    assert (result.value, result.threshold) == (6, 5)
    assert result.target == "security"
    assert result.escalate_to == "Security Team (security@company.com)"


def test_a_job_unresolved_for_more_than_an_hour_pages_on_call() -> None:
    result = rule("unresolved_over_an_hour", inputs(jobs=(job(JobStatus.DEAD_LETTERED, created=61),)))

    assert result.firing
    assert result.target == "on_call"
    assert result.severity is Severity.CRITICAL
    assert result.escalate_to == "On-call Manager (PagerDuty)"


def test_exactly_an_hour_or_less_is_not_over_an_hour() -> None:
    assert not rule("unresolved_over_an_hour", inputs(jobs=(job(JobStatus.QUEUED, created=60),))).firing
    assert not rule("unresolved_over_an_hour", inputs(jobs=(job(JobStatus.RETRYING, created=59),))).firing


def test_old_succeeded_and_needs_review_jobs_are_resolved_for_on_call() -> None:
    old = (job(JobStatus.SUCCEEDED, created=600), job(JobStatus.NEEDS_REVIEW, created=600))

    assert not rule("unresolved_over_an_hour", inputs(jobs=old)).firing


def test_thresholds_come_from_settings(services: Services) -> None:
    tight = replace(
        services,
        settings=services.settings.model_copy(update={"alert_security_threshold": 0, "alert_failures_threshold": 0}),
    )

    thresholds = tight.alert_monitor.thresholds

    assert thresholds.security_rejections == 0
    assert rule("security_rejections", inputs(payments=(rejected("signature mismatch"),)), thresholds).firing
    assert rule("multiple_failures", inputs(jobs=(job(JobStatus.RETRYING),)), thresholds).firing


# --- rejection reasons as the real intake writes them ------------------------------------------


class RefusingConfirmer:
    def confirm(self, parameter_string: str) -> bool:
        return False


def test_real_intake_rejections_are_classified_as_security_or_finance(services: Services) -> None:
    settings = services.settings
    policy = IntakePolicy(settings.payfast_merchant_id, settings.passphrase, ("197.97.145.144/28",), ())
    intake = PaymentIntake(policy, services.plans, services.ledger, RefusingConfirmer(), services.clock)
    price = services.plans.get("professional").price_zar

    def itn(number: int, **overrides: Any) -> bytes:
        values: dict[str, Any] = {
            "transaction_id": f"TXN-90000{number}",
            "email": "buyer@example.com",
            "plan": "professional",
            "amount": price,
            "merchant_id": settings.payfast_merchant_id,
            "passphrase": settings.passphrase,
        }
        return encode_form(build_itn(**{**values, **overrides}))

    expected = {
        intake.receive(itn(1, passphrase="wrong"), "197.97.145.150"): "security",
        intake.receive(itn(2), "8.8.8.8"): "security",
        intake.receive(itn(3), "197.97.145.150"): "security",  # PayFast did not confirm
        intake.receive(itn(4, merchant_id="10000999"), "197.97.145.150"): "finance",
        intake.receive(itn(5, amount=Decimal("1.00")), "197.97.145.150"): "finance",
        intake.receive(itn(6, plan="gold"), "197.97.145.150"): "finance",
        intake.receive(b"not a form", "197.97.145.150"): None,
        # An unsigned field appended after the signature, and a checkout form posted as an ITN.
        intake.receive(itn(7) + b"&payment_status_2=COMPLETE", "197.97.145.150"): "security",
        intake.receive(b"merchant_key=46f0cd694581a&" + itn(8), "197.97.145.150"): "security",
    }

    for record, kind in expected.items():
        assert record.verdict is PaymentVerdict.REJECTED
        assert rejection_kind(record) == kind, record.reasons


# --- the monitor over the real stores ---------------------------------------------------------


@dataclass
class FixedClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


def test_monitor_reads_queue_journal_and_ledger_through_the_ports(services: Services) -> None:
    services = replace(services, clock=FixedClock(NOW))
    dead = job(JobStatus.DEAD_LETTERED, created=90, updated=2)
    old_success = job(JobStatus.SUCCEEDED, created=900, updated=800)
    for each in (dead, old_success, job(JobStatus.SUCCEEDED)):
        assert services.journal.create(each)
    services.queue.send(dead.transaction_id)
    [message] = services.queue.receive(1, 30)
    services.queue.dead_letter(message.receipt, "permanent: mail refused")
    services.ledger.record(rejected("merchant_id is not ours", minutes_ago=90), None)
    services.ledger.record(rejected("signature mismatch", minutes_ago=1), None)

    window_only = services.alert_monitor.check()
    everything = services.alert_monitor.check(count_all_payments=True)

    assert window_only.checked_at == NOW
    assert (window_only.inputs.queue_depth, window_only.inputs.dlq_depth) == (0, 1)
    assert window_only.inputs.jobs_by_status == {JobStatus.SUCCEEDED: 2, JobStatus.DEAD_LETTERED: 1}
    assert old_success.transaction_id not in {kept.transaction_id for kept in window_only.inputs.jobs}
    assert window_only.inputs.payments_by_verdict == {PaymentVerdict.REJECTED: 1}
    assert everything.inputs.payments_by_verdict == {PaymentVerdict.REJECTED: 2}
    assert [result.rule for result in everything.firing] == ["dlq_not_empty", "unresolved_over_an_hour"]


# --- watch: notify on change, not on every tick -------------------------------------------------


def test_watch_reports_a_rule_once_when_it_starts_firing_and_once_when_it_resolves() -> None:
    watch = AlertWatch()
    firing, quiet = evaluate(inputs(dlq=2), THRESHOLDS, NOW), evaluate(inputs(), THRESHOLDS, NOW)

    started = watch.observe(firing)
    again = watch.observe(firing)
    resolved = watch.observe(quiet)
    still_quiet = watch.observe(quiet)
    refired = watch.observe(firing)

    assert [(t.result.rule, t.resolved) for t in started] == [("dlq_not_empty", False)]
    assert again == []
    assert [(t.result.rule, t.resolved) for t in resolved] == [("dlq_not_empty", True)]
    assert still_quiet == []
    assert [(t.result.rule, t.resolved) for t in refired] == [("dlq_not_empty", False)]


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60), ("5m", 300), ("1h", 3600), ("90", 90), ("250ms", 0.25)])
def test_intervals_read_like_60s_or_5m(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "5 minutes", "-1m", "1.5m"])
def test_bad_intervals_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="interval"):
        parse_interval(text)


# --- notifiers, against a real HTTP receiver ------------------------------------------------------


def closed_port_url() -> str:
    server = WebhookReceiver()
    url = server.url
    server.server_close()
    return url


DLQ_ALERT = evaluate(inputs(dlq=1), THRESHOLDS, NOW)[0]


def test_slack_gets_one_text_line_per_alert(webhooks: WebhookReceiver) -> None:
    slack = SlackNotifier(SecretStr(f"{webhooks.url}/services/T000/B000/secret-token"))

    slack.notify(rule="dlq_not_empty", severity="error", summary="1 job(s) in the dead-letter queue")
    slack.notify(rule="dlq_not_empty", severity="error", summary="0 job(s) in the dead-letter queue", resolved=True)

    assert [(r.path, r.content_type) for r in webhooks.received] == [
        ("/services/T000/B000/secret-token", "application/json")
    ] * 2
    assert [r.body for r in webhooks.received] == [
        {"text": "[FIRING] dlq_not_empty (error): 1 job(s) in the dead-letter queue"},
        {"text": "[RESOLVED] dlq_not_empty (error): 0 job(s) in the dead-letter queue"},
    ]


def test_pagerduty_gets_an_events_v2_trigger_then_a_resolve_keyed_by_the_rule(webhooks: WebhookReceiver) -> None:
    pagerduty = PagerDutyNotifier(f"{webhooks.url}/v2/enqueue", SecretStr("R0UT1NGKEY"), source="tenancy-test@host")

    pagerduty.notify(rule="unresolved_over_an_hour", severity="critical", summary="1 job(s) unresolved")
    pagerduty.notify(rule="unresolved_over_an_hour", severity="critical", summary="0 job(s)", resolved=True)

    assert [r.path for r in webhooks.received] == ["/v2/enqueue", "/v2/enqueue"]
    assert webhooks.received[0].body == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "trigger",
        "dedup_key": "unresolved_over_an_hour",
        "payload": {"summary": "1 job(s) unresolved", "source": "tenancy-test@host", "severity": "critical"},
    }
    assert webhooks.received[1].body == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "resolve",
        "dedup_key": "unresolved_over_an_hour",
    }


@pytest.mark.parametrize("failure", ["http_500", "closed_port"])
def test_a_failing_destination_is_logged_and_reported_never_raised(webhooks: WebhookReceiver, failure: str) -> None:
    webhooks.status = 500
    base = webhooks.url if failure == "http_500" else closed_port_url()
    slack = SlackNotifier(SecretStr(f"{base}/services/T000/B000/secret-token"))
    pagerduty = PagerDutyNotifier(f"{base}/v2/enqueue", SecretStr("R0UT1NGKEY"), source="host")
    dispatcher = AlertDispatcher({"engineering": [slack, pagerduty, LogNotifier()]})

    with structlog.testing.capture_logs() as logs:
        deliveries = dispatcher.dispatch(DLQ_ALERT)

    assert [(d.destination, d.delivered) for d in deliveries] == [("slack", False), ("pagerduty", False), ("log", True)]
    expected = "answered 500" if failure == "http_500" else "unreachable: ConnectError"
    assert all(expected in (d.error or "") for d in deliveries[:2])
    failures = [entry for entry in logs if entry["event"] == "alert_notify_failed"]
    assert [entry["destination"] for entry in failures] == ["slack", "pagerduty"]
    assert any(entry["event"] == "alert_firing" and entry["rule"] == "dlq_not_empty" for entry in logs)
    everything = json.dumps([*logs, *(d.as_document() for d in deliveries)])
    assert "secret-token" not in everything
    assert "R0UT1NGKEY" not in everything


def test_notifier_errors_are_transient_and_name_no_secret(webhooks: WebhookReceiver) -> None:
    webhooks.status = 503
    slack = SlackNotifier(SecretStr(f"{webhooks.url}/services/T000/B000/secret-token"))

    with pytest.raises(TransientError, match="slack answered 503") as raised:
        slack.notify(rule="dlq_not_empty", severity="error", summary="x")

    assert "secret-token" not in str(raised.value)


def test_httpx_request_log_never_shows_the_slack_webhook_url(
    webhooks: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    slack = SlackNotifier(SecretStr(f"{webhooks.url}/services/T000/B000/secret-token"))
    pagerduty = PagerDutyNotifier(f"{webhooks.url}/v2/enqueue", SecretStr("R0UT1NGKEY"), source="host")

    with caplog.at_level(logging.INFO, logger="httpx"):
        slack.notify(rule="dlq_not_empty", severity="error", summary="x")
        pagerduty.notify(rule="dlq_not_empty", severity="error", summary="x")

    assert "/v2/enqueue" in caplog.text  # httpx does log requests, and PagerDuty's URL is no secret
    assert "secret-token" not in caplog.text


def test_email_alert_lands_in_the_outbox(services: Services) -> None:
    email = EmailNotifier(services.mailer, to="finance@company.com", sender="alerts@example.com")
    dispatcher = AlertDispatcher({"finance": [email]})
    payment = rule("payment_failures", inputs(payments=(rejected("merchant_id is not ours"),)))

    [delivery] = dispatcher.dispatch(payment)

    assert delivery.delivered
    [message] = services.mailer.outbox(to="finance@company.com")
    assert message.subject.startswith("[tenancy alert] [FIRING] payment_failures (warning): 1 ITN rejected")
    assert "RB-001" in message.text
    assert message.tags["rule"] == "payment_failures"


def test_a_failing_mailer_is_reported_not_raised(services: Services) -> None:
    class DownMailer:
        def send(self, email: object) -> str:
            raise TransientError("mail server unreachable: ConnectionRefusedError")

    dispatcher = AlertDispatcher({"engineering": [EmailNotifier(DownMailer(), to="ops@example.com", sender="a@b.co")]})  # type: ignore[arg-type]

    [delivery] = dispatcher.dispatch(DLQ_ALERT)

    assert not delivery.delivered
    assert delivery.error == "TransientError: mail server unreachable: ConnectionRefusedError"


# --- routing and settings ----------------------------------------------------------------------


def test_alert_targets_are_rb001_escalation_targets() -> None:
    assert tuple(ESCALATION) == ALERT_TARGETS


def _route(services: Services) -> dict[str, list[str]]:
    routes = services.alert_dispatcher.routes
    return {target: [type(notifier).__name__ for notifier in notifiers] for target, notifiers in routes.items()}


def test_default_routes_log_everything_and_show_unconfigured_destinations(services: Services) -> None:
    assert _route(services) == {
        "engineering": ["LogNotifier", "UnconfiguredNotifier"],  # Slack, no webhook set
        "finance": ["LogNotifier", "EmailNotifier"],  # finance@company.com
        "security": ["LogNotifier", "EmailNotifier"],  # security@company.com
        "on_call": ["LogNotifier", "UnconfiguredNotifier"],  # PagerDuty, no routing key set
    }
    [unconfigured] = services.alert_dispatcher.dispatch(DLQ_ALERT)[1:]
    assert unconfigured.error == "ConfigurationError: TENANCY_ALERT_SLACK_WEBHOOK_URL is not set"


def test_configured_routes_build_each_destination(tmp_path: Path) -> None:
    services = build(
        make_settings(
            tmp_path,
            alert_routes="engineering=slack+email,on_call=pagerduty+slack",
            alert_email_to="ops@example.com",
            alert_slack_webhook_url="http://127.0.0.1:9/hook",
            alert_pagerduty_routing_key="key",
        )
    )
    try:
        assert _route(services) == {
            "engineering": ["LogNotifier", "SlackNotifier", "EmailNotifier"],
            "finance": ["LogNotifier"],
            "security": ["LogNotifier"],
            "on_call": ["LogNotifier", "PagerDutyNotifier", "SlackNotifier"],
        }
    finally:
        services.close()


def test_alert_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TENANCY_ALERT_ROUTES", "security=email, on_call=pagerduty+log")
    monkeypatch.setenv("TENANCY_ALERT_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/secret")
    monkeypatch.setenv("TENANCY_ALERT_EMAIL_TO", "")

    settings = Settings(home=tmp_path)

    assert settings.alert_routes == {"security": ("email",), "on_call": ("pagerduty", "log")}
    assert "secret" not in repr(settings.alert_slack_webhook_url)
    assert settings.alert_email_to is None
    assert (settings.alert_window_minutes, settings.alert_error_rate, settings.alert_security_threshold) == (60, 0.2, 5)


@pytest.mark.parametrize(("routes", "problem"), [("ops=slack", "unknown alert target"),
                                                 ("security=sms", "unknown alert destination")])  # fmt: skip
def test_unknown_routes_are_refused(tmp_path: Path, routes: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make_settings(tmp_path, alert_routes=routes)


def test_unconfigured_notifier_says_which_setting_is_missing() -> None:
    with pytest.raises(Exception, match="TENANCY_ALERT_PAGERDUTY_ROUTING_KEY is not set"):
        UnconfiguredNotifier("pagerduty", "TENANCY_ALERT_PAGERDUTY_ROUTING_KEY").notify(
            rule="x", severity="info", summary="y"
        )


# --- /metrics ------------------------------------------------------------------------------------------


def scrape(app: FastAPI) -> httpx.Response:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenancy") as client:
            return await client.get("/metrics")

    return asyncio.run(get())


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_computed_from_the_stores_with_a_registry_per_app(services: Services, tmp_path: Path) -> None:
    dead = job(JobStatus.DEAD_LETTERED)
    assert services.journal.create(replace(dead, created_at=format_timestamp(services.clock.now()),
                                           updated_at=format_timestamp(services.clock.now())))  # fmt: skip
    services.queue.send(dead.transaction_id)
    [message] = services.queue.receive(1, 30)
    services.queue.dead_letter(message.receipt, "permanent")
    services.ledger.record(rejected("signature mismatch"), None)
    other = build(make_settings(tmp_path / "other"))
    try:
        # Two apps in one process: each must have its own registry (no duplicate-metric error).
        response = scrape(create_app(services))
        other_response = scrape(create_app(other))
    finally:
        other.close()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("tenancy_dlq_depth", ())] == 1
    assert samples[("tenancy_queue_depth", ())] == 0
    assert samples[("tenancy_jobs", (("status", "dead_lettered"),))] == 1
    assert samples[("tenancy_jobs", (("status", "succeeded"),))] == 0
    assert samples[("tenancy_payments_total", (("verdict", "rejected"),))] == 1
    assert samples[("tenancy_payments_total", (("verdict", "accepted"),))] == 0
    assert samples[("tenancy_alert_firing", (("rule", "dlq_not_empty"), ("target", "engineering")))] == 1
    assert samples[("tenancy_alert_firing", (("rule", "security_rejections"), ("target", "security")))] == 0
    assert samples[("tenancy_provisioning_error_rate", ())] == 1.0
    assert _samples(other_response.text)[("tenancy_dlq_depth", ())] == 0


def test_building_the_app_reads_no_store(settings: Settings) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"store read at app creation: {name}")

    services = build(settings)
    try:
        create_app(replace(services, journal=Exploding(), ledger=Exploding(), queue=Exploding()))  # type: ignore[arg-type]
    finally:
        services.close()


def test_suspensions_above_a_days_threshold_go_to_finance_and_undelivered_notices_to_engineering() -> None:
    thresholds = AlertThresholds(suspensions_per_day=10)
    quiet = AlertInputs(queue_depth=0, dlq_depth=0, suspensions_last_day=10, undelivered_notices=0)
    busy = AlertInputs(queue_depth=0, dlq_depth=0, suspensions_last_day=11, undelivered_notices=2)

    calm = {result.rule: result for result in evaluate(quiet, thresholds, NOW)}
    alarmed = {result.rule: result for result in evaluate(busy, thresholds, NOW)}

    assert not calm["suspensions_high"].firing
    assert not calm["events_undelivered"].firing
    assert alarmed["suspensions_high"].firing
    assert alarmed["suspensions_high"].target == "finance"
    assert alarmed["suspensions_high"].message.startswith("11 tenants suspended")
    assert alarmed["events_undelivered"].firing
    assert alarmed["events_undelivered"].target == "engineering"
    assert "event_undelivered" in alarmed["events_undelivered"].message
