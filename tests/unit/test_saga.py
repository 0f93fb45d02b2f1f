"""The provisioning saga on the real embedded services: the records it writes (data contract),
the welcome email, and idempotency when a run is cut short at any step and run again."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from tenancy.bootstrap import Services
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import (
    AuthChallenge,
    IdentityUser,
    IdentityUserStatus,
    JobStatus,
    OutboxMessage,
    ProvisioningJob,
    Step,
    TenantStatus,
    UserStatus,
)
from tenancy.domain.plans import Limits
from tenancy.errors import InvalidCredentialsError, PermanentError
from tenancy.ports import IdentityProvider
from tenancy.provisioning.worker import NextAction

from helpers import journal_job

EMAIL = "owner@example.com"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
PASSWORD_LINE = re.compile(r"^Temporary password: (\S+)$", re.MULTILINE)
ALL_STEPS = tuple(Step)


class SimulatedCrashError(Exception):
    """The process dies right after a step was recorded in the journal."""


def _new_job(
    services: Services, transaction_id: str = "TXN-100001", email: str = EMAIL, plan: str = "professional"
) -> ProvisioningJob:
    return journal_job(services, transaction_id, email, plan)


def _count(services: Services, table: str) -> int:
    assert services.database is not None
    return int(services.database.read(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])  # noqa: S608 - fixed names


def _welcome_emails(services: Services, email: str = EMAIL) -> list[OutboxMessage]:
    return [message for message in services.mailer.outbox(to=email) if message.subject == "Welcome to Site Builder"]


def _password_in(message: OutboxMessage) -> str:
    found = PASSWORD_LINE.findall(message.text)
    assert len(found) == 1, message.text
    return str(found[0])


def _assert_password_works(services: Services, email: str, password: str) -> None:
    answer = services.identity.authenticate(email, password)
    assert isinstance(answer, AuthChallenge)
    assert answer.challenge == "NEW_PASSWORD_REQUIRED"


def _assert_provisioned_once(services: Services, job: ProvisioningJob) -> None:
    """Exactly one tenant, identity user and users record, all linked, and the journal done."""
    assert _count(services, "tenants") == 1
    assert _count(services, "identity_users") == 1
    assert _count(services, "users") == 1
    identity_user = services.identity.get_user(job.email)
    assert identity_user is not None
    assert identity_user.tenant_id == job.tenant_id
    tenant = services.tenants.get(job.tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE
    assert tenant.owner_user_id == identity_user.sub
    [user] = services.users.find_by_email(job.email)
    assert user.user_id == identity_user.sub
    assert user.tenant_id == job.tenant_id
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.completed_steps == ALL_STEPS
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.owner_user_id == identity_user.sub


# --- one clean run ------------------------------------------------------------------------


def test_provisioned_tenant_record_matches_the_data_contract(services: Services) -> None:
    job = _new_job(services)
    services.saga.run(job)
    tenant = services.tenants.get(job.tenant_id)
    identity_user = services.identity.get_user(EMAIL)
    assert tenant is not None
    assert identity_user is not None
    assert tenant.tenant_id == tenant_id_for("TXN-100001")
    assert tenant.tenant_id.startswith("ten_")
    assert tenant.name == "Acme Studio"
    assert tenant.plan == "professional"
    assert tenant.status is TenantStatus.ACTIVE
    assert tenant.limits == Limits(
        max_sites=5, max_generations_per_month=100, max_storage_mb=500, custom_domain_allowed=True
    )
    assert (tenant.usage.sites_count, tenant.usage.generations_this_month, tenant.usage.storage_used_mb) == (0, 0, 0)
    assert tenant.storage_prefix == f"tenants/{tenant.tenant_id}"
    assert tenant.billing.transaction_id == "TXN-100001"
    assert tenant.billing.invoice_number == "INV-100001"
    assert tenant.owner_user_id == identity_user.sub
    assert TIMESTAMP.match(tenant.created_at)
    assert TIMESTAMP.match(tenant.updated_at)
    assert tenant.updated_at >= tenant.created_at


def test_provisioned_identity_user_is_a_cognito_shaped_tenant_admin(services: Services) -> None:
    job = _new_job(services)
    services.saga.run(job)
    identity_user = services.identity.get_user(EMAIL)
    assert identity_user is not None
    assert identity_user.username == EMAIL
    assert identity_user.status is IdentityUserStatus.FORCE_CHANGE_PASSWORD
    assert identity_user.enabled is True
    assert identity_user.attributes["email"] == EMAIL
    assert identity_user.attributes["email_verified"] == "true"
    assert identity_user.attributes["custom:tenant_id"] == job.tenant_id
    assert identity_user.attributes["custom:roles"] == "tenant_admin"


def test_provisioned_users_record_is_keyed_by_the_identity_subject(services: Services) -> None:
    job = _new_job(services)
    services.saga.run(job)
    identity_user = services.identity.get_user(EMAIL)
    assert identity_user is not None
    [user] = services.users.find_by_email(EMAIL)
    assert user == services.users.get(identity_user.sub)
    assert user.user_id == identity_user.sub
    assert user.tenant_id == job.tenant_id
    assert user.email == EMAIL
    assert user.role == "tenant_admin"
    assert user.status is UserStatus.ACTIVE
    assert TIMESTAMP.match(user.created_at)


def test_manual_provisioning_lower_cases_the_email_everywhere(services: Services) -> None:
    outcome = services.provision_now("TXN-200002", "  Owner@Example.COM ", "starter")
    assert outcome.action is NextAction.FINISHED
    assert outcome.job.status is JobStatus.SUCCEEDED
    [user] = services.users.find_by_email("owner@example.com")
    assert user.email == "owner@example.com"
    identity_user = services.identity.get_user("owner@example.com")
    assert identity_user is not None
    assert identity_user.attributes["email"] == "owner@example.com"
    tenant = services.tenants.get(tenant_id_for("TXN-200002"))
    assert tenant is not None
    assert tenant.plan == "starter"
    assert tenant.name == "owner@example.com"  # no name given: the email stands in
    assert tenant.limits == services.plans.get("starter").limits
    assert len(_welcome_emails(services, "owner@example.com")) == 1


def test_welcome_email_has_login_url_and_a_working_temporary_password(services: Services) -> None:
    job = _new_job(services)
    services.saga.run(job)
    [message] = services.mailer.outbox()
    assert message.to == EMAIL
    assert message.sender == "noreply@kimmyai.io"
    assert message.subject == "Welcome to Site Builder"
    assert services.settings.effective_login_url == "http://127.0.0.1:8000/auth/login"
    assert "http://127.0.0.1:8000/auth/login" in message.text
    assert job.tenant_id in message.text
    assert "INV-100001" in message.text
    assert message.tags["transaction_id"] == "TXN-100001"
    _assert_password_works(services, EMAIL, _password_in(message))
    with pytest.raises(InvalidCredentialsError):
        services.identity.authenticate(EMAIL, "Not-the-password-1")


def test_journal_records_every_step_in_order_and_succeeds(services: Services) -> None:
    job = _new_job(services)
    seen: list[Step] = []
    finished = services.saga.with_after_step(lambda step, _job: seen.append(step)).run(job)
    assert seen == list(ALL_STEPS)
    assert finished.status is JobStatus.SUCCEEDED
    assert finished.completed_steps == ALL_STEPS
    stored = services.journal.get(job.transaction_id)
    assert stored == finished
    assert stored.last_error is None
    assert stored.next_attempt_at is None
    _assert_provisioned_once(services, job)


def test_each_recorded_step_is_saved_to_the_journal_before_the_next_runs(services: Services) -> None:
    job = _new_job(services)
    journal_seen: dict[Step, tuple[Step, ...]] = {}

    def look(step: Step, _job: ProvisioningJob) -> None:
        stored = services.journal.get(job.transaction_id)
        assert stored is not None
        journal_seen[step] = stored.completed_steps

    services.saga.with_after_step(look).run(job)
    assert journal_seen == {step: ALL_STEPS[: index + 1] for index, step in enumerate(ALL_STEPS)}


# --- crash and resume ---------------------------------------------------------------------


def _crash_after(target: Step) -> Callable[[Step, ProvisioningJob], None]:
    crashed: list[Step] = []

    def hook(step: Step, _job: ProvisioningJob) -> None:
        if step is target and not crashed:
            crashed.append(step)
            raise SimulatedCrashError(f"killed after {step.value}")

    return hook


@pytest.mark.parametrize("crash_step", ALL_STEPS, ids=[step.value for step in ALL_STEPS])
def test_crash_after_each_step_resumes_without_duplicates(services: Services, crash_step: Step) -> None:
    job = _new_job(services)
    with pytest.raises(SimulatedCrashError):
        services.saga.with_after_step(_crash_after(crash_step)).run(job)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.completed_steps == ALL_STEPS[: ALL_STEPS.index(crash_step) + 1]
    assert stored.status is not JobStatus.SUCCEEDED

    resumed = services.saga.run(stored)

    assert resumed.status is JobStatus.SUCCEEDED
    _assert_provisioned_once(services, job)
    # The email step is recorded before the hook runs, so a crash after it never re-sends.
    [message] = _welcome_emails(services)
    _assert_password_works(services, EMAIL, _password_in(message))


def test_crash_after_identity_user_resumes_without_duplicates(services: Services) -> None:
    job = _new_job(services)
    with pytest.raises(SimulatedCrashError):
        services.saga.with_after_step(_crash_after(Step.IDENTITY_USER)).run(job)
    created = services.identity.get_user(EMAIL)
    assert created is not None
    tenant = services.tenants.get(job.tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.PROVISIONING
    assert services.users.find_by_email(EMAIL) == []
    assert _welcome_emails(services) == []

    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    services.saga.run(stored)

    _assert_provisioned_once(services, job)
    assert services.identity.get_user(EMAIL) == created


@pytest.mark.parametrize("unrecorded_step", ALL_STEPS[:-1], ids=[step.value for step in ALL_STEPS[:-1]])
def test_step_done_but_not_recorded_is_harmless_when_run_again(services: Services, unrecorded_step: Step) -> None:
    """The crash falls between a step's write and its journal entry: the step runs twice."""
    job = _new_job(services)
    snapshots: dict[Step, ProvisioningJob] = {}

    def hook(step: Step, recorded: ProvisioningJob) -> None:
        snapshots[step] = recorded
        if step is unrecorded_step:
            raise SimulatedCrashError(step.value)

    with pytest.raises(SimulatedCrashError):
        services.saga.with_after_step(hook).run(job)
    index = ALL_STEPS.index(unrecorded_step)
    before = snapshots[ALL_STEPS[index - 1]] if index > 0 else job
    services.journal.save(before)  # the journal as it was before the step's entry

    services.saga.run(before)

    _assert_provisioned_once(services, job)
    [message] = _welcome_emails(services)
    _assert_password_works(services, EMAIL, _password_in(message))


