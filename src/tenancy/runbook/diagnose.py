"""`diagnose`: name exactly one finding for a purchase's case, by the first rule of the registry
(runbook.rules) that finds something, with the evidence of every store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from tenancy.accounts.roles import roles_of
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import JobStatus
from tenancy.domain.plurals import plural
from tenancy.lifecycle.due import LifecyclePeriods
from tenancy.runbook.evidence import CaseFile, mail_status_words, shown
from tenancy.runbook.findings import ESCALATION, Diagnosis, Evidence, Store
from tenancy.runbook.rules import DEFAULT_PASSWORD_TTL, DEFAULT_PERIODS, Context, Found, Rule, first_match
from tenancy.runbook.rules.subscriptions import payfast_amount, payfast_period

__all__ = ["DEFAULT_PASSWORD_TTL", "ESCALATION_AGE", "classify", "describe", "diagnosis_of"]

# RB-001 section 6: a failure not resolved within an hour goes to the on-call manager.
ESCALATION_AGE = timedelta(hours=1)


def classify(
    case: CaseFile,
    now: datetime,
    *,
    password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
    mail_statistics: Callable[[], tuple[tuple[str, int], ...]] | None = None,
    periods: LifecyclePeriods = DEFAULT_PERIODS,
) -> Diagnosis:
    """The case's diagnosis at `now`. `mail_statistics` reads the mail provider's counts, which
    the welcome-email finding cites; without it they are not cited."""
    context = Context(now, password_ttl, periods=periods)
    if mail_statistics is not None:
        context = dataclasses.replace(context, mail_statistics=mail_statistics)
    rule, found = first_match(case, context)
    return diagnosis_of(case, rule, found, now)


def diagnosis_of(case: CaseFile, rule: Rule, found: Found, now: datetime) -> Diagnosis:
    """The diagnosis a rule's answer makes: every store's evidence and the rule's own, and the
    on-call manager for a failure open for more than an hour that no one else is named for."""
    escalate_to = found.escalate_to
    if escalate_to is None and rule.finding.is_failure and _older_than_an_hour(case, now):
        escalate_to = ESCALATION["on_call"]
    tenant = case.tenant
    return Diagnosis(
        finding=rule.finding,
        summary=found.summary,
        evidence=describe(case) + found.evidence,
        next_step=found.next_step,
        selector=case.selector,
        escalate_to=escalate_to,
        transaction_id=case.transaction_id,
        tenant_id=tenant.tenant_id if tenant else case.tenant_id,
        email=case.email,
        rule=rule.code,
    )


def describe(case: CaseFile) -> tuple[Evidence, ...]:
    """What every store holds about the purchase, one item per record (or per record missing),
    in the order an operator would check them."""
    items: list[Evidence] = []
    transaction_id = case.transaction_id
    for payment in case.payments:
        reasons = f" ({'; '.join(payment.reasons)})" if payment.reasons else ""
        items.append(
            Evidence(
                Store.LEDGER,
                {
                    "pf_payment_id": payment.pf_payment_id,
                    "payment_status": payment.payment_status,
                    "verdict": payment.verdict.value,
                    "reasons": list(payment.reasons),
                    "source_ip": payment.source_ip,
                    "received_at": payment.received_at,
                },
                f"ITN {payment.pf_payment_id or '?'} {payment.payment_status or '?'} {payment.verdict.value}{reasons} "
                f"from {shown(payment.source_ip)} at {payment.received_at}",
            )
        )
    if transaction_id and not case.payments:
        items.append(Evidence(Store.LEDGER, {"transaction_id": transaction_id, "found": False},
                              f"no ITN for {transaction_id}"))  # fmt: skip
    job = case.job
    if job is not None:
        steps = [step.value for step in job.completed_steps]
        done = ", ".join(steps) or "none"
        text = f"{job.transaction_id} {job.status.value}, attempt {job.attempts}, steps done: {done}"
        if job.last_error:
            text += f"; last error: {job.last_error}"
        if job.next_attempt_at and job.status is JobStatus.RETRYING:
            text += f"; next attempt at {job.next_attempt_at}"
        if job.review_reason:
            text += f"; review: {job.review_reason}"
        fields = {
            "transaction_id": job.transaction_id,
            "status": job.status.value,
            "attempts": job.attempts,
            "completed_steps": steps,
            "last_error": job.last_error,
            "next_attempt_at": job.next_attempt_at,
            "review_reason": job.review_reason,
        }
        items.append(Evidence(Store.JOURNAL, fields, text))
    elif transaction_id:
        items.append(Evidence(Store.JOURNAL, {"transaction_id": transaction_id, "found": False},
                              f"no provisioning job for {transaction_id}"))  # fmt: skip
    for message in case.messages:
        where = "dead-letter queue" if message.dead_lettered else "work queue"
        error = f": {message.last_error}" if message.last_error else ""
        fields = {
            "message_id": message.message_id,
            "dead_lettered": message.dead_lettered,
            "receive_count": message.receive_count,
            "last_error": message.last_error,
        }
        text = f"message {message.message_id} in the {where}, received {message.receive_count}x{error}"
        items.append(Evidence(Store.QUEUE, fields, text))
    items.append(_tenant_evidence(case))
    items += _subscription_evidence(case)
    items += _payfast_evidence(case)
    items += _people_evidence(case)
    if case.other_transactions:
        items.append(
            Evidence(
                None,
                {"other_transactions": list(case.other_transactions)},
                f"also bought by this email: {', '.join(case.other_transactions)}",
            )
        )
    return tuple(items)


def _subscription_evidence(case: CaseFile) -> list[Evidence]:
    """The tenant's PayFast subscription and its billing history; nothing for a once-off purchase."""
    subscription = case.subscription
    if subscription is None:
        return []
    next_charge = subscription.next_billing_date
    fields: dict[str, object] = {
        "token": subscription.token,
        "transaction_id": subscription.transaction_id,
        "status": subscription.status.value,
        "plan": subscription.plan,
        "pending_plan": subscription.pending_plan,
        "frequency": subscription.frequency.name.lower(),
        "recurring_amount": f"{subscription.recurring_amount:.2f}",
        "paid_through": subscription.paid_through.isoformat(),
        "next_billing_date": next_charge.isoformat() if next_charge else None,
    }
    pending = f", changing to {subscription.pending_plan} at the next charge" if subscription.pending_plan else ""
    charge = f", next charge {next_charge.isoformat()}" if next_charge else ", no further charges"
    text = (
        f"{subscription.status.value} {subscription.frequency.name.lower()} {subscription.plan} subscription, "
        f"R{subscription.recurring_amount:.2f} / {subscription.frequency.period_word}, paid through "
        f"{subscription.paid_through.isoformat()}{charge}{pending} (token {subscription.token})"
    )
    items = [Evidence(Store.SUBSCRIPTIONS, fields, text)]
    for entry in subscription.history:
        amount = f" R{entry.amount:.2f}" if entry.amount is not None else ""
        invoice = f" invoice {entry.invoice_number}" if entry.invoice_number else ""
        payment = f" payment {entry.pf_payment_id}" if entry.pf_payment_id else ""
        note = f" ({entry.note})" if entry.note else ""
        history = {
            "kind": entry.kind.value,
            "at": entry.at,
            "pf_payment_id": entry.pf_payment_id,
            "amount": f"{entry.amount:.2f}" if entry.amount is not None else None,
            "invoice_number": entry.invoice_number,
            "plan": entry.plan,
        }
        text = f"{entry.kind.value.replace('_', ' ')} at {entry.at}{amount}{invoice}{payment}{note}"
        items.append(Evidence(Store.SUBSCRIPTIONS, history, text))
    return items


