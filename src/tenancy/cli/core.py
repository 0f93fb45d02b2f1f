"""Core commands: serve, worker, provision, itn send, mail list, plans."""

from __future__ import annotations

import json
import re
import signal
import threading
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from tenancy.background import background_threads
from tenancy.cli.common import JsonOption, console, fail, load_settings, print_json, services_for
from tenancy.config import PayfastMode, Settings
from tenancy.domain.ids import new_transaction_id
from tenancy.errors import TenancyError

__all__ = ["itn_app", "mail_app", "register"]

itn_app = typer.Typer(help="Build and send PayFast ITNs (for demos and tests).", no_args_is_help=True)
mail_app = typer.Typer(help="The mail outbox.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for command in (serve, worker, provision, plans):
        app.command()(command)
    app.add_typer(itn_app, name="itn")
    app.add_typer(mail_app, name="mail")


def _exit_cleanly(_signal: int, _frame: object) -> None:
    raise SystemExit(0)


def _warn_if_offline(settings: Settings) -> None:
    if settings.payfast_mode is PayfastMode.OFFLINE:
        import structlog

        structlog.get_logger("tenancy").warning(
            "payfast_offline_mode",
            detail="source-IP and server-confirmation checks are OFF (signature, merchant and amount checks stay on)",
        )


def serve(
    workers: Annotated[int | None, typer.Option(help="In-process worker threads (default TENANCY_WORKERS).")] = None,
) -> None:
    """Start the HTTP server with in-process provisioning workers, the weekly audit and the alert watcher.

    It notifies as `tenancy alerts watch` does, every TENANCY_ALERT_WATCH_SECONDS; TENANCY_ALERT_WATCH=false: off."""
    import uvicorn

    from tenancy.web.app import create_app

    settings = load_settings()
    # A service: its log lines belong on the terminal (one-shot commands keep them to the files).
    with services_for(settings, logs_on_terminal=True) as services:
        _warn_if_offline(settings)
        application = create_app(
            services,
            workers=settings.workers if workers is None else workers,
            alert_watch_seconds=settings.alert_watch_interval,
        )
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal, which would end
        # the process "killed by SIGTERM": exit 0 instead, after our own cleanup has run.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        # proxy_headers off: uvicorn's default believes X-Forwarded-For from 127.0.0.1, which would
        # let any local process claim a PayFast address. The one place that reads the header is
        # `web.deps.client_ip`, and only from TENANCY_TRUSTED_PROXIES.
        uvicorn.run(
            application,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
        )


def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Worker threads.")] = 1,
) -> None:
    """Run provisioning workers (and the weekly audit when it is due) in the foreground until SIGTERM or Ctrl-C."""
    with services_for(logs_on_terminal=True) as services:
        stop = threading.Event()

        def request_stop(_signal: int, _frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        threads = background_threads(services, stop, workers=concurrency)
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.5)