def test_welcome_email_sent_but_not_recorded_is_not_sent_again_and_its_password_works(
    services: Services,
) -> None:
    job = _new_job(services)
    snapshots: dict[Step, ProvisioningJob] = {}

    def hook(step: Step, recorded: ProvisioningJob) -> None:
        snapshots[step] = recorded
        if step is Step.WELCOME_EMAIL:
            raise SimulatedCrashError(step.value)

    with pytest.raises(SimulatedCrashError):
        services.saga.with_after_step(hook).run(job)
    services.journal.save(snapshots[Step.ACTIVATE])

    services.saga.run(snapshots[Step.ACTIVATE])

    _assert_provisioned_once(services, job)
    # The outbox shows it went out to this identity user (make soak found the window is hit).
    [message] = _welcome_emails(services)
    _assert_password_works(services, EMAIL, _password_in(message))


def test_rerunning_a_succeeded_job_changes_nothing(services: Services) -> None:
    job = _new_job(services)
    services.saga.run(job)
    tenant = services.tenants.get(job.tenant_id)
    identity_user = services.identity.get_user(EMAIL)
    users = services.users.find_by_email(EMAIL)
    [message] = _welcome_emails(services)

    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    again = services.saga.run(stored)

    assert again.status is JobStatus.SUCCEEDED
    assert services.tenants.get(job.tenant_id) == tenant
    assert services.identity.get_user(EMAIL) == identity_user
    assert services.users.find_by_email(EMAIL) == users
    assert _welcome_emails(services) == [message]
    _assert_password_works(services, EMAIL, _password_in(message))
    # The worker does not even start a finished job.
    outcome = services.worker.run_job(again)
    assert outcome.action is NextAction.FINISHED
    assert services.journal.get(job.transaction_id) == again
    assert len(services.mailer.outbox()) == 1


