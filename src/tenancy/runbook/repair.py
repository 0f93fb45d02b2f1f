"""`repair`: the resolution of RB-001 for each finding, idempotent, with an audit entry per repair.

Repairs go through the same saga as provisioning: a finding resets the journal to the
steps that are really done, and the saga, whose steps all check real state first, does
the rest. Only a tenant id mismatch is fixed directly, toward the tenant record, a member's
identity user toward its users record, and a subscription out of sync with PayFast, toward
PayFast's view (runbook.resync).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from tenancy.accounts.roles import OPERATOR_ROLE, roles_of
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import (
    IdentityUser,
    JobStatus,
    ProvisioningJob,
    RepairRecord,
    Step,
    UserRecord,
    UserStatus,
)
from tenancy.errors import InvalidInputError
from tenancy.payments.payfast import field_value
from tenancy.ports import RepairTrail
from tenancy.provisioning.saga import TENANT_ADMIN_ROLE
from tenancy.provisioning.worker import NextAction, ProvisioningWorker
from tenancy.runbook.evidence import CaseFile, EvidenceStores, Member, shown
from tenancy.runbook.findings import Diagnosis, Finding
from tenancy.runbook.resync import resync_actions, resync_from_payfast
from tenancy.runbook.rules.members import member_repair_words
from tenancy.runbook.rules.subscriptions import unapplied_itns

__all__ = ["LifecycleRepairs", "RepairPlan", "RepairService", "plan_repair"]


@dataclass(frozen=True, slots=True)
class LifecycleRepairs:
    """What the lifecycle's findings are repaired with: the moves due for a tenant applied as the
    sweep applies them (tenant id, now), an interrupted deletion finished (tenant id), and a dead
    notice delivered again (notice id)."""

    apply_due: Callable[[str, datetime], object]
    finish_deletion: Callable[[str], object]
    redeliver: Callable[[str], object]

_STEPS_KEPT = {
    Finding.PROVISIONING_FAILED: (),
    Finding.TENANT_RECORD_MISSING: (),
    Finding.IDENTITY_USER_MISSING: (Step.TENANT_RECORD,),
    Finding.WELCOME_EMAIL_MISSING: tuple(step for step in Step if step is not Step.WELCOME_EMAIL),
}


@dataclass(frozen=True, slots=True)
class RepairPlan:
    diagnosis: Diagnosis
    actions: tuple[str, ...]

    @property
    def has_work(self) -> bool:
        return bool(self.actions)


def plan_repair(diagnosis: Diagnosis, case: CaseFile) -> RepairPlan:
    """What the repair would do, in words; changes nothing."""
    finding = diagnosis.finding
    tenant_id = diagnosis.tenant_id or "(derived from the transaction)"
    email = shown(diagnosis.email)
    if finding is Finding.PROVISIONING_FAILED:
        actions = [
            "create the provisioning job from the payment" if case.job is None else None,
            f"reset job {diagnosis.transaction_id} (was {case.job.status.value})" if case.job else None,
            "run provisioning again from the first step not really done: tenant record, identity user, "
            "owner link, users record, activation, welcome email",
            "remove the transaction's messages from the queue and the dead-letter queue",
        ]
    elif finding is Finding.IDENTITY_USER_MISSING:
        actions = [
            f"create identity user {email} (email_verified, custom:tenant_id={tenant_id}, "
            "custom:roles=tenant_admin) unless it exists",
            "create the users record and link the tenant owner",
            "set a new temporary password and send the welcome email",
        ]
    elif finding is Finding.TENANT_RECORD_MISSING:
        user_tenant = case.identity_user.tenant_id if case.identity_user else None
        actions = [
            f"create tenant record {user_tenant or tenant_id} from payment {shown(diagnosis.transaction_id)} "
            f"(plan {case.job.plan if case.job else _payment_plan(case)})",
            "link the identity user as owner, ensure the users record, activate",
            "send the welcome email unless the owner has already signed in",
        ]
    elif finding is Finding.WELCOME_EMAIL_MISSING:
        actions = [f"set a new temporary password for {email}", "resend the welcome email"]
    elif finding is Finding.RENEWAL_UNAPPLIED:
        missing = ", ".join(f"{p.payment_status} {p.pf_payment_id}" for p in unapplied_itns(case))
        actions = [f"apply the accepted subscription payments not applied ({missing}), in the order received"]
    elif finding is Finding.SUBSCRIPTION_OUT_OF_SYNC:
        actions = list(resync_actions(case))
    elif finding is Finding.LIFECYCLE_OVERDUE:
        actions = [f"apply the lifecycle moves due now for tenant {tenant_id}, as the sweep does: {diagnosis.summary}"]
    elif finding is Finding.ACCESS_MISMATCH and diagnosis.repairable:
        actions = [f"finish deleting tenant {tenant_id}: remove the identity users and users records left"]
    elif finding is Finding.EVENT_UNDELIVERED:
        actions = [f"deliver notice {notice.notice_id} again" for notice in case.undelivered]
    elif finding is Finding.MEMBER_MISMATCH:
        actions = [member_repair_words(member) for member in case.members if member.disagreement is not None]
    elif finding is Finding.TENANT_ID_MISMATCH:
        actions = [
            f"set custom:tenant_id={tenant_id} on identity user {email}",
            f"point the users record of {email} at {tenant_id}",
            f"set the owner of {tenant_id} to the identity user",
        ]
    else:
        actions = []
    return RepairPlan(diagnosis, tuple(action for action in actions if action))


def _payment_plan(case: CaseFile) -> str:
    payment = case.completed_payment
    return (payment.plan if payment else None) or (case.tenant.plan if case.tenant else "unknown")


class RepairService:
    """Carries out repair plans on `stores` (the journal and the queue among them), rerunning
    the saga through `worker`, and records each repair in `trail`."""

    def __init__(
        self,
        *,
        stores: EvidenceStores,
        worker: ProvisioningWorker,
        trail: RepairTrail,
        settle: Callable[[str], object] | None = None,
        lifecycle: LifecycleRepairs | None = None,
        restore_member: Callable[[UserRecord], object] | None = None,
    ) -> None:
        self._settle = settle
        self._restore_member = restore_member
        self._lifecycle = lifecycle
        self._stores = stores
        self._journal = stores.journal
        self._queue = stores.queue
        self._worker = worker
        self._trail = trail

    def carry_out(self, plan: RepairPlan, case: CaseFile, now: datetime) -> str:
        """Runs the plan; returns how the repair ended (`repaired`, `retrying`, `failed`)."""
        finding = plan.diagnosis.finding
        if not plan.has_work:
            raise InvalidInputError(f"{finding.value} cannot be repaired automatically")
        if finding is Finding.TENANT_ID_MISMATCH:
            self._fix_mismatch(case, now)
            return "repaired"
        if finding is Finding.MEMBER_MISMATCH:
            return self._repair_members(case, now)
        if finding is Finding.RENEWAL_UNAPPLIED:
            if self._settle is None or not case.transaction_id:
                raise InvalidInputError("this runbook cannot settle subscriptions")
            self._settle(case.transaction_id)
            return "repaired"
        if finding is Finding.SUBSCRIPTION_OUT_OF_SYNC:
            self._resync(case, now)
            return "repaired"
        if finding in {Finding.LIFECYCLE_OVERDUE, Finding.ACCESS_MISMATCH, Finding.EVENT_UNDELIVERED}:
            self._repair_lifecycle(finding, case, now)
            return "repaired"
        job = self._job_for(case, finding, now)
        outcome = self._worker.run_job(job)
        if outcome.action in {NextAction.BUSY, NextAction.SUPERSEDED}:
            return "retrying"  # a worker claimed the job in between: it is running now
        if outcome.action is NextAction.RETRY:
            self._queue.send(job.transaction_id, outcome.delay_seconds)
            return "retrying"
        if outcome.action is NextAction.DEAD_LETTER:
            self._queue.purge(job.transaction_id)
            self._queue.send_dead_letter(job.transaction_id, outcome.job.last_error or "failed")
            return "failed"
        self._queue.purge(job.transaction_id)
        return "repaired" if outcome.job.status is JobStatus.SUCCEEDED else outcome.job.status.value

    def record(
        self,
        plan: RepairPlan,
        *,
        operator: str,
        at: datetime,
        outcome: str,
        after: dict[str, object],
        attempts: Mapping[str, object] | None = None,
    ) -> None:
        """Keeps the repair in the trail; `attempts` (runbook.attempts.attempts_before) joins the
        state before, so the weekly audit still counts the failed runs the repair wiped."""
        diagnosis = plan.diagnosis
        self._trail.record(
            RepairRecord(
                at=format_timestamp(at),
                operator=operator,
                transaction_id=diagnosis.transaction_id,
                tenant_id=diagnosis.tenant_id,
                email=diagnosis.email,
                finding=diagnosis.finding.value,
                actions=plan.actions,
                before={**diagnosis.as_record(), **(attempts or {})},
                after=after,
                outcome=outcome,
            )
        )

    def _job_for(self, case: CaseFile, finding: Finding, now: datetime) -> ProvisioningJob:
        stamp = format_timestamp(now)
        job = case.job or self._new_job(case, stamp)
        if finding is Finding.TENANT_RECORD_MISSING:
            if case.identity_user and case.identity_user.tenant_id:
                # The identity user already names its tenant (perhaps a hand-written `ten_NEWID`): honour it.
                job = job.with_changes(tenant_id=case.identity_user.tenant_id)
            self._relink_orphaned_users(case, job.tenant_id)
        job = job.with_changes(
            status=JobStatus.QUEUED,
            attempts=0,
            completed_steps=_STEPS_KEPT[finding],
            last_error=None,
            review_reason=None,
            next_attempt_at=None,
            updated_at=stamp,
            # The repair takes the job over: a run still going (one that outlived its lease)
            # finds its claim gone at its next write and stops.
            claim=None,
        )
        self._journal.save(job)
        return job

    def _relink_orphaned_users(self, case: CaseFile, tenant_id: str) -> None:
        """Users records left pointing at a tenant that no longer exists follow the rebuilt one."""
        for record in case.users:
            if record.tenant_id != tenant_id and self._stores.tenants.get(record.tenant_id) is None:
                self._stores.users.put(dataclasses.replace(record, tenant_id=tenant_id))

    def _new_job(self, case: CaseFile, stamp: str) -> ProvisioningJob:
        payment = case.completed_payment
        transaction_id = case.transaction_id or (case.tenant.billing.transaction_id if case.tenant else None)
        email = case.email
        plan = (payment.plan if payment else None) or (case.tenant.plan if case.tenant else None)
        if not (transaction_id and email and plan):
            raise InvalidInputError("not enough evidence to rebuild the provisioning job (transaction, email, plan)")
        names = [field_value(payment.fields, key) or "" for key in ("name_first", "name_last")] if payment else []
        name = case.tenant.name if case.tenant else " ".join(part for part in names if part) or email
        job = ProvisioningJob(
            transaction_id=transaction_id,
            tenant_id=case.tenant.tenant_id if case.tenant else tenant_id_for(transaction_id),
            invoice_number=case.tenant.billing.invoice_number if case.tenant else invoice_number_for(transaction_id),
            email=email,
            plan=plan,
            tenant_name=name,
            status=JobStatus.QUEUED,
            created_at=stamp,
            updated_at=stamp,
            pf_payment_id=payment.pf_payment_id if payment else None,
        )
        self._journal.create(job)
        return self._journal.get(transaction_id) or job

    def _repair_lifecycle(self, finding: Finding, case: CaseFile, now: datetime) -> None:
        if self._lifecycle is None or case.tenant_id is None:
            raise InvalidInputError("this runbook cannot repair the tenant lifecycle")
        if finding is Finding.LIFECYCLE_OVERDUE:
            self._lifecycle.apply_due(case.tenant_id, now)
        elif finding is Finding.ACCESS_MISMATCH:
            self._lifecycle.finish_deletion(case.tenant_id)
        else:
            for notice in case.undelivered:
                self._lifecycle.redeliver(notice.notice_id)

    def _resync(self, case: CaseFile, now: datetime) -> None:
        subscription, subscriptions = case.subscription, self._stores.subscriptions
        if subscription is None or case.payfast is None or subscriptions is None:
            raise InvalidInputError("a re-sync needs our subscription, its store and PayFast's view of it")
        resync_from_payfast(
            subscriptions=subscriptions,
            tenants=self._stores.tenants,
            tenant_id=subscription.tenant_id,
            view=case.payfast,
            now=now,
        )

    def _repair_members(self, case: CaseFile, now: datetime) -> str:
        """RB-001 4.2's resolution for each member who cannot sign in: `repaired` when every one
        was, `failed` when one was left alone (an identity user that is an operator's, or held by
        the tenant it names: one tenant per identity, and who keeps it is the customer's call)."""
        left_alone = 0
        for member in case.members:
            user, record = member.identity_user, member.record
            if member.disagreement is None:
                continue
            if user is None and record is not None:
                if self._restore_member is None:
                    raise InvalidInputError("this runbook cannot email a member a new password")
                self._restore_member(record)
            elif record is None and user is not None:
                self._remake_record(member, user, now)
            elif user is not None and record is not None and not self._repoint(user, record):
                left_alone += 1
        return "failed" if left_alone else "repaired"

    def _remake_record(self, member: Member, user: IdentityUser, now: datetime) -> None:
        """The member's users record again, keyed by its identity user's subject (as a join keys
        it), with the role its tokens carry. The tenant's counts of seats and admins were never
        given back for the record lost, so they hold as they are."""
        created = member.joined.updated_at if member.joined is not None else format_timestamp(now)
        tenant_id = member.tenant_id or user.tenant_id or ""
        self._stores.users.put(UserRecord(user.sub, tenant_id, member.email, member.role, UserStatus.ACTIVE, created))

    def _repoint(self, user: IdentityUser, record: UserRecord) -> bool:
        """Points the identity user at its users record's tenant and role, unless it is an
        operator's or an active member's of the tenant it names (False: left alone)."""
        held = any(
            other.tenant_id == user.tenant_id and other.status is UserStatus.ACTIVE
            for other in self._stores.users.find_by_email(record.email)
        )
        if held or OPERATOR_ROLE in roles_of(user.attributes):
            return False
        self._stores.identity.update_attributes(
            user.username, {"custom:tenant_id": record.tenant_id, "custom:roles": record.role}
        )
        return True

    def _fix_mismatch(self, case: CaseFile, now: datetime) -> None:
        tenant, user = case.tenant, case.identity_user
        if tenant is None or user is None:
            raise InvalidInputError("a mismatch repair needs both the tenant record and the identity user")
        owner = self._stores.users.get(tenant.owner_user_id) if tenant.owner_user_id else None
        if (
            owner is not None
            and owner.user_id != user.sub
            and owner.tenant_id == tenant.tenant_id
            and owner.status is UserStatus.ACTIVE
            and owner.role == TENANT_ADMIN_ROLE
        ):
            # The owner link names one of the tenant's own tenant admins: the ownership was handed
            # on (issue 17), which pointing the owner back at the purchaser would undo.
            raise InvalidInputError(
                f"tenant {tenant.tenant_id} is owned by its tenant admin {owner.email}, not by the purchaser "
                f"{user.username}: the ownership was handed on, and a repair will not take it back"
            )
        stamp = format_timestamp(now)
        self._stores.identity.update_attributes(
            user.username, {"custom:tenant_id": tenant.tenant_id, "custom:roles": TENANT_ADMIN_ROLE}
        )
        records = [record for record in case.users if record.user_id == user.sub] or list(case.users[:1])
        record = records[0] if records else None
        self._stores.users.put(
            UserRecord(
                user_id=record.user_id if record else user.sub,
                tenant_id=tenant.tenant_id,
                email=user.username,
                role=TENANT_ADMIN_ROLE,
                status=UserStatus.ACTIVE,
                created_at=record.created_at if record else stamp,
            )
        )
        self._stores.tenants.set_owner(tenant.tenant_id, user.sub, stamp)
