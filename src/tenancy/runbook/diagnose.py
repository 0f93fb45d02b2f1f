"""`diagnose`: read every store about one purchase and name exactly one finding, with its evidence."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tenancy.accounts.roles import OPERATOR_ROLE, TENANT_ADMIN_ROLE, roles_of
from tenancy.domain.clock import parse_timestamp
from tenancy.domain.model import (
    IdentityUser,
    IdentityUserStatus,
    JobStatus,
    OutboxMessage,
    PaymentVerdict,
    ProvisioningJob,
    Tenant,
    TenantStatus,
    UserRecord,
)
from tenancy.domain.plurals import plural
from tenancy.provisioning.worker import STALLED_AFTER
from tenancy.runbook.evidence import (
    STORED_NOT_DELIVERED,
    CaseFile,
    EvidenceStores,
    Selector,
    gather,
    mail_statistics,
    mail_status_words,
    shown,
)
from tenancy.runbook.findings import ESCALATION, Diagnosis, Finding

__all__ = [
    "DEFAULT_PASSWORD_TTL",
    "ESCALATION_AGE",
    "STALLED_AFTER",
    "Welcome",
    "classify",
    "describe",
    "diagnose",
    "is_operator_account",
    "plainly_healthy",
    "welcome_of",
    "with_mail_statistics",
]

# RB-001 section 6: a failure not resolved within an hour goes to the on-call manager.
ESCALATION_AGE = timedelta(hours=1)
# TENANCY_TEMPORARY_PASSWORD_TTL_DAYS's default; the runbook passes the configured one.
DEFAULT_PASSWORD_TTL = timedelta(days=7)

_SENT = {"delivered", "stored"}
Found = Callable[[Finding, str, str, "str | None"], Diagnosis]
_IN_FLIGHT = {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING}


def diagnose(selector: Selector, stores: EvidenceStores, now: datetime) -> Diagnosis:
    case = gather(selector, stores)
    diagnosis = classify(case, now)
    return classify(with_mail_statistics(case, diagnosis, stores), now)


def describe(case: CaseFile) -> tuple[str, ...]:
    """The evidence, one line per store, in the order an operator would check them."""
    lines: list[str] = []
    for payment in case.payments:
        reasons = f" ({'; '.join(payment.reasons)})" if payment.reasons else ""
        lines.append(
            f"ledger: ITN {payment.pf_payment_id or '?'} {payment.payment_status or '?'} "
            f"{payment.verdict.value}{reasons} from {shown(payment.source_ip)} at {payment.received_at}"
        )
    if case.transaction_id and not case.payments:
        lines.append(f"ledger: no ITN for {case.transaction_id}")
    if case.job is not None:
        job = case.job
        steps = ", ".join(step.value for step in job.completed_steps) or "none"
        line = f"journal: {job.transaction_id} {job.status.value}, attempt {job.attempts}, steps done: {steps}"
        if job.last_error:
            line += f"; last error: {job.last_error}"
        if job.next_attempt_at and job.status is JobStatus.RETRYING:
            line += f"; next attempt at {job.next_attempt_at}"
        if job.review_reason:
            line += f"; review: {job.review_reason}"
        lines.append(line)
    elif case.transaction_id:
        lines.append(f"journal: no provisioning job for {case.transaction_id}")
    for message in case.messages:
        where = "dead-letter queue" if message.dead_lettered else "work queue"
        error = f": {message.last_error}" if message.last_error else ""
        lines.append(f"queue: message {message.message_id} in the {where}, received {message.receive_count}x{error}")
    if case.tenant is not None:
        tenant = case.tenant
        lines.append(
            f"tenants: {tenant.tenant_id} {tenant.status.value}, plan {tenant.plan}, "
            f"owner {shown(tenant.owner_user_id)}, billing {shown(tenant.billing.transaction_id)}"
        )
    else:
        lines.append(f"tenants: no record for {case.tenant_id or case.transaction_id or 'this selector'}")
    user = case.identity_user
    if user is not None:
        roles = ",".join(sorted(roles_of(user.attributes)))
        lines.append(
            f"identity: {user.username} {user.status.value}, {'enabled' if user.enabled else 'DISABLED'}, "
            f"sub {shown(user.sub)}, custom:tenant_id={shown(user.tenant_id)}, custom:roles={shown(roles)}"
        )
    elif case.email:
        lines.append(f"identity: no user {case.email}")
    elif case.tenant is not None and case.tenant.owner_user_id:
        lines.append(f"identity: no user with the tenant owner's subject {case.tenant.owner_user_id}")
    for record in case.users:
        lines.append(
            f"users: {shown(record.user_id)} tenant {shown(record.tenant_id)}, {shown(record.role)}, "
            f"{record.status.value}"
        )
    if case.email and not case.users:
        lines.append(f"users: no record for {case.email}")
    for email in case.welcome_emails:
        error = f" ({email.error})" if email.error else ""
        recipient = email.tags.get("identity_sub")
        to_whom = "" if recipient is None or user is None or recipient == user.sub else " to an earlier identity user"
        lines.append(f"mail: welcome email {mail_status_words(email.status)}{error}{to_whom} at {email.created_at}")
    if case.email and not case.welcome_emails:
        lines.append(f"mail: no welcome email to {case.email}")

    if case.other_transactions:
        lines.append(f"also bought by this email: {', '.join(case.other_transactions)}")
    return tuple(lines)


def classify(case: CaseFile, now: datetime, *, password_ttl: timedelta = DEFAULT_PASSWORD_TTL) -> Diagnosis:
    evidence = describe(case)
    job, tenant, identity_user = case.job, case.tenant, case.identity_user

    def found(finding: Finding, summary: str, next_action: str, escalate_to: str | None = None) -> Diagnosis:
        if (
            escalate_to is None
            and finding not in {Finding.HEALTHY, Finding.IN_PROGRESS}
            and _older_than_an_hour(case, now)
        ):
            escalate_to = ESCALATION["on_call"]
        return Diagnosis(
            finding=finding,
            summary=summary,
            evidence=evidence + _mail_statistics_line(case, finding),
            next_action=next_action,
            escalate_to=escalate_to,
            transaction_id=case.transaction_id,
            tenant_id=tenant.tenant_id if tenant else case.tenant_id,
            email=case.email,
        )

    selector = _selector_flag(case)
    repair = f"tenancy repair {selector} --yes"
    if not case.payments and job is None and tenant is None and identity_user is None:
        return found(
            Finding.PAYMENT_NOT_FOUND,
            f"No payment, job, tenant or identity user for {case.selector.describe()}.",
            "Ask the customer for the PayFast receipt (pf_payment_id) and check the merchant dashboard.",
        )
    if case.payments and case.completed_payment is None and job is None and tenant is None:
        return _payment_not_complete(case, found)
    if identity_user is not None and is_operator_account(identity_user):
        # Before every tenant branch: each of their repairs would make the operator a tenant's owner.
        return _not_a_tenant(case, identity_user, found)
    if job is not None and job.status is JobStatus.NEEDS_REVIEW:
        return found(
            Finding.NEEDS_REVIEW,
            f"Provisioning stopped for a human decision: {shown(job.review_reason)}.",
            "Decide with the customer: refund the payment, or provision a second tenant by hand.",
            ESCALATION["finance"],
        )
    if job is not None and job.status in _IN_FLIGHT and _still_moving(case, now):
        when = f"; next attempt at {job.next_attempt_at}" if job.status is JobStatus.RETRYING else ""
        return found(
            Finding.IN_PROGRESS,
            f"Provisioning is {job.status.value} (attempt {job.attempts}){when}.",
            "Wait for the worker; diagnose again after the next attempt.",
        )
    if tenant is None:
        if identity_user is not None:
            named = identity_user.tenant_id or case.tenant_id
            missing = f"tenant record {named} is missing" if named else "it has no tenant record"
            return found(
                Finding.TENANT_RECORD_MISSING,
                f"Identity user {identity_user.username} exists but {missing}.",
                f"{repair}  (creates the tenant record from the payment and links the identity user)",
            )
        return found(
            Finding.PROVISIONING_FAILED,
            f"Paid, but no tenant record: {_why_not_provisioned(case)}.",
            f"{repair}  (re-runs provisioning from the failed step)",
        )
    if identity_user is None:
        return found(
            Finding.IDENTITY_USER_MISSING,
            f"Tenant {tenant.tenant_id} exists but identity user {case.email or '(unknown email)'} does not.",
            f"{repair}  (creates the identity user and users record, sends a new temporary password)",
        )
    users_here = [user for user in case.users if user.tenant_id == tenant.tenant_id]
    if (
        identity_user.tenant_id != tenant.tenant_id
        or (not users_here and case.users)
        or (tenant.owner_user_id and tenant.owner_user_id != identity_user.sub)
    ):
        return found(
            Finding.TENANT_ID_MISMATCH,
            f"Stores disagree: tenant {tenant.tenant_id} (owner {shown(tenant.owner_user_id)}), identity "
            f"custom:tenant_id={shown(identity_user.tenant_id)} (sub {shown(identity_user.sub)}), users records for "
            f"{', '.join(sorted({user.tenant_id for user in case.users})) or 'no tenant'}.",
            f"{repair}  (points the identity user, users record and owner at tenant {tenant.tenant_id})",
        )
    if not users_here or not tenant.owner_user_id:
        return found(
            Finding.IDENTITY_USER_MISSING,
            f"Tenant {tenant.tenant_id} has no users record (or owner link) for {identity_user.username}.",
            f"{repair}  (creates the users record and links the owner)",
        )
    if tenant.status is TenantStatus.PROVISIONING:
        return found(
            Finding.PROVISIONING_FAILED,
            f"Tenant {tenant.tenant_id} is still 'provisioning': {_why_not_provisioned(case)}.",
            f"{repair}  (re-runs provisioning from the failed step)",
        )
    if tenant.status is not TenantStatus.ACTIVE:
        return found(
            Finding.NEEDS_REVIEW,
            f"Tenant {tenant.tenant_id} is {tenant.status.value}: a deliberate state, not a provisioning failure.",
            "Check the billing history before changing it.",
            ESCALATION["finance"],
        )
    welcome = welcome_of(identity_user, case.welcome_emails, now, password_ttl)
    if not welcome.given:
        return found(
            Finding.WELCOME_EMAIL_MISSING,
            f"Tenant {tenant.tenant_id} is provisioned but the owner has no welcome email: {welcome.detail}.",
            f"{repair}  (sets a new temporary password and resends the welcome email)",
        )
    diagnosis = found(
        Finding.HEALTHY,
        f"Tenant {tenant.tenant_id} is active; {identity_user.username} can sign in.",
        "Nothing to do." + _stale_dead_letters(case),
    )
    if not welcome.only_stored:
        return diagnosis
    # Healthy as far as provisioning goes, but the owner has not been told: no SMTP server took it.
    return replace(
        diagnosis,
        summary=f"{diagnosis.summary} Its welcome email was {STORED_NOT_DELIVERED}: the owner has not received it.",
        next_action=f"{diagnosis.next_action} Mail is delivered once TENANCY_SMTP_URL names an SMTP server; "
        f"until then `tenancy mail list --to {identity_user.username}` shows the email.",
    )


def is_operator_account(user: IdentityUser) -> bool:
    """An operations-console operator's account: it runs the console and owns no tenant."""
    roles = roles_of(user.attributes)
    return OPERATOR_ROLE in roles and TENANT_ADMIN_ROLE not in roles


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
    """The one test of the welcome email that diagnose, its audit shortcut and verify share, so
    that they cannot disagree. An email is for this user when it names the user's subject, or names
    none (kept before emails did); one sent to an identity user since recreated is not (its
    password went with that user). The answer does not depend on the order of the emails."""
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