def test_welcome_is_skipped_for_an_owner_who_already_set_a_password(services: Services) -> None:
    job = _new_job(services)
    with pytest.raises(SimulatedCrashError):
        services.saga.with_after_step(_crash_after(Step.ACTIVATE)).run(job)
    services.identity.set_password(EMAIL, "Own-Passw0rd!", permanent=True)
    stored = services.journal.get(job.transaction_id)
    assert stored is not None

    finished = services.saga.run(stored)

    assert finished.status is JobStatus.SUCCEEDED
    assert _welcome_emails(services) == []
    identity_user = services.identity.get_user(EMAIL)
    assert identity_user is not None
    assert identity_user.status is IdentityUserStatus.CONFIRMED
    assert not isinstance(services.identity.authenticate(EMAIL, "Own-Passw0rd!"), AuthChallenge)


# --- password hashing: once per purchase in the common path ------------------------------


@dataclass
class PasswordHashCounter:
    """The real identity provider, counting the two calls of the saga that hash a password
    with argon2id (create_user and set_password) and keeping the passwords they were given."""

    identity: IdentityProvider
    created_with: list[str] = field(default_factory=list)
    set_to: list[str] = field(default_factory=list)

    @property
    def hashes(self) -> int:
        return len(self.created_with) + len(self.set_to)

    def create_user(self, username: str, attributes: dict[str, str], temporary_password: str) -> IdentityUser:
        self.created_with.append(temporary_password)
        return self.identity.create_user(username, attributes, temporary_password)

    def set_password(self, username: str, password: str, *, permanent: bool) -> None:
        self.set_to.append(password)
        self.identity.set_password(username, password, permanent=permanent)

    def __getattr__(self, name: str) -> object:
        return getattr(self.identity, name)


