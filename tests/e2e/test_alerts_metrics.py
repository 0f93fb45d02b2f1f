"""Alerts and metrics as operators meet them: `tenancy alerts check|watch` as real processes over a
TENANCY_HOME, Slack as a real local HTTP receiver, and `/metrics` from a real `tenancy serve`
(behind TENANCY_METRICS_TOKEN here; loopback-only without it in test_http_hardening.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tenancy.bootstrap import build
from tenancy.config import PAYFAST_SANDBOX_MERCHANT_ID, PAYFAST_SANDBOX_PASSPHRASE
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, OutboxMessage, OutgoingEmail, ProvisioningJob
from tenancy.errors import PermanentError
from tenancy.payments.payfast import parameter_string
from tenancy.payments.simulator import build_itn, encode_form

from helpers import make_settings, wait_until
from servers import (
    PAYFAST_ADDRESS,
    MailCatcher,
    PayfastStandIn,
    RunningServer,
    WebhookReceiver,
    cli_env,
    free_port,
    server_env,
    start_server,
    stop_server,
    tenancy,
)


class RefusingMailer:
    """A mail server that refuses every message for good: the job is dead-lettered at once."""

    def send(self, email: OutgoingEmail) -> str:
        raise PermanentError("550 5.1.1 mailbox unavailable")

    def outbox(self, to: str | None = None, limit: int = 100) -> Sequence[OutboxMessage]:
        return []


def seed_dead_letter(home: Path) -> str:
    """Runs one purchase through the real worker with a refusing mail server; returns its transaction id."""
    services = build(make_settings(home, retry_max_attempts=1))
    try:
        transaction_id = f"TXN-{uuid.uuid4().hex[:10].upper()}"
        now = format_timestamp(services.clock.now())
        job = ProvisioningJob(
            transaction_id=transaction_id,
            tenant_id=tenant_id_for(transaction_id),
            invoice_number=invoice_number_for(transaction_id),
            email=f"{transaction_id.lower()}@example.com",
            plan="professional",
            tenant_name="Acme Studio",
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
        )
        assert services.journal.create(job)
        services.queue.send(transaction_id)
        assert replace(services, mailer=RefusingMailer()).worker.poll_once() == 1
        assert services.queue.depth() == (0, 1)
        stored = services.journal.get(transaction_id)
        assert stored is not None
        assert stored.status is JobStatus.DEAD_LETTERED
        return transaction_id
    finally:
        services.close()


@pytest.fixture
def slack(webhooks: WebhookReceiver) -> WebhookReceiver:
    """A Slack incoming webhook on 127.0.0.1 (its URL carries the secret, as Slack's do)."""
    return webhooks


def webhook_url(slack: WebhookReceiver) -> str:
    return f"{slack.url}/services/T0/B0/webhook-secret"


def watcher_ticks(log: Path) -> int:
    """How many ticks the alert watcher has finished, read from its debug lines in `log`."""
    return log.read_text(errors="replace").count('"event": "alert_watch_tick"') if log.exists() else 0


def wait_for_more_ticks(log: Path, more: int) -> None:
    """Returns once the watcher writing `log` has finished `more` ticks beyond those logged so far."""
    wanted = watcher_ticks(log) + more
    wait_until(lambda: watcher_ticks(log) >= wanted, 20, f"{more} more alert watcher ticks in {log.name}")


# --- alerts check ------------------------------------------------------------------------------------


def test_check_exits_1_with_dlq_not_empty_firing_after_a_job_is_dead_lettered(tmp_path: Path) -> None:
    seed_dead_letter(tmp_path)

    result = tenancy(cli_env(tmp_path), "alerts", "check", "--json", "--no-notify")

    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["firing"] == ["dlq_not_empty"]
    dlq = next(alert for alert in document["alerts"] if alert["rule"] == "dlq_not_empty")
    assert dlq == {
        "rule": "dlq_not_empty",
        "severity": "error",
        "target": "engineering",
        "escalate_to": "Engineering Lead (Slack #platform-alerts)",
        "firing": True,
        "value": 1,
        "threshold": 0,
        "message": "1 job in the dead-letter queue: see `tenancy dlq list`; `tenancy dlq remove --healed`"
        " clears those whose purchase has healed since (RB-001 7)",
    }
    assert document["notifications"] == []


def test_check_exits_0_on_a_clean_home(tmp_path: Path) -> None:
    as_json = tenancy(cli_env(tmp_path), "alerts", "check", "--json")
    as_table = tenancy(cli_env(tmp_path), "alerts", "check")

    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["firing"] == []
    assert len(document["alerts"]) == 8
    assert as_table.returncode == 0, as_table.stderr
    assert "nothing firing" in as_table.stdout
    assert "unresolved_over_an_hour" in as_table.stdout


def test_check_notifies_slack_and_email_for_a_firing_rule(tmp_path: Path, slack: WebhookReceiver) -> None:
    seed_dead_letter(tmp_path)
    env = cli_env(
        tmp_path,
        TENANCY_ALERT_ROUTES="engineering=slack+email",
        TENANCY_ALERT_SLACK_WEBHOOK_URL=webhook_url(slack),
        TENANCY_ALERT_EMAIL_TO="platform@example.com",
    )

    result = tenancy(env, "alerts", "check", "--json")

    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["notifications"] == [
        {"rule": "dlq_not_empty", "destination": "log", "delivered": True, "error": None},
        {"rule": "dlq_not_empty", "destination": "slack", "delivered": True, "error": None},
        {"rule": "dlq_not_empty", "destination": "email", "delivered": True, "error": None},
    ]
    assert slack.texts() == [
        "[FIRING] dlq_not_empty (error): 1 job in the dead-letter queue: see `tenancy dlq list`;"
        " `tenancy dlq remove --healed` clears those whose purchase has healed since (RB-001 7)"
    ]
    services = build(make_settings(tmp_path))
    try:
        [email] = services.mailer.outbox(to="platform@example.com")
    finally:
        services.close()
    assert email.subject.startswith("[tenancy alert] [FIRING] dlq_not_empty (error)")
    assert "webhook-secret" not in result.stdout + result.stderr


def test_a_dead_slack_never_fails_the_check(tmp_path: Path) -> None:
    seed_dead_letter(tmp_path)
    env = cli_env(tmp_path, TENANCY_ALERT_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/services/x/y/z")

    result = tenancy(env, "alerts", "check", "--json")

    assert result.returncode == 1  # the rule fires; the failed notification does not change that
    slack = next(n for n in json.loads(result.stdout)["notifications"] if n["destination"] == "slack")
    assert slack == {
        "rule": "dlq_not_empty",
        "destination": "slack",
        "delivered": False,
        "error": "TransientError: slack unreachable: ConnectError",
    }
    # The command says so itself; the warning goes to the log files, not the terminal.
    assert result.stderr == ""
    assert "alert_notify_failed" in (tmp_path / "logs" / "provisioning.log").read_text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("alerts", "check", "--bogus"), "error: No such option: --bogus"),
        (("alerts", "nonsense"), "error: No such command 'nonsense'."),
        (
            ("alerts", "watch", "--every", "soon"),
            "error: --every interval must look like 30s, 5m, 1h or 7d, not 'soon'",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    result = tenancy(cli_env(tmp_path), *arguments)

    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""


# --- alerts watch ------------------------------------------------------------------------------------


def test_watch_notifies_once_when_a_rule_starts_firing_not_on_every_tick(
    tmp_path: Path, slack: WebhookReceiver
) -> None:
    seed_dead_letter(tmp_path)
    env = cli_env(tmp_path, TENANCY_ALERT_SLACK_WEBHOOK_URL=webhook_url(slack))

    result = tenancy(env, "alerts", "watch", "--every", "50ms", "--max-ticks", "4")

    assert result.returncode == 0, result.stderr
    assert [text.split(":")[0] for text in slack.texts()] == ["[FIRING] dlq_not_empty (error)"]
    assert "FIRING dlq_not_empty" in result.stdout
    assert "alerts watch stopped" in result.stdout


def test_watch_notifies_again_when_the_rule_resolves_and_stops_on_sigterm(
    tmp_path: Path, slack: WebhookReceiver
) -> None:
    transaction_id = seed_dead_letter(tmp_path)
    # At debug the watcher logs each tick, so the test can tell when it has ticked with nothing to say.
    env = cli_env(tmp_path, TENANCY_ALERT_SLACK_WEBHOOK_URL=webhook_url(slack), TENANCY_LOG_LEVEL="debug")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tenancy", "alerts", "watch", "--every", "200ms"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(slack.texts()) == 1, 20, "the FIRING notification")
        services = build(make_settings(tmp_path))
        try:
            assert services.queue.purge(transaction_id) == 1  # the operator clears the DLQ
        finally:
            services.close()
        wait_until(lambda: len(slack.texts()) == 2, 20, "the RESOLVED notification")
        wait_for_more_ticks(tmp_path / "logs" / "provisioning.log", 3)  # nothing new to say
        watcher.send_signal(signal.SIGTERM)
        stdout, stderr = watcher.communicate(timeout=20)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()

    assert watcher.returncode == 0, stderr
    assert [text.split(":")[0] for text in slack.texts()] == [
        "[FIRING] dlq_not_empty (error)",
        "[RESOLVED] dlq_not_empty (error)",
    ]
    assert "RESOLVED dlq_not_empty" in stdout
    assert "alerts watch stopped" in stdout
    assert "Traceback" not in stderr


# --- the server's own watcher (`make run` alerts with no second command) --------------------------


def watching_server_env(home: Path, slack_url: str, **extra: str) -> dict[str, str]:
    """`tenancy serve` as `make run` starts it (offline PayFast, its own workers), checking the
    alert rules every 200 ms and routing Engineering's alerts to `slack_url`."""
    return cli_env(
        home,
        TENANCY_PORT=str(free_port()),
        TENANCY_PAYFAST_MODE="offline",
        TENANCY_WORKER_POLL_SECONDS="0.05",
        TENANCY_ALERT_WATCH_SECONDS="0.2",
        TENANCY_ALERT_ROUTES="engineering=slack",
        TENANCY_ALERT_SLACK_WEBHOOK_URL=slack_url,
        **extra,
    )


def test_serve_notifies_a_dead_lettered_purchase_once_and_stops_cleanly(
    tmp_path: Path, slack: WebhookReceiver
) -> None:
    # Nothing listens at this SMTP address: the welcome email fails, and one attempt is all a job gets.
    env = watching_server_env(
        tmp_path,
        webhook_url(slack),
        TENANCY_SMTP_URL=f"smtp://127.0.0.1:{free_port()}",
        TENANCY_RETRY_MAX_ATTEMPTS="1",
        TENANCY_LOG_LEVEL="debug",  # the watcher's ticks in the log
    )
    server = start_server(tmp_path, env)
    try:
        sent = tenancy(env, "itn", "send", "--plan", "starter", "--email", "stuck@example.com")
        assert sent.returncode == 0, sent.stderr

        wait_until(lambda: bool(slack.texts()), 20, "the server to notify Slack")
        wait_for_more_ticks(server.log_path, 5)  # with the rule still firing: nothing new to say
    finally:
        stop_server(server)

    assert slack.texts() == [
        "[FIRING] dlq_not_empty (error): 1 job in the dead-letter queue: see `tenancy dlq list`;"
        " `tenancy dlq remove --healed` clears those whose purchase has healed since (RB-001 7)"
    ]
    assert server.process.returncode == 0
    log = server.log_text()
    [firing] = [json.loads(line) for line in log.splitlines() if '"event": "alert_firing"' in line]
    assert (firing["rule"], firing["alert_severity"]) == ("dlq_not_empty", "error")
    assert '"event": "alert_watch_stopped"' in log
    assert "Traceback" not in log
    assert "webhook-secret" not in log


@pytest.mark.parametrize("switch", [{"TENANCY_ALERT_WATCH": "false"}, {"TENANCY_ALERT_WATCH_SECONDS": "0"}])
def test_serve_with_its_watcher_turned_off_notifies_nobody(
    tmp_path: Path, slack: WebhookReceiver, switch: dict[str, str]
) -> None:
    seed_dead_letter(tmp_path)
    env = {**watching_server_env(tmp_path, webhook_url(slack)), **switch}
    server = start_server(tmp_path, env)
    try:
        firing = tenancy(env, "alerts", "check", "--json", "--no-notify")
    finally:
        stop_server(server)

    # A watcher logs `alert_watch_started` before its first tick, which would notify at once (the
    # rule fires), and the server joins it before exiting: a cleanly stopped server's whole log
    # says whether one ever ran, with no waiting to see whether it speaks.
    assert server.process.returncode == 0
    assert json.loads(firing.stdout)["firing"] == ["dlq_not_empty"]
    assert "alert_watch_started" not in server.log_text()
    assert slack.texts() == []


def test_a_destination_that_fails_is_logged_and_the_server_keeps_serving(tmp_path: Path) -> None:
    seed_dead_letter(tmp_path)
    dead_slack = f"http://127.0.0.1:{free_port()}/services/T0/B0/webhook-secret"
    server = start_server(tmp_path, watching_server_env(tmp_path, dead_slack, TENANCY_LOG_LEVEL="debug"))
    try:
        wait_until(lambda: "alert_notify_failed" in server.log_text(), 20, "the failed notification to be logged")
        wait_for_more_ticks(server.log_path, 2)  # the watcher goes on ticking after the failure
        health = httpx.get(f"{server.base_url}/healthz", timeout=5)
    finally:
        stop_server(server)

    assert health.status_code == 200
    assert server.process.returncode == 0
    log = server.log_text()
    assert '"event": "alert_firing"' in log  # the log destination still has it
    assert "Traceback" not in log
    assert "webhook-secret" not in log


# --- /metrics from a real server -----------------------------------------------------------------------

METRICS_TOKEN = "metrics-token-" + "7f3a9c2e41d8b605"
METRIC_FAMILIES = {
    "tenancy_queue_depth",
    "tenancy_dlq_depth",
    "tenancy_jobs",
    "tenancy_payments",
    "tenancy_alert_firing",
    "tenancy_purchases",
    "tenancy_last_audit_timestamp_seconds",
    "tenancy_provisioning_error_rate",
}


@pytest.fixture(scope="module")
def metrics_server(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: tuple[MailCatcher, int], payfast: PayfastStandIn
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("metrics-home")
    seed_dead_letter(home)
    env = server_env(
        home,
        free_port(),
        smtp_server[1],
        payfast.server_address[1],
        TENANCY_METRICS_TOKEN=METRICS_TOKEN,
        TENANCY_METRICS_CACHE_SECONDS="0.2",
    )
    running = start_server(home, env)
    # No audit ever ran in this home: the server's schedule runs the first at once.
    wait_until(lambda: "audit_finished" in running.log_text(), 30, "the server's first scheduled audit")
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()
    assert METRICS_TOKEN not in running.log_text()


def scrape(server: RunningServer, token: str | None = METRICS_TOKEN, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10)


def metric_samples(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = scrape(server)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def post_itn(server: RunningServer, payfast: PayfastStandIn, fields: list[tuple[str, str]]) -> httpx.Response:
    payfast.genuine.add(parameter_string(fields))
    return httpx.post(
        f"{server.base_url}/payments/payfast/itn",
        content=encode_form(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": PAYFAST_ADDRESS},
        timeout=30,
    )


def test_metrics_show_the_dlq_and_count_itns_by_verdict(metrics_server: RunningServer, payfast: PayfastStandIn) -> None:
    before = metric_samples(metrics_server)
    assert before[("tenancy_dlq_depth", ())] == 1
    assert before[("tenancy_alert_firing", (("rule", "dlq_not_empty"), ("target", "engineering")))] == 1
    assert before[("tenancy_jobs", (("status", "dead_lettered"),))] == 1
    assert before[("tenancy_payments_total", (("verdict", "accepted"),))] == 0
    transaction_id = f"TXN-{uuid.uuid4().hex[:10].upper()}"
    genuine = build_itn(
        transaction_id=transaction_id,
        email="metrics-owner@example.com",
        plan="starter",
        amount=Decimal("99.00"),
        merchant_id=PAYFAST_SANDBOX_MERCHANT_ID,
        passphrase=PAYFAST_SANDBOX_PASSPHRASE,
    )
    forged = [(key, "1.00" if key == "amount_gross" else value) for key, value in genuine]

    assert post_itn(metrics_server, payfast, genuine).status_code == 200
    post_itn(metrics_server, payfast, forged)

    def provisioned() -> bool:
        return metric_samples(metrics_server)[("tenancy_jobs", (("status", "succeeded"),))] == 1

    wait_until(provisioned, 20, "the purchase to be provisioned")
    after = metric_samples(metrics_server)
    assert after[("tenancy_payments_total", (("verdict", "accepted"),))] == 1
    assert after[("tenancy_payments_total", (("verdict", "rejected"),))] == 1
    assert after[("tenancy_queue_depth", ())] == 0
    assert after[("tenancy_dlq_depth", ())] == 1
    assert ("tenancy_provisioning_error_rate", ()) in after
    rules = {labels[0][1] for name, labels in after if name == "tenancy_alert_firing"}
    assert rules == {
        "dlq_not_empty",
        "error_rate",
        "multiple_failures",
        "payment_failures",
        "security_rejections",
        "unresolved_over_an_hour",
        "suspensions_high",
        "events_undelivered",
    }


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "/metrics needs an Authorization: Bearer header with the metrics token"),
        ("not-the-metrics-token", "the metrics token is not valid"),
        (METRICS_TOKEN[:-1], "the metrics token is not valid"),
        (METRICS_TOKEN + "x", "the metrics token is not valid"),
    ],
)
def test_metrics_without_the_token_are_refused_with_401_and_a_reason(
    metrics_server: RunningServer, token: str | None, reason: str
) -> None:
    # From loopback too: once a token is set, the address earns nothing.
    response = scrape(metrics_server, token)

    assert response.status_code == 401
    assert response.json() == {"detail": reason}
    assert response.headers["www-authenticate"].startswith('Bearer realm="metrics"')
    assert "tenancy_" not in response.text


@pytest.mark.parametrize("authorization", ["Bearer", f"Basic {METRICS_TOKEN}", METRICS_TOKEN, f"Token {METRICS_TOKEN}"])
def test_metrics_refuse_a_malformed_authorization_even_carrying_the_token(
    metrics_server: RunningServer, authorization: str
) -> None:
    response = scrape(metrics_server, None, Authorization=authorization)

    assert response.status_code == 401
    assert response.json() == {"detail": "/metrics needs an Authorization: Bearer header with the metrics token"}


def test_metrics_with_the_token_answer_every_metric_family(metrics_server: RunningServer) -> None:
    response = scrape(metrics_server)

    assert response.status_code == 200
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert families == METRIC_FAMILIES
    assert "server" not in response.headers


def test_concurrent_scrapes_all_answer_the_same_metrics(metrics_server: RunningServer) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: scrape(metrics_server), range(16)))

    assert {response.status_code for response in responses} == {200}
    for response in responses:
        assert {family.name for family in text_string_to_metric_families(response.text)} == METRIC_FAMILIES
