"""The rules about the owner's first sign-in (RB-001 4.4 and 5): the welcome email, and the
purchase that has everything it needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import IdentityUser, IdentityUserStatus, OutboxMessage, TenantStatus
from tenancy.runbook.evidence import STORED_NOT_DELIVERED, CaseFile, mail_status_words, shown
from tenancy.runbook.findings import Evidence, Finding, NextStep, Store
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = ["Welcome", "healthy", "welcome_email_missing", "welcome_of"]

_SENT = {"delivered", "stored"}


@dataclass(frozen=True, slots=True)
class Welcome:
    """Whether the owner has what a first sign-in needs (RB-001 4.4): a welcome email of this
    purchase, sent or kept for this very identity user while its temporary password lasts, or a
    password of their own already. `detail` says which, or why not."""

    given: bool
    detail: str
    only_stored: bool = False  # the emails that count were kept in the outbox, never delivered


def welcome_of(
    user: IdentityUser, welcome_emails: Iterable[OutboxMessage], now: datetime, password_ttl: timedelta
) -> Welcome:
    """The one test of the welcome email that the rules and verify share, so that they cannot
    disagree. An email is for this user when it names the user's subject, or names none (kept
    before emails did); one sent to an identity user since recreated is not (its password went
    with that user). The answer does not depend on the order of the emails."""
    emails = list(welcome_emails)
    mine = [message for message in emails if message.tags.get("identity_sub") in (None, user.sub)]
    sent = [message for message in mine if message.status in _SENT]
    # A welcome older than the temporary password's life no longer lets the owner in.
    usable = [message for message in sent if parse_timestamp(message.created_at) + password_ttl > now]
    if usable:
        newest = max(usable, key=_newest)
        confirmed = user.status is IdentityUserStatus.CONFIRMED
        only_stored = not confirmed and all(message.status == "stored" for message in usable)
        return Welcome(True, f"{mail_status_words(newest.status)} at {newest.created_at}", only_stored)
    if user.status is IdentityUserStatus.CONFIRMED:
        return Welcome(True, "not needed: the owner has chosen a password of their own")
    failed = [message for message in mine if message.status not in _SENT]
    if sent:
        why = "its temporary password has expired"
    elif failed:
        why = f"the last attempt failed: {shown(max(failed, key=_newest).error)}"
    elif emails:
        why = "the one sent went to an identity user since replaced"
    else:
        why = "none was sent"
    return Welcome(False, why)


def _newest(message: OutboxMessage) -> tuple[str, str]:
    return message.created_at, message.message_id


@rule("MAIL001", Finding.WELCOME_EMAIL_MISSING)
def welcome_email_missing(case: CaseFile, context: Context) -> Found | None:
    """RB-001 4.4: the tenant is provisioned but its owner has no usable welcome email (none sent,
    the last one failed, its temporary password expired, or it went to an identity user since
    replaced) and no password of their own: they cannot sign in. The mail provider's counts
    (4.4 step 1) are cited beside it. The repair sets a new temporary password and resends it."""
    tenant, user = case.tenant, case.identity_user
    if tenant is None or user is None:
        return None
    welcome = welcome_of(user, case.welcome_emails, context.now, context.password_ttl)
    if welcome.given:
        return None
    return Found(
        f"Tenant {tenant.tenant_id} is provisioned but the owner has no welcome email: {welcome.detail}.",
        NextStep("sets a new temporary password and resends the welcome email"),
        evidence=_mail_statistics(context),
    )


@rule("OK001", Finding.HEALTHY)
def healthy(case: CaseFile, context: Context) -> Found | None:
    """RB-001 section 5: paid, the tenant active, the identity user's custom:tenant_id, the users
    record and the owner link all agree, and the owner has a welcome email or a password of their
    own: nothing is left to do. It is the last rule, and names what the rules before it did not.
    Its dead-lettered messages from before it healed are named for removal (they keep the DLQ
    alarm firing), and a welcome email only the outbox kept (no SMTP) is said not to have reached
    the owner."""
    tenant, user = case.tenant, case.identity_user
    if tenant is None or user is None:
        return None  # never reached in the registry's order; a rule answers only for its finding
    welcome = welcome_of(user, case.welcome_emails, context.now, context.password_ttl)
    summary = f"Tenant {tenant.tenant_id} is active; {user.username} can sign in."
    if tenant.status is TenantStatus.CANCELLING:
        until = case.subscription.paid_through.isoformat() if case.subscription else "its paid-through date"
        summary = f"Tenant {tenant.tenant_id} is cancelling; {user.username} can sign in until {until}."
    if welcome.only_stored:
        summary += f" Its welcome email was {STORED_NOT_DELIVERED}: the owner has not received it."
    stale = tuple(message.message_id for message in case.messages if message.dead_lettered)
    kept_for = user.username if welcome.only_stored else None
    return Found(summary, NextStep("Nothing to do.", stale_dead_letters=stale, mail_kept_for=kept_for))


def _mail_statistics(context: Context) -> tuple[Evidence, ...]:
    statistics = context.mail_statistics()
    if not statistics:
        return ()
    counts = " ".join(f"{name}={count}" for name, count in statistics)
    # The provider counts every email it ever handled, not this owner's: say so, or the line reads
    # as this purchase's history (this owner's own emails are the `mail:` lines of the case).
    text = f"the mail provider, for all recipients: {counts}"
    return (Evidence(Store.MAIL, {"provider_counts": dict(statistics)}, text),)