def _counting(services: Services) -> tuple[Services, PasswordHashCounter]:
    counter = PasswordHashCounter(services.identity)
    return replace(services, identity=counter), counter  # type: ignore[arg-type]


def test_a_fresh_purchase_hashes_one_password_and_emails_that_one(services: Services) -> None:
    counted, counter = _counting(services)
    job = _new_job(services)

    with capture_logs() as logged:
        finished = counted.saga.run(job)

    assert finished.status is JobStatus.SUCCEEDED
    assert (len(counter.created_with), len(counter.set_to)) == (1, 0)
    [message] = _welcome_emails(services)
    [password] = counter.created_with
    assert _password_in(message) == password
    _assert_password_works(services, EMAIL, password)
    # Handed from the identity step to the email in memory only.
    assert password not in repr(services.journal.get(job.transaction_id))
    assert password not in repr(logged)


@pytest.mark.parametrize(
    "crash_step", [Step.IDENTITY_USER, Step.OWNER_LINK], ids=[Step.IDENTITY_USER.value, Step.OWNER_LINK.value]
)
def test_a_run_resumed_after_the_identity_step_sets_and_emails_a_fresh_password(
    services: Services, crash_step: Step
) -> None:
    counted, counter = _counting(services)
    job = _new_job(services)
    # The same saga object runs again: nothing of the first run stays on it.
    saga = counted.saga.with_after_step(_crash_after(crash_step))
    with pytest.raises(SimulatedCrashError):
        saga.run(job)
    [first_password] = counter.created_with
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.completed_steps == ALL_STEPS[: ALL_STEPS.index(crash_step) + 1]

    finished = saga.run(stored)

    assert finished.status is JobStatus.SUCCEEDED
    assert (len(counter.created_with), len(counter.set_to)) == (1, 1)  # the resumed run: one set_password
    [message] = _welcome_emails(services)
    [fresh_password] = counter.set_to
    assert _password_in(message) == fresh_password != first_password
    _assert_password_works(services, EMAIL, fresh_password)
    with pytest.raises(InvalidCredentialsError):
        services.identity.authenticate(EMAIL, first_password)


