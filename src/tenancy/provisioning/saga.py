"""The provisioning saga: six idempotent steps, each recorded in the journal when done.

Every step checks the real state before it writes, so a step that ran but was not
recorded (a crash in between) is harmless when it runs again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

import structlog

from tenancy.accounts.roles import OPERATOR_ROLE, TENANT_ADMIN_ROLE, roles_of
from tenancy.domain.clock import format_timestamp, parse_timestamp
from tenancy.domain.ids import storage_prefix_for, temporary_password
from tenancy.domain.lifecycle import LifecycleCommit, TenantChanges, Trigger
from tenancy.domain.model import (
    Billing,
    IdentityUser,
    IdentityUserStatus,
    JobStatus,
    ProvisioningJob,
    Step,
    Tenant,
    TenantStatus,
    Usage,
    UserRecord,
    UserStatus,
)
from tenancy.domain.plans import PlanCatalogue
from tenancy.errors import (
    ClaimLostError,
    ConflictError,
    ItemAlreadyExistsError,
    NeedsReviewError,
    PermanentError,
    UnknownPlanError,
)
from tenancy.lifecycle.moves import record_move
from tenancy.ports import Clock, IdentityProvider, LifecycleStore, Mailer, ProvisioningJournal, TenantStore, UserStore
from tenancy.provisioning.welcome import welcome_email

__all__ = ["TENANT_ADMIN_ROLE", "ProvisioningSaga", "SagaSettings"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SagaSettings:
    login_url: str
    email_from: str
    temporary_password_ttl_days: int
    support_email: str


@dataclass(frozen=True, slots=True)
class _IssuedPassword:
    """The temporary password a run gave the identity user it created itself."""

    sub: str
    password: str = field(repr=False)  # kept out of reprs, so out of logs and tracebacks


@dataclass(slots=True)
class _RunMemory:
    """What one run hands from step to step in memory only: never journaled, never logged, and
    gone with the run, so a retry, a repair or another worker never sees it."""

    issued_password: _IssuedPassword | None = None


_StepAction = Callable[[ProvisioningJob], ProvisioningJob]


class ProvisioningSaga:
    def __init__(
        self,
        *,
        settings: SagaSettings,
        plans: PlanCatalogue,
        tenants: TenantStore,
        users: UserStore,
        identity: IdentityProvider,
        mailer: Mailer,
        journal: ProvisioningJournal,
        clock: Clock,
        lifecycle: LifecycleStore,
        after_step: Callable[[Step, ProvisioningJob], None] | None = None,
    ) -> None:
        self._settings = settings
        self._plans = plans
        self._tenants = tenants
        self._users = users
        self._identity = identity
        self._mailer = mailer
        self._journal = journal
        self._clock = clock
        self._lifecycle = lifecycle
        # A hook called after each recorded step; the fault-injection tests crash here.
        self._after_step = after_step

    def with_after_step(self, after_step: Callable[[Step, ProvisioningJob], None] | None) -> ProvisioningSaga:
        """A copy of this saga that calls `after_step` after each recorded step (None: nothing),
        where tests crash or watch a run; this saga is left as it was."""
        twin = copy.copy(self)
        twin._after_step = after_step
        return twin

    def _steps_for(self, memory: _RunMemory) -> dict[Step, _StepAction]:
        """The six steps in order. Only the identity step and the welcome email share the run's
        memory: the temporary password hashed when the user is created is the one emailed."""
        return {
            Step.TENANT_RECORD: self._tenant_record,
            Step.IDENTITY_USER: lambda job: self._identity_user(job, memory),
            Step.OWNER_LINK: self._owner_link,
            Step.USERS_RECORD: self._users_record,
            Step.ACTIVATE: self._activate,
            Step.WELCOME_EMAIL: lambda job: self._welcome_email(job, memory),
        }

    def run(self, job: ProvisioningJob) -> ProvisioningJob:
        """Runs every unfinished step in order. Returns the job SUCCEEDED, or NEEDS_REVIEW
        when a human must decide; raises TransientError/PermanentError for the worker."""
        try:
            if job.returning:
                return self._returning(job)
            if not job.has_done(Step.TENANT_RECORD):
                self._refuse_second_tenant_for_owner(job)
            for step, action in self._steps_for(_RunMemory()).items():
                if job.has_done(step):
                    continue
                job = action(job)
                job = job.with_changes(completed_steps=(*job.completed_steps, step), updated_at=self._now())
                self._record(job)
                log.info("step_done", step=step.value, transaction_id=job.transaction_id, tenant_id=job.tenant_id)
                if self._after_step is not None:
                    self._after_step(step, job)
        except NeedsReviewError as review:
            job = job.with_changes(status=JobStatus.NEEDS_REVIEW, review_reason=str(review), updated_at=self._now())
            self._record(job)
            log.warning("needs_review", transaction_id=job.transaction_id, tenant_id=job.tenant_id, reason=str(review))
            return job
        job = job.with_changes(
            status=JobStatus.SUCCEEDED, last_error=None, next_attempt_at=None, updated_at=self._now()
        )
        self._record(job)
        return job

    def _returning(self, job: ProvisioningJob) -> ProvisioningJob:
        """A checkout for a tenant that exists: its owner buying again (after cancelling) or
        subscribing anew to change plan. Its tenant, identity user, users record and welcome email
        exist already, so every step is done as it stands; the subscription settled next
        reactivates the tenant. A tenant that is gone, or one the buyer is no member of, is for a
        person to look at."""
        tenant = self._tenants.get(job.tenant_id)
        if tenant is None:
            raise NeedsReviewError(f"the checkout is for tenant {job.tenant_id}, which does not exist")
        if not any(user.tenant_id == job.tenant_id for user in self._users.find_by_email(job.email)):
            raise NeedsReviewError(f"the checkout is for tenant {job.tenant_id}, of which {job.email} is no member")
        job = job.with_changes(
            completed_steps=tuple(Step),
            owner_user_id=tenant.owner_user_id or None,
            status=JobStatus.SUCCEEDED,
            last_error=None,
            next_attempt_at=None,
            updated_at=self._now(),
        )
        self._record(job)
        log.info("returning_checkout", transaction_id=job.transaction_id, tenant_id=job.tenant_id)
        return job

    def _record(self, job: ProvisioningJob) -> None:
        """Writes the run's progress, only while the run still holds the job."""
        if not self._journal.save_claimed(job, expected_claim=job.claim):
            raise ClaimLostError(f"{job.transaction_id} was claimed by another run")

    def _still_holding(self, job: ProvisioningJob) -> None:
        """ClaimLostError unless the job is still this run's (read, not written: a run outside
        the worker, with no claim, owns nothing to check)."""
        if job.claim is None:
            return
        stored = self._journal.get(job.transaction_id)
        if stored is None or stored.claim != job.claim:
            raise ClaimLostError(f"{job.transaction_id} was claimed by another run")

    def _now(self) -> str:
        return format_timestamp(self._clock.now())

    def _refuse_second_tenant_for_owner(self, job: ProvisioningJob) -> None:
        """RB-001 section 6: a second purchase by an existing owner is for a human to decide."""
        owned = {user.tenant_id for user in self._users.find_by_email(job.email)}
        identity_user = self._identity.get_user(job.email)
        if identity_user is not None and identity_user.tenant_id:
            owned.add(identity_user.tenant_id)
        for tenant_id in sorted(owned - {job.tenant_id}):
            tenant = self._tenants.get(tenant_id)
            if tenant is not None and tenant.status is TenantStatus.ACTIVE:
                raise NeedsReviewError(f"{job.email} already owns active tenant {tenant_id}")

    def _tenant_record(self, job: ProvisioningJob) -> ProvisioningJob:
        existing = self._tenants.get(job.tenant_id)
        if existing is not None:
            self._same_transaction(existing, job)
            return job
        try:
            plan = self._plans.get(job.plan)
        except UnknownPlanError as error:
            raise PermanentError(str(error)) from None
        now = self._now()
        tenant = Tenant(
            tenant_id=job.tenant_id,
            owner_user_id="",  # set by the owner_link step once the identity user exists
            name=job.tenant_name,
            plan=plan.name,
            status=TenantStatus.PROVISIONING,
            limits=plan.limits,
            usage=Usage(),
            storage_prefix=storage_prefix_for(job.tenant_id),
            billing=Billing(job.transaction_id, job.invoice_number),
            created_at=now,
            updated_at=now,
        )
        try:
            self._tenants.create(tenant)
        except ItemAlreadyExistsError:
            raced = self._tenants.get(job.tenant_id)
            if raced is not None:
                self._same_transaction(raced, job)
        return job

    @staticmethod
    def _same_transaction(tenant: Tenant, job: ProvisioningJob) -> None:
        if tenant.billing.transaction_id != job.transaction_id:
            raise PermanentError(
                f"tenant {tenant.tenant_id} belongs to transaction {tenant.billing.transaction_id}, "
                f"not {job.transaction_id}"
            )

    def _identity_user(self, job: ProvisioningJob, memory: _RunMemory) -> ProvisioningJob:
        user = self._identity.get_user(job.email)
        if user is None:
            attributes = {
                "email": job.email,
                "email_verified": "true",
                "custom:tenant_id": job.tenant_id,
                "custom:roles": TENANT_ADMIN_ROLE,
            }
            password = temporary_password()
            try:
                user = self._identity.create_user(job.email, attributes, password)
            except ItemAlreadyExistsError:
                user = self._identity.get_user(job.email)
                if user is None:
                    raise PermanentError(f"identity user {job.email} vanished while being created") from None
            else:
                memory.issued_password = _IssuedPassword(user.sub, password)
        user = self._claim_identity_user(user, job)
        return job.with_changes(owner_user_id=user.sub)

    def _claim_identity_user(self, user: IdentityUser, job: ProvisioningJob) -> IdentityUser:
        if user.tenant_id == job.tenant_id:
            return user
        if user.tenant_id is None and user.attributes.get("custom:roles", TENANT_ADMIN_ROLE) == TENANT_ADMIN_ROLE:
            # A tenant-less identity user (left by a failed hand repair) is adopted, not duplicated.
            return self._identity.update_attributes(
                job.email, {"custom:tenant_id": job.tenant_id, "custom:roles": TENANT_ADMIN_ROLE}
            )
        if OPERATOR_ROLE in roles_of(user.attributes):
            raise NeedsReviewError(f"identity user {job.email} is an operator account, which owns no tenant")
        raise NeedsReviewError(f"identity user {job.email} already belongs to tenant {user.tenant_id or 'none'}")

    def _owner(self, job: ProvisioningJob) -> str:
        if job.owner_user_id:
            return job.owner_user_id
        user = self._identity.get_user(job.email)
        if user is None:
            raise PermanentError(f"identity user {job.email} is missing after it was created")
        return user.sub

    def _owner_link(self, job: ProvisioningJob) -> ProvisioningJob:
        owner = self._owner(job)
        self._tenants.set_owner(job.tenant_id, owner, self._now())
        return job.with_changes(owner_user_id=owner)

    def _users_record(self, job: ProvisioningJob) -> ProvisioningJob:
        owner = self._owner(job)
        if any(user.tenant_id == job.tenant_id for user in self._users.find_by_email(job.email)):
            # Already there, perhaps written by hand with RB-001 4.2's `user_…` id: one is enough.
            return job
        record = UserRecord(
            user_id=owner,
            tenant_id=job.tenant_id,
            email=job.email,
            role=TENANT_ADMIN_ROLE,
            status=UserStatus.ACTIVE,
            created_at=self._now(),
        )
        try:
            self._users.create(record)
        except ItemAlreadyExistsError:
            existing = self._users.get(owner)
            if existing is not None and existing.tenant_id != job.tenant_id:
                raise NeedsReviewError(f"users record {owner} belongs to tenant {existing.tenant_id}") from None
        return job

    def _activate(self, job: ProvisioningJob) -> ProvisioningJob:
        """provisioning -> active, recorded with its `tenant.activated` event. A tenant that left
        `provisioning` already (activated by an earlier run, or moved on since: suspended, say)
        is never moved back by a re-run."""
        now = self._now()
        recorded = record_move(
            tenant_id=job.tenant_id,
            plan=job.plan,
            leaving=TenantStatus.PROVISIONING,
            to=TenantStatus.ACTIVE,
            trigger=Trigger.PROVISIONING,
            actor="provisioning",
            at=now,
            reason=f"purchase {job.transaction_id} provisioned",
            key="activated",
        )
        try:
            self._lifecycle.commit(
                LifecycleCommit(
                    tenant_id=job.tenant_id,
                    leaving=frozenset({TenantStatus.PROVISIONING}),
                    updated_at=now,
                    changes=TenantChanges(status=TenantStatus.ACTIVE),
                    transitions=(recorded.transition,),
                    notices=(recorded.notice,),
                )
            )
        except ConflictError:
            log.info("tenant_already_activated", tenant_id=job.tenant_id, transaction_id=job.transaction_id)
        return job

    def _welcome_email(self, job: ProvisioningJob, memory: _RunMemory) -> ProvisioningJob:
        user = self._identity.get_user(job.email)
        if user is None:
            raise PermanentError(f"identity user {job.email} is missing")
        if user.status is IdentityUserStatus.CONFIRMED:
            # The owner has already signed in with a password of their own: a new temporary
            # password would only lock them out.
            log.info("welcome_skipped_confirmed", transaction_id=job.transaction_id)
            return job
        if self._welcome_already_sent(job, user):
            # Sent, but the worker died before the step was recorded: the password in that email is
            # still the owner's (the run that sent it set it, or created the user with it, before
            # sending), so it is not sent a second time.
            log.info("welcome_already_sent", transaction_id=job.transaction_id)
            return job
        password = self._password_issued_by_this_run(user, memory)
        if password is None:
            # The user was created by an earlier run, adopted, or made by hand: its password is
            # unknown here, so a fresh one is set just before it is sent.
            self._still_holding(job)
            password = temporary_password()
            self._identity.set_password(job.email, password, permanent=False)
        # The one step a second run must not repeat beside this one: make sure no run has taken
        # the job over (this one outliving its lease) right before the email goes out.
        self._still_holding(job)
        settings = self._settings
        email = welcome_email(
            job,
            self._plans.get(job.plan),
            password=password,
            login_url=settings.login_url,
            sender=settings.email_from,
            password_ttl_days=settings.temporary_password_ttl_days,
            support_email=settings.support_email,
        )
        message_id = self._mailer.send(replace(email, tags={**email.tags, "identity_sub": user.sub}))
        log.info("welcome_sent", transaction_id=job.transaction_id, tenant_id=job.tenant_id, message_id=message_id)
        return job

    def _password_issued_by_this_run(self, user: IdentityUser, memory: _RunMemory) -> str | None:
        """The temporary password this run created `user` with, while it is surely still theirs:
        the same user (same sub), still on that temporary password, and not yet expired."""
        issued = memory.issued_password
        if issued is None or issued.sub != user.sub or user.status is not IdentityUserStatus.FORCE_CHANGE_PASSWORD:
            return None
        valid_until = user.created_at + timedelta(days=self._settings.temporary_password_ttl_days)
        return issued.password if self._clock.now() < valid_until else None

    def _welcome_already_sent(self, job: ProvisioningJob, user: IdentityUser) -> bool:
        """Whether this purchase's welcome email already went out to this very identity user (a
        recreated user has a new sub and gets a new email) while its password is still valid."""
        valid_after = self._clock.now() - timedelta(days=self._settings.temporary_password_ttl_days)
        return any(
            message.tags.get("transaction_id") == job.transaction_id
            and message.tags.get("identity_sub") == user.sub
            and message.status in {"stored", "delivered"}
            and parse_timestamp(message.created_at) > valid_after
            for message in self._mailer.outbox(job.email, 50)
        )