def plainly_healthy(
    *,
    job: ProvisioningJob | None,
    tenant: Tenant | None,
    identity_user: IdentityUser | None,
    users: Sequence[UserRecord],
    welcome_emails: Sequence[OutboxMessage],
    now: datetime,
    password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
) -> bool:
    """True only when `classify` would name HEALTHY a case holding these records (`welcome_emails`
    as `CaseFile.welcome_emails` answers), told without writing its evidence or building the case:
    the audit classifies every purchase of its window but keeps only the failures' diagnoses.
    Each test rules out `classify`'s branches before HEALTHY, in its order; a case this does not
    vouch for (an unfinished job among them) is left to `classify`. Keep the two in step."""
    # A tenant rules out the two payment branches; both records rule out the missing-record ones.
    if tenant is None or identity_user is None or is_operator_account(identity_user):
        return False
    if job is not None and (job.status is JobStatus.NEEDS_REVIEW or job.status in _IN_FLIGHT):
        return False
    if (
        identity_user.tenant_id != tenant.tenant_id
        or not tenant.owner_user_id
        or tenant.owner_user_id != identity_user.sub
        or not any(user.tenant_id == tenant.tenant_id for user in users)
        or tenant.status is not TenantStatus.ACTIVE
    ):
        return False
    # The very test `classify` makes, so that the two cannot drift apart.
    return welcome_of(identity_user, welcome_emails, now, password_ttl).given


