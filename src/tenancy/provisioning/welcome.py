"""The welcome email: login link, temporary password and whom to ask for help, as text and as
escaped HTML."""

from __future__ import annotations

from html import escape

from tenancy.domain.model import OutgoingEmail, ProvisioningJob
from tenancy.domain.plans import Plan
from tenancy.domain.plurals import plural

__all__ = ["WELCOME_SUBJECT", "welcome_email"]

WELCOME_SUBJECT = "Welcome to Site Builder"


def welcome_email(
    job: ProvisioningJob,
    plan: Plan,
    *,
    password: str,
    login_url: str,
    sender: str,
    password_ttl_days: int,
    support_email: str,
) -> OutgoingEmail:
    text = (
        f"Hello {job.tenant_name},\n\n"
        f"Your Site Builder {plan.display_name} account is ready.\n\n"
        f"Sign in: {login_url}\n"
        f"Email: {job.email}\n"
        f"Temporary password: {password}\n\n"
        f"You will choose your own password when you first sign in. "
        f"The temporary password expires in {plural(password_ttl_days, 'day')}.\n\n"
        f"Tenant: {job.tenant_id}\nInvoice: {job.invoice_number}\n\n"
        f"Questions? Email {support_email} and quote your invoice number.\n"
    )
    html = (
        f"<p>Hello {escape(job.tenant_name)},</p>"
        f"<p>Your Site Builder {escape(plan.display_name)} account is ready.</p>"
        f'<p>Sign in: <a href="{escape(login_url)}">{escape(login_url)}</a><br>'
        f"Email: {escape(job.email)}<br>"
        f"Temporary password: <code>{escape(password)}</code></p>"
        f"<p>You will choose your own password when you first sign in. "
        f"The temporary password expires in {plural(password_ttl_days, 'day')}.</p>"
        f"<p>Tenant: {escape(job.tenant_id)}<br>Invoice: {escape(job.invoice_number)}</p>"
        f'<p>Questions? Email <a href="mailto:{escape(support_email)}">{escape(support_email)}</a> '
        "and quote your invoice number.</p>"
    )
    return OutgoingEmail(
        to=job.email,
        subject=WELCOME_SUBJECT,
        text=text,
        html=html,
        sender=sender,
        tags={"kind": "welcome", "transaction_id": job.transaction_id, "tenant_id": job.tenant_id},
        secrets=(password,),
    )