def test_a_run_that_finds_the_identity_user_made_but_not_recorded_sets_a_fresh_password(
    services: Services,
) -> None:
    counted, counter = _counting(services)
    job = _new_job(services)
    snapshots: dict[Step, ProvisioningJob] = {}

    def hook(step: Step, recorded: ProvisioningJob) -> None:
        snapshots[step] = recorded
        if step is Step.IDENTITY_USER:
            raise SimulatedCrashError(step.value)

    with pytest.raises(SimulatedCrashError):
        counted.saga.with_after_step(hook).run(job)
    services.journal.save(snapshots[Step.TENANT_RECORD])  # created, then the worker died
    [first_password] = counter.created_with

    counted.saga.run(snapshots[Step.TENANT_RECORD])

    assert (len(counter.created_with), len(counter.set_to)) == (1, 1)
    [message] = _welcome_emails(services)
    assert _password_in(message) == counter.set_to[0]
    _assert_password_works(services, EMAIL, counter.set_to[0])
    with pytest.raises(InvalidCredentialsError):
        services.identity.authenticate(EMAIL, first_password)


def test_an_adopted_identity_user_gets_a_fresh_password_before_the_email(services: Services) -> None:
    services.identity.create_user(EMAIL, {"email": EMAIL, "email_verified": "true"}, "Left-0ver-Pass!")
    counted, counter = _counting(services)

    counted.saga.run(_new_job(services))

    assert (len(counter.created_with), len(counter.set_to)) == (0, 1)
    [message] = _welcome_emails(services)
    assert _password_in(message) == counter.set_to[0]
    _assert_password_works(services, EMAIL, counter.set_to[0])


def test_a_user_recreated_during_the_run_gets_a_fresh_password(services: Services) -> None:
    """Only the very user the run created (same sub) may get the password it was created with."""
    counted, counter = _counting(services)

    def recreate(step: Step, recorded: ProvisioningJob) -> None:
        if step is Step.ACTIVATE:
            services.identity.delete_user(EMAIL)
            attributes = {"email": EMAIL, "custom:tenant_id": recorded.tenant_id, "custom:roles": "tenant_admin"}
            services.identity.create_user(EMAIL, attributes, "Someone-Else-1!")

    counted.saga.with_after_step(recreate).run(_new_job(services))

    assert (len(counter.created_with), len(counter.set_to)) == (1, 1)
    [message] = _welcome_emails(services)
    assert _password_in(message) == counter.set_to[0]
    _assert_password_works(services, EMAIL, counter.set_to[0])


@dataclass
class JumpingClock:
    """The system clock, plus a jump forward the test can make mid-run (a run that hung)."""

    ahead: timedelta = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


def test_a_run_that_outlived_its_temporary_password_sets_a_fresh_one(services: Services) -> None:
    counted, counter = _counting(services)
    clock = JumpingClock()

    def hang(step: Step, _job: ProvisioningJob) -> None:
        if step is Step.ACTIVATE:
            clock.ahead = timedelta(days=services.settings.temporary_password_ttl_days, seconds=1)

    replace(counted, clock=clock).saga.with_after_step(hang).run(_new_job(services))

    assert (len(counter.created_with), len(counter.set_to)) == (1, 1)
    [message] = _welcome_emails(services)
    assert _password_in(message) == counter.set_to[0]