def _not_a_tenant(case: CaseFile, user: IdentityUser, found: Found) -> Diagnosis:
    what = f"{user.username} is {Finding.NOT_A_TENANT.label}"
    purchase = case.transaction_id if case.completed_payment or case.job or case.tenant else None
    if purchase is None:
        return found(
            Finding.NOT_A_TENANT,
            f"{what}: it runs the operations console, owns no tenant, and has nothing to provision.",
            "Nothing to repair. Operator accounts are listed by `tenancy ops list-operators`.",
            None,
        )
    return found(
        Finding.NOT_A_TENANT,
        f"{what}: purchase {purchase} by this email cannot be provisioned to it.",
        "Decide with the customer: refund the payment, or buy again with an email that is not an operator's.",
        ESCALATION["finance"],
    )


def _payment_not_complete(case: CaseFile, found: Found) -> Diagnosis:
    latest = case.payments[-1]
    if latest.verdict is PaymentVerdict.REJECTED:
        reason = "; ".join(latest.reasons) or "rejected"
        security = any(word in reason for word in ("signature", "source address"))
        money = any(word in reason for word in ("amount", "merchant", "plan"))
        escalate = ESCALATION["security"] if security else ESCALATION["finance"] if money else None
        return found(
            Finding.PAYMENT_NOT_COMPLETE,
            f"The ITN was rejected by a security check: {reason}.",
            "Nothing was provisioned. Confirm the payment in PayFast's dashboard before acting.",
            escalate,
        )
    status = latest.payment_status or "unknown"
    return found(
        Finding.PAYMENT_NOT_COMPLETE,
        f"The payment is {status} ({latest.verdict.value}): nothing is provisioned until PayFast reports COMPLETE.",
        "Ask the customer to complete the payment; PayFast sends a new ITN when it does.",
        None,
    )