def provision(
    transaction_id: Annotated[str | None, typer.Option(help="The transaction id (TXN-...).")] = None,
    email: Annotated[str | None, typer.Option(help="The owner's email.")] = None,
    plan: Annotated[str | None, typer.Option(help="The plan bought.")] = None,
    name: Annotated[str | None, typer.Option(help="The tenant's display name.")] = None,
    payload: Annotated[
        str | None, typer.Option(help='RB-001 4.1 payload: {"transactionId":..,"email":..,"plan":..}')
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Provision a transaction now (RB-001 4.1's manual trigger)."""
    from tenancy.provisioning.worker import NextAction

    if payload is not None:
        try:
            document = json.loads(payload)
            transaction_id, email, plan = document["transactionId"], document["email"], document["plan"]
            name = document.get("name", name)
        except (ValueError, KeyError, TypeError):
            fail('--payload must be JSON like {"transactionId":"TXN-1","email":"a@b.co","plan":"professional"}', 2)
    if not (transaction_id and email and plan):
        fail("give --transaction-id, --email and --plan (or --payload)", 2)
    with services_for() as services:
        outcome = services.provision_now(transaction_id, email, plan, name)
    job = outcome.job
    result = outcome.as_document()
    if as_json:
        print_json(result)
    else:
        console.print(f"{job.transaction_id}: [bold]{job.status.value}[/bold] (tenant {job.tenant_id})")
        for reason in filter(None, (job.last_error, job.review_reason)):
            console.print(f"  {reason}")
    if outcome.action is NextAction.DEAD_LETTER:
        raise typer.Exit(1)


# Up to ten digits: `itn send` signs what it is given, so any amount it can write is a test of ours.
_AMOUNT_OPTION = re.compile(r"-?[0-9]{1,10}(\.[0-9]{1,2})?")


@itn_app.command("send")
def itn_send(
    plan: Annotated[str | None, typer.Option(help="The plan bought (custom_str1); not with --token.")] = None,
    email: Annotated[str | None, typer.Option(help="The buyer's email; not with --token.")] = None,
    url: Annotated[str | None, typer.Option(help="Where to post (default: this server's ITN URL).")] = None,
    transaction_id: Annotated[str | None, typer.Option(help="m_payment_id (default: a new TXN-...).")] = None,
    pf_payment_id: Annotated[str | None, typer.Option(help="PayFast's payment id (default: random).")] = None,
    status: Annotated[str, typer.Option(help="payment_status.")] = "COMPLETE",
    amount: Annotated[str | None, typer.Option(help="amount_gross (default: the plan's price).")] = None,
    name_first: Annotated[str, typer.Option(help="Buyer's first name.")] = "Test",
    name_last: Annotated[str, typer.Option(help="Buyer's last name.")] = "Customer",
    token: Annotated[
        str | None,
        typer.Option(help="A subscription's token: send its renewal, or its cancellation with --status CANCELLED."),
    ] = None,
    renewal: Annotated[
        bool, typer.Option("--renewal", help="A renewal charge of --token's subscription (its recurring amount).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Post a correctly signed sandbox ITN (with this server's merchant id and passphrase), as
    PayFast would: a checkout's first charge (a subscription plan's carries a new token), or with
    --token a known subscription's renewal or cancellation. Offline, PayFast's simulated
    subscription API is kept in step."""
    import httpx

    from tenancy.payfast_offline import first_charge_itn, subscription_itn
    from tenancy.payments.simulator import encode_form

    settings = load_settings()
    if amount is not None and not _AMOUNT_OPTION.fullmatch(amount):
        fail(f"--amount must be rands and cents like 299.00, not {amount[:24]!r}", 2)
    if token is None and renewal:
        fail("--renewal needs --token: the subscription to renew", 2)
    if token is not None and (plan or email or transaction_id or amount):
        fail("with --token the ITN carries the subscription's own plan, email, m_payment_id and amount", 2)
    if token is None and not (plan and email):
        fail("give --plan and --email (a new purchase), or --token (a subscription's renewal or cancellation)", 2)
    with services_for(settings) as services:
        try:
            if token is not None:
                fields = subscription_itn(services, token, status=status, pf_payment_id=pf_payment_id)
            else:
                fields = first_charge_itn(
                    services,
                    transaction_id=transaction_id or new_transaction_id(),
                    email=email or "",
                    plan=plan or "",
                    amount=amount,
                    status=status,
                    pf_payment_id=pf_payment_id,
                    name_first=name_first,
                    name_last=name_last,
                )
        except TenancyError as error:
            fail(str(error), 2)
    target = url or f"{settings.base_url}/payments/payfast/itn"
    try:
        response = httpx.post(
            target,
            content=encode_form(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
    except httpx.HTTPError as error:
        fail(f"cannot reach {target}: {type(error).__name__}")
    sent = dict(fields)
    result = {
        "url": target,
        "status_code": response.status_code,
        "response": response.text[:500],
        "transaction_id": sent["m_payment_id"],
        "pf_payment_id": sent["pf_payment_id"],
        "token": sent.get("token"),
    }
    if as_json:
        print_json(result)
    else:
        console.print(f"{sent['m_payment_id']} -> {target}: {response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        raise typer.Exit(1)


@mail_app.command("list")
def mail_list(
    to: Annotated[str | None, typer.Option(help="Only emails to this address.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the outbox, newest first."""
    from tenancy.runbook.evidence import mail_status_words

    with services_for() as services:
        messages = list(services.mailer.outbox(to, limit))
    if as_json:
        print_json([asdict(message) for message in messages])
        return
    table = Table("created", "to", "subject", "status", "error")
    for message in messages:
        status = mail_status_words(message.status)
        table.add_row(message.created_at, message.to, message.subject, status, message.error or "")
    console.print(table)


def plans(as_json: JsonOption = False) -> None:
    """Show the plan catalogue."""
    from tenancy.domain.plans import load_catalogue

    try:
        catalogue = load_catalogue(load_settings().plans_file)
    except TenancyError as error:
        fail(str(error), 2)
    rows = [
        {
            "plan": plan.name,
            "name": plan.display_name,
            "price_zar": str(plan.price_zar),
            "billing": plan.billing_name,
            "recurring_price_zar": str(plan.recurring_price_zar) if plan.is_subscription else None,
            "annual_price_zar": None if plan.annual_price_zar is None else str(plan.annual_price_zar),
            "max_sites": plan.limits.max_sites,
            "max_generations_per_month": plan.limits.max_generations_per_month,
            "max_storage_mb": plan.limits.max_storage_mb,
            "custom_domain_allowed": plan.limits.custom_domain_allowed,
        }
        for plan in catalogue.plans
    ]
    if as_json:
        print_json(rows)
        return
    # The table says each price as the pricing page does ("R299.00 / month"), in one column.
    limits = ("max_sites", "max_generations_per_month", "max_storage_mb", "custom_domain_allowed")
    annual = any(plan.annual_price_zar is not None for plan in catalogue.plans)
    table = Table("plan", "name", "price", *(["annual"] if annual else []), *limits)
    for plan, row in zip(catalogue.plans, rows, strict=True):
        yearly = "" if plan.annual_price_zar is None else f"R{plan.annual_price_zar:.2f} / year"
        cells = [plan.name, plan.display_name, plan.price_label(), *([yearly] if annual else [])]
        table.add_row(*cells, *(str(row[key]) for key in limits))
    console.print(table)
