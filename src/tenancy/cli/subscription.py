"""`tenancy subscription`: a tenant's PayFast subscription as an operator sees and changes it
(show, change-plan, cancel), each change confirmed first and kept in the repair trail."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from rich.table import Table

from tenancy.billing.changes import SubscriptionChange
from tenancy.bootstrap import Services
from tenancy.cli.common import JsonOption, OperatorOption, console, fail, operator_name, print_json, services_for
from tenancy.domain.billing import BillingEntry, Subscription
from tenancy.domain.model import Tenant
from tenancy.errors import InvalidInputError, TenancyError
from tenancy.runbook.evidence import Selector, find_purchase, shown

__all__ = ["SelectorArgument", "register", "selected_tenant_id", "subscription_app"]

subscription_app = typer.Typer(help="A tenant's PayFast subscription: show, change plan, cancel.", no_args_is_help=True)

SelectorArgument = Annotated[
    str, typer.Argument(metavar="SELECTOR", help="The owner's email, the tenant id (ten_...) or a transaction id.")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Change without asking.")]


def register(app: typer.Typer) -> None:
    app.add_typer(subscription_app, name="subscription")


def _selector(key: str) -> Selector:
    """As the operations console reads a key (`Selector.parse`)."""
    try:
        return Selector.parse(key)
    except InvalidInputError:
        fail("give a selector: the owner's email, the tenant id (ten_...) or a transaction id", 2)


def selected_tenant_id(services: Services, key: str) -> str:
    """The tenant the selector names, found as the runbook finds a purchase; exit 1 if none."""
    selector = _selector(key)
    if selector.tenant_id:
        if services.tenants.get(selector.tenant_id) is None:
            fail(f"no tenant {selector.tenant_id}")
        return selector.tenant_id
    # A checkout that (re)subscribed an existing tenant names it only in its subscription.
    candidates = [selector.transaction_id] if selector.transaction_id else []
    purchase = find_purchase(selector, services.evidence_stores)
    candidates += [transaction_id for transaction_id in (purchase.transaction_id,) if transaction_id]
    for transaction_id in candidates:
        subscription = services.subscriptions.find_by_transaction(transaction_id)
        if subscription is not None:
            return subscription.tenant_id
        job = services.journal.get(transaction_id)
        if job is not None and services.tenants.get(job.tenant_id) is not None:
            return job.tenant_id
        tenant = services.tenants.find_by_transaction(transaction_id)
        if tenant is not None:
            return tenant.tenant_id
    fail(f"no tenant found for {selector.describe()}")



def _entry_document(entry: BillingEntry) -> dict[str, object]:
    return {
        "kind": entry.kind.value,
        "at": entry.at,
        "plan": entry.plan,
        "amount": None if entry.amount is None else f"{entry.amount:.2f}",
        "pf_payment_id": entry.pf_payment_id,
        "invoice_number": entry.invoice_number,
        "note": entry.note,
    }


def subscription_document(subscription: Subscription, tenant: Tenant | None) -> dict[str, object]:
    """The subscription for `--json`: dates ISO, amounts as strings in rands ("299.00")."""
    next_billing = subscription.next_billing_date
    return {
        "tenant_id": subscription.tenant_id,
        "tenant_status": tenant.status.value if tenant else None,
        "transaction_id": subscription.transaction_id,
        "status": subscription.status.value,
        "plan": subscription.plan,
        "pending_plan": subscription.pending_plan,
        "token": subscription.token,
        "frequency": subscription.frequency.name.lower(),
        "recurring_amount": f"{subscription.recurring_amount:.2f}",
        "billing_date": subscription.billing_date.isoformat(),
        "paid_through": subscription.paid_through.isoformat(),
        "next_billing_date": next_billing.isoformat() if next_billing else None,
        "history": [_entry_document(entry) for entry in subscription.history],
    }


def _print_subscription(document: dict[str, object], history: tuple[BillingEntry, ...]) -> None:
    summary = Table("subscription", "", show_header=False)
    for key in (
        "tenant_id", "tenant_status", "transaction_id", "status", "plan", "pending_plan", "token", "frequency",
        "recurring_amount", "paid_through", "next_billing_date",
    ):  # fmt: skip
        value = document[key]
        summary.add_row(key.replace("_", " "), shown(f"R{value}" if key == "recurring_amount" else value))
    console.print(summary)
    # Plain lines, never wrapped or cut: an operator copies invoice numbers and payment ids out of them.
    typer.echo("history:")
    for entry in history:
        amount = f"R{entry.amount:.2f}" if entry.amount is not None else "-"
        details = [entry.invoice_number, f"pf_payment_id {entry.pf_payment_id}" if entry.pf_payment_id else None]
        line = f"  {entry.at}  {entry.kind.value:<12}  {entry.plan or '-':<12}  {amount:>9}"
        typer.echo("  ".join([line, *(detail for detail in details if detail), entry.note]).rstrip())


def _refused(error: TenancyError) -> NoReturn:
    fail(str(error))


@subscription_app.command("show")
def show(selector: SelectorArgument, as_json: JsonOption = False) -> None:
    """Status, plan, pending plan, token, frequency, recurring amount, paid through, next billing
    date and history of a tenant's subscription (exit 1 when the tenant has none)."""
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        subscription = services.subscriptions.get(tenant_id)
        tenant = services.tenants.get(tenant_id)
    if subscription is None:
        fail(f"tenant {tenant_id} has no subscription (a once-off purchase, or never subscribed)")
    document = subscription_document(subscription, tenant)
    if as_json:
        print_json(document)
    else:
        _print_subscription(document, subscription.history)