def _mail_statistics_line(case: CaseFile, finding: Finding) -> tuple[str, ...]:
    """RB-001 4.4 step 1 (the provider's send statistics), for the finding it is about."""
    if finding is not Finding.WELCOME_EMAIL_MISSING or not case.mail_statistics:
        return ()
    counts = " ".join(f"{name}={count}" for name, count in case.mail_statistics)
    # The provider counts every email it ever handled, not this owner's: say so, or the line reads
    # as this purchase's history (this owner's own emails are the `mail:` lines above).
    return (f"mail: the mail provider, for all recipients: {counts}",)


def with_mail_statistics(case: CaseFile, diagnosis: Diagnosis, stores: EvidenceStores) -> CaseFile:
    """The case with the provider's statistics when the diagnosis is about the welcome email;
    they are read only then, since counting a provider's whole history is not free."""
    if diagnosis.finding is not Finding.WELCOME_EMAIL_MISSING or case.mail_statistics:
        return case
    return replace(case, mail_statistics=mail_statistics(stores))


def _stale_dead_letters(case: CaseFile) -> str:
    """The healthy purchase's dead-lettered messages (copies from before it healed, which keep the
    DLQ alarm firing) and the command that removes each."""
    stale = [message.message_id for message in case.messages if message.dead_lettered]
    if not stale:
        return ""
    commands = ", ".join(f"`tenancy dlq remove {message_id}`" for message_id in stale)
    return f" A stale dead-letter message is left from before it healed: remove it with {commands}."


def _still_moving(case: CaseFile, now: datetime) -> bool:
    """Whether an unfinished job is still in a worker's hands: its message waits in the work
    queue (where the queue can show it; SQS cannot show messages in flight), its retry is due
    soon, or it moved recently. A job that stalled for longer is treated as lost."""
    job = case.job
    if job is None:
        return False
    if any(not message.dead_lettered for message in case.messages):
        return True
    if case.messages:  # only dead letters: no worker will see it again
        return False
    if job.status is JobStatus.RETRYING and job.next_attempt_at:
        return parse_timestamp(job.next_attempt_at) + STALLED_AFTER > now
    return parse_timestamp(job.updated_at) + STALLED_AFTER > now


def _why_not_provisioned(case: CaseFile) -> str:
    job = case.job
    if job is None:
        return "no provisioning job was ever created (never enqueued)"
    if job.status is JobStatus.DEAD_LETTERED:
        error = job.last_error or "no error recorded"
        return f"the job was dead-lettered after {plural(job.attempts, 'attempt')} ({error})"
    if any(message.dead_lettered for message in case.messages):
        return "its message is in the dead-letter queue"
    if job.status in _IN_FLIGHT:
        return f"the job is {job.status.value} but no worker has it queued (lost)"
    return f"the job is {job.status.value} ({job.last_error or 'no error recorded'})"


def _older_than_an_hour(case: CaseFile, now: datetime) -> bool:
    started = case.job.created_at if case.job else (case.payments[0].received_at if case.payments else None)
    return started is not None and now - parse_timestamp(started) > ESCALATION_AGE


def _selector_flag(case: CaseFile) -> str:
    if case.transaction_id:
        return f"--transaction-id {case.transaction_id}"
    if case.tenant_id:
        return f"--tenant-id {case.tenant_id}"
    if case.email:
        return f"--email {case.email}"
    selector = case.selector  # names nothing the stores know; still what the operator asked about
    return f"--email {selector.email}" if selector.email else f"--tenant-id {selector.tenant_id}"
