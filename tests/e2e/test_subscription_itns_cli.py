"""A subscription's whole PayFast side from the command line, against a real offline `tenancy
serve` with a worker: `tenancy itn send` for a subscription plan starts a subscription (a token,
the simulator told), `--token T --renewal` renews it (a receipt, paid through a period on, the
simulated PayFast charged), `--token T --status CANCELLED` cancels it; no second tenant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi
from tenancy.billing.emails import CANCELLATION_SUBJECT, RECEIPT_SUBJECT
from tenancy.domain.billing import SubscriptionStatus, add_months
from tenancy.domain.model import JobStatus, TenantStatus
from tenancy.provisioning.welcome import WELCOME_SUBJECT

from helpers import wait_until
from purchases import wait_for_job
from servers import RunningServer, cli_env, free_port, start_server, stop_server, tenancy


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("subscriptions-home")
    env = cli_env(home, TENANCY_PORT=str(free_port()), TENANCY_PAYFAST_MODE="offline", TENANCY_WORKERS="1")
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


def send(server: RunningServer, *arguments: str) -> dict[str, str]:
    result = tenancy(server.env, "itn", "send", *arguments, "--json")
    assert result.returncode == 0, result.stderr
    sent: dict[str, str] = json.loads(result.stdout)
    assert sent["status_code"] == 200, sent
    return sent


def test_a_subscription_started_renewed_and_cancelled_from_the_cli(offline_server: RunningServer) -> None:
    email = "monthly@example.com"
    first = send(offline_server, "--plan", "professional", "--email", email)
    token = first["token"]
    assert token is not None
    assert len(token) == 36
    wait_for_job(offline_server, first["transaction_id"], JobStatus.SUCCEEDED)
    services = offline_server.services()
    assert services.database is not None
    payfast = SimulatedSubscriptionApi(services.database)  # the server's simulated PayFast, in its database
    try:
        tenant_id = services.journal.get(first["transaction_id"]).tenant_id  # type: ignore[union-attr]
        wait_until(lambda: services.subscriptions.get(tenant_id) is not None, 10, "the subscription to be stored")
        started = services.subscriptions.get(tenant_id)
        assert started is not None
        assert started.paid_through == add_months(started.billing_date, 1)
        assert payfast.fetch(token).run_date == started.paid_through.isoformat()

        for _ in range(2):
            renewal = send(offline_server, "--token", token, "--renewal")
            assert renewal["transaction_id"] == first["transaction_id"]
        renewed = services.subscriptions.get(tenant_id)
        assert renewed is not None
        assert renewed.paid_through == add_months(started.billing_date, 3)
        assert payfast.fetch(token).cycles_complete == 2
        subjects = [message.subject for message in services.mailer.outbox(email)]
        assert sum(subject.startswith(RECEIPT_SUBJECT) for subject in subjects) == 2
        assert subjects.count(WELCOME_SUBJECT) == 1

        send(offline_server, "--token", token, "--status", "CANCELLED")
        cancelled = services.subscriptions.get(tenant_id)
        tenant = services.tenants.get(tenant_id)
        assert cancelled is not None
        assert cancelled.status is SubscriptionStatus.CANCELLING
        assert tenant is not None
        assert tenant.status is TenantStatus.CANCELLING
        assert payfast.fetch(token).status_text == "CANCELLED"
        assert CANCELLATION_SUBJECT in [message.subject for message in services.mailer.outbox(email)]
        assert len(services.journal.find(email=email)) == 1
        assert renewed.paid_through > date(2026, 1, 1)
    finally:
        services.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--renewal"], "--renewal needs --token"),
        (["--token", "no-such-token", "--renewal"], "no subscription has the token"),
        (["--token", "t", "--plan", "starter"], "with --token the ITN carries"),
        (["--email", "a@example.com"], "give --plan and --email"),
    ],
)
def test_itn_send_refuses_what_it_cannot_send_in_one_line(
    offline_server: RunningServer, arguments: list[str], message: str
) -> None:
    result = tenancy(offline_server.env, "itn", "send", *arguments)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_once_off_plan_sends_no_token(offline_server: RunningServer, tmp_path: Path) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text(
        '[plans.lifetime]\nprice_zar = "500.00"\nbilling = "once"\nmax_sites = 1\n'
        "max_generations_per_month = 10\nmax_storage_mb = 10\ncustom_domain_allowed = false\n"
    )
    env = {**offline_server.env, "TENANCY_PLANS_FILE": str(plans), "TENANCY_HOME": str(tmp_path / "home")}
    url = f"{offline_server.base_url}/payments/payfast/itn"

    result = tenancy(env, "itn", "send", "--plan", "lifetime", "--email", "once@example.com", "--url", url, "--json")

    # The server's catalogue has no such plan: what matters here is what was sent.
    assert json.loads(result.stdout)["token"] is None