def _payfast_evidence(case: CaseFile) -> list[Evidence]:
    """PayFast's own view of the subscription, or why PayFast could not be asked; nothing when it
    was not asked (the audit, a once-off purchase)."""
    view, subscription = case.payfast, case.subscription
    if view is not None:
        fields: dict[str, object] = {
            "token": view.token,
            "status_text": view.status_text,
            "amount_cents": view.amount_cents,
            "frequency": view.frequency,
            "cycles": view.cycles,
            "cycles_complete": view.cycles_complete,
            "run_date": view.run_date,
        }
        text = (
            f"{view.status_text} R{payfast_amount(view):.2f} / {payfast_period(view)}, next run {view.run_date}, "
            f"{plural(view.cycles_complete, 'charge')} complete (token {view.token})"
        )
        return [Evidence(Store.PAYFAST, fields, text)]
    if case.payfast_error is not None and subscription is not None:
        fields = {"token": subscription.token, "asked": False, "error": case.payfast_error}
        text = f"PayFast could not be asked about token {subscription.token}: {case.payfast_error}"
        return [Evidence(Store.PAYFAST, fields, text)]
    return []


def _tenant_evidence(case: CaseFile) -> Evidence:
    tenant = case.tenant
    if tenant is None:
        named = case.tenant_id or case.transaction_id or "this selector"
        return Evidence(Store.TENANTS, {"tenant_id": case.tenant_id, "found": False}, f"no record for {named}")
    fields = {
        "tenant_id": tenant.tenant_id,
        "status": tenant.status.value,
        "plan": tenant.plan,
        "owner_user_id": tenant.owner_user_id,
        "billing_transaction_id": tenant.billing.transaction_id,
    }
    text = (
        f"{tenant.tenant_id} {tenant.status.value}, plan {tenant.plan}, "
        f"owner {shown(tenant.owner_user_id)}, billing {shown(tenant.billing.transaction_id)}"
    )
    return Evidence(Store.TENANTS, fields, text)