# --- existing owners and bad jobs ---------------------------------------------------------


def test_second_purchase_by_an_active_owner_needs_review_and_creates_nothing(services: Services) -> None:
    first = _new_job(services, "TXN-300001")
    services.saga.run(first)
    identity_user = services.identity.get_user(EMAIL)
    second = _new_job(services, "TXN-300002")

    outcome = services.saga.run(second)

    assert outcome.status is JobStatus.NEEDS_REVIEW
    assert outcome.review_reason is not None
    assert first.tenant_id in outcome.review_reason
    assert EMAIL in outcome.review_reason
    assert outcome.completed_steps == ()
    stored = services.journal.get("TXN-300002")
    assert stored is not None
    assert stored.status is JobStatus.NEEDS_REVIEW
    assert stored.review_reason == outcome.review_reason
    assert services.tenants.get(second.tenant_id) is None
    assert _count(services, "tenants") == 1
    assert _count(services, "identity_users") == 1
    assert services.identity.get_user(EMAIL) == identity_user
    [user] = services.users.find_by_email(EMAIL)
    assert user.tenant_id == first.tenant_id
    assert len(_welcome_emails(services)) == 1


def test_identity_user_without_a_tenant_is_adopted(services: Services) -> None:
    # Left behind by a failed hand repair (RB-001 4.2 without the custom attributes).
    leftover = services.identity.create_user(EMAIL, {"email": EMAIL, "email_verified": "true"}, "Left-0ver-Pass!")
    assert leftover.tenant_id is None
    job = _new_job(services)

    finished = services.saga.run(job)

    assert finished.status is JobStatus.SUCCEEDED
    _assert_provisioned_once(services, job)
    adopted = services.identity.get_user(EMAIL)
    assert adopted is not None
    assert adopted.sub == leftover.sub
    assert adopted.attributes["custom:tenant_id"] == job.tenant_id
    assert adopted.attributes["custom:roles"] == "tenant_admin"
    assert adopted.attributes["email_verified"] == "true"
    [message] = _welcome_emails(services)
    _assert_password_works(services, EMAIL, _password_in(message))
    with pytest.raises(InvalidCredentialsError):
        services.identity.authenticate(EMAIL, "Left-0ver-Pass!")


def test_identity_user_of_another_tenant_needs_review(services: Services) -> None:
    services.identity.create_user(
        EMAIL, {"email": EMAIL, "custom:tenant_id": "ten_NEWID", "custom:roles": "tenant_admin"}, "Other-Pass-1!"
    )
    job = _new_job(services)

    outcome = services.saga.run(job)

    # ten_NEWID has no tenant record, so the owner check lets it through to the identity step.
    assert outcome.status is JobStatus.NEEDS_REVIEW
    assert outcome.review_reason is not None
    assert "ten_NEWID" in outcome.review_reason
    untouched = services.identity.get_user(EMAIL)
    assert untouched is not None
    assert untouched.tenant_id == "ten_NEWID"
    assert services.users.find_by_email(EMAIL) == []
    assert _welcome_emails(services) == []


def test_unknown_plan_in_a_job_raises_permanent_error(services: Services) -> None:
    job = _new_job(services, plan="platinum")
    with pytest.raises(PermanentError, match="platinum"):
        services.saga.run(job)
    assert services.tenants.get(job.tenant_id) is None
    assert services.identity.get_user(EMAIL) is None
    stored = services.journal.get(job.transaction_id)
    assert stored is not None
    assert stored.completed_steps == ()


def test_tenant_id_taken_by_another_transaction_raises_permanent_error(services: Services) -> None:
    first = _new_job(services, "TXN-400001")
    services.saga.run(first)
    clash = _new_job(services, "TXN-400002", email="other@example.com").with_changes(tenant_id=first.tenant_id)
    services.journal.save(clash)
    with pytest.raises(PermanentError, match="TXN-400001"):
        services.saga.run(clash)
    assert services.identity.get_user("other@example.com") is None
