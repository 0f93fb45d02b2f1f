"""`tenancy alerts check` and `tenancy alerts watch`: RB-001 sections 6 and 7 as alert rules."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from tenancy.cli.common import JsonOption, console, print_json, services_for
from tenancy.domain.clock import format_timestamp
from tenancy.domain.durations import parse_duration
from tenancy.errors import InvalidInputError
from tenancy.runbook.alert_watcher import AlertWatcher
from tenancy.runbook.alerts import AlertDispatcher, AlertReport, AlertTransition, Delivery

__all__ = ["alerts_app", "parse_interval", "register"]


def _usage_error_exit(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _usage_message(error: Exception) -> str | None:
    """The message of a Click usage error, else None. Typer now vendors Click (typer._click,
    private) and older Typer used Click itself, so the error is recognised by its shape."""
    format_message = getattr(error, "format_message", None)
    if getattr(error, "exit_code", None) == 2 and callable(format_message):
        return str(format_message())
    return None


class _OneLineErrorCommand(TyperCommand):
    """Click's usage errors span several lines (and Typer boxes them); scripts want one line."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except Exception as error:
            message = _usage_message(error)
            if message is None:
                raise
            raise _usage_error_exit(message) from None


class _OneLineErrorGroup(TyperGroup):
    def resolve_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().resolve_command(*args, **kwargs)
        except Exception as error:
            message = _usage_message(error)
            if message is None:
                raise
            raise _usage_error_exit(message) from None


alerts_app = typer.Typer(
    cls=_OneLineErrorGroup,
    help="Alert rules from RB-001 sections 6 and 7, evaluated over the stores, and their notifications.",
    no_args_is_help=True,
)
NoNotifyOption = Annotated[bool, typer.Option("--no-notify", help="Evaluate and print only; notify nobody.")]


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


def parse_interval(text: str) -> float:
    """Seconds in `90`, `30s`, `5m`, `1h` or `500ms`; InvalidInputError for anything else or zero."""
    return parse_duration(text, what="--every interval", bare_unit="s").total_seconds()


@alerts_app.command("check", cls=_OneLineErrorCommand)
def check(as_json: JsonOption = False, no_notify: NoNotifyOption = False) -> None:
    """Evaluate every rule once and notify for those firing (exit 1 when any fires, 0 otherwise)."""
    with services_for() as services:
        report = services.alert_monitor.check()
        deliveries = [] if no_notify else _notify_firing(services.alert_dispatcher, report)
    if as_json:
        print_json(
            {
                "checked_at": format_timestamp(report.checked_at),
                "firing": [result.rule for result in report.firing],
                "alerts": [result.as_document() for result in report.results],
                "notifications": [delivery.as_document() for delivery in deliveries],
            }
        )
    else:
        _print_report(report, deliveries)
    raise typer.Exit(1 if report.firing else 0)


@alerts_app.command("watch", cls=_OneLineErrorCommand)
def watch(
    every: Annotated[str, typer.Option("--every", help="How often to evaluate: 30s, 5m, 1h.")] = "60s",
    no_notify: NoNotifyOption = False,
    max_ticks: Annotated[
        int | None, typer.Option("--max-ticks", min=1, hidden=True, help="Stop after this many evaluations.")
    ] = None,
) -> None:
    """Evaluate every rule on a schedule; notify when a rule starts firing and when it resolves.
    Runs until SIGTERM or Ctrl-C."""
    try:
        interval = parse_interval(every)
    except InvalidInputError as error:
        raise _usage_error_exit(str(error)) from None
    with services_for() as services, _stop_on_signals() as stop:
        watcher = AlertWatcher(
            services.alert_monitor,
            None if no_notify else services.alert_dispatcher,
            on_transition=_print_transition,
            on_failure=_print_failure,
        )
        watcher.run_until(stop, interval, max_ticks=max_ticks)
    console.print("alerts watch stopped", markup=False)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, with the previous handlers restored afterwards."""
    stop = threading.Event()

    def request_stop(_signal: int, _frame: object) -> None:
        stop.set()

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _notify_firing(dispatcher: AlertDispatcher, report: AlertReport) -> list[Delivery]:
    return [delivery for result in report.firing for delivery in dispatcher.dispatch(result)]


def _print_transition(report: AlertReport, transition: AlertTransition, deliveries: list[Delivery]) -> None:
    result = transition.result
    state = "RESOLVED" if transition.resolved else "FIRING"
    sent = ", ".join(f"{d.destination}: {'sent' if d.delivered else 'failed'}" for d in deliveries) or "not notified"
    console.print(
        f"{format_timestamp(report.checked_at)} {state} {result.rule} ({result.severity.value}) "
        f"-> {result.escalate_to}: {result.message} [{sent}]",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _print_failure(error: Exception) -> None:
    # Logs go to the files only (see cli.common), so the one who runs the watcher is told here.
    typer.echo(f"alert check failed, trying again next tick: {type(error).__name__}: {error}", err=True)


def _print_report(report: AlertReport, deliveries: list[Delivery]) -> None:
    table = Table("rule", "status", "value", "threshold", "notify")
    for result in report.results:
        status = "[bold red]FIRING[/]" if result.firing else "[green]ok[/]"
        table.add_row(result.rule, status, f"{result.value:g}", f"{result.threshold:g}", result.target)
    console.print(table)
    for result in report.firing:
        console.print(f"{result.rule} ({result.severity.value}): {result.message}", markup=False, highlight=False)
        console.print(f"  escalate to: {result.escalate_to}", markup=False, highlight=False)
    for delivery in deliveries:
        outcome = "sent" if delivery.delivered else f"failed ({delivery.error})"
        console.print(f"notified {delivery.destination} of {delivery.rule}: {outcome}", markup=False)
    console.print(f"[bold red]{len(report.firing)} firing[/]" if report.firing else "[green]nothing firing[/]")