def _people_evidence(case: CaseFile) -> list[Evidence]:
    """The identity user, the users records and the welcome emails of the owner."""
    items: list[Evidence] = []
    user = case.identity_user
    if user is not None:
        roles = ",".join(sorted(roles_of(user.attributes)))
        fields = {
            "username": user.username,
            "status": user.status.value,
            "enabled": user.enabled,
            "sub": user.sub,
            "tenant_id": user.tenant_id,
            "roles": roles,
        }
        text = (
            f"{user.username} {user.status.value}, {'enabled' if user.enabled else 'DISABLED'}, "
            f"sub {shown(user.sub)}, custom:tenant_id={shown(user.tenant_id)}, custom:roles={shown(roles)}"
        )
        items.append(Evidence(Store.IDENTITY, fields, text))
    elif case.email:
        items.append(Evidence(Store.IDENTITY, {"username": case.email, "found": False}, f"no user {case.email}"))
    elif case.tenant is not None and case.tenant.owner_user_id:
        subject = case.tenant.owner_user_id
        text = f"no user with the tenant owner's subject {subject}"
        items.append(Evidence(Store.IDENTITY, {"sub": subject, "found": False}, text))
    for record in case.users:
        fields = {
            "user_id": record.user_id,
            "tenant_id": record.tenant_id,
            "role": record.role,
            "status": record.status.value,
        }
        text = f"{shown(record.user_id)} tenant {shown(record.tenant_id)}, {shown(record.role)}, {record.status.value}"
        items.append(Evidence(Store.USERS, fields, text))
    if case.email and not case.users:
        items.append(Evidence(Store.USERS, {"email": case.email, "found": False}, f"no record for {case.email}"))
    for email in case.welcome_emails:
        error = f" ({email.error})" if email.error else ""
        recipient = email.tags.get("identity_sub")
        earlier = recipient is not None and user is not None and recipient != user.sub
        fields = {
            "message_id": email.message_id,
            "status": email.status,
            "error": email.error,
            "created_at": email.created_at,
            "to_an_earlier_identity_user": earlier,
        }
        to_whom = " to an earlier identity user" if earlier else ""
        text = f"welcome email {mail_status_words(email.status)}{error}{to_whom} at {email.created_at}"
        items.append(Evidence(Store.MAIL, fields, text))
    if case.email and not case.welcome_emails:
        items.append(Evidence(Store.MAIL, {"to": case.email, "found": False}, f"no welcome email to {case.email}"))
    return items


def _older_than_an_hour(case: CaseFile, now: datetime) -> bool:
    started = case.job.created_at if case.job else (case.payments[0].received_at if case.payments else None)
    return started is not None and now - parse_timestamp(started) > ESCALATION_AGE