def _print_change(change: SubscriptionChange, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "kind": change.kind.value,
                "tenant_id": change.tenant_id,
                "dry_run": change.dry_run,
                "outcome": change.outcome,
                "actions": list(change.actions),
                "emailed": change.emailed,
                "before": subscription_document(change.before, change.tenant_before),
                "after": subscription_document(change.after, change.tenant_after),
            }
        )
        return
    typer.echo(f"{change.kind.value} of {change.tenant_id}")
    typer.echo("plan:" if change.dry_run else "done:")
    for action in change.actions:
        typer.echo(f"  - {action}")
    suffix = " (nothing changed)" if change.dry_run else ""
    console.print(f"outcome: [bold]{change.outcome}[/]{suffix}")


def _confirmed(preview: SubscriptionChange, question: str) -> None:
    """Shows what would be done and asks; a change never runs unasked without a terminal."""
    if not sys.stdin.isatty():
        fail("this changes the subscription at PayFast: add --yes (or --dry-run to see the plan)", 2)
    for action in preview.actions:
        typer.echo(f"  will: {action}")
    if not typer.confirm(question):
        fail("not changed", 1)


@subscription_app.command("change-plan")
def change_plan(
    selector: SelectorArgument,
    plan: Annotated[str, typer.Argument(help="The plan to move to (a subscription plan of the catalogue).")],
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upgrade (limits raised now) or downgrade (from the next renewal, refused when the tenant's
    usage exceeds the lower plan's limits); PayFast charges the new amount from the next charge."""
    who = operator_name(operator)
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        changes = services.subscription_changes
        try:
            if not dry_run and not yes:
                preview = changes.plan_change(tenant_id, plan, actor=who, dry_run=True)
                _confirmed(preview, f"Change {tenant_id} to {plan}?")
            change = changes.plan_change(tenant_id, plan, actor=who, dry_run=dry_run)
        except TenancyError as error:
            _refused(error)
    _print_change(change, as_json=as_json)


@subscription_app.command("cancel")
def cancel(
    selector: SelectorArgument,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel the subscription at PayFast: the tenant keeps access until the paid-through date
    (`cancelling`) and the owner is emailed that last day."""
    who = operator_name(operator)
    with services_for() as services:
        tenant_id = selected_tenant_id(services, selector)
        changes = services.subscription_changes
        try:
            if not dry_run and not yes:
                preview = changes.cancel(tenant_id, actor=who, dry_run=True)
                _confirmed(preview, f"Cancel the subscription of {tenant_id}?")
            change = changes.cancel(tenant_id, actor=who, dry_run=dry_run)
        except TenancyError as error:
            _refused(error)
    _print_change(change, as_json=as_json)
