"""The composition root: settings in, the wired services out. The one place adapters are chosen."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from tenancy.accounts.login import AccountService
from tenancy.accounts.operators import OperatorInviteSettings, OperatorService
from tenancy.accounts.reset import ResetMail
from tenancy.accounts.sessions import SessionLifetimes, SessionService
from tenancy.accounts.throttle import LoginLimits, LoginThrottle, ResetLimits, ResetRequestThrottle
from tenancy.adapters.notifiers import (
    EmailNotifier,
    LogNotifier,
    PagerDutyNotifier,
    SecretFollowingNotifier,
    SlackNotifier,
    UnconfiguredNotifier,
)
from tenancy.adapters.payfast_api import HttpSubscriptionApi
from tenancy.adapters.payfast_http import HttpPaymentConfirmer
from tenancy.adapters.webhooks import NoSubscriberPublisher, WebhookPublisher
from tenancy.billing.changes import SubscriptionChanges
from tenancy.billing.observer import SettlingObserver
from tenancy.billing.settle import SubscriptionBilling
from tenancy.config import Backend, PayfastMode, Settings
from tenancy.domain.clock import utc_now
from tenancy.domain.lifecycle import Trigger
from tenancy.domain.model import LogComponent
from tenancy.domain.plans import PlanCatalogue, load_catalogue
from tenancy.errors import ConfigurationError
from tenancy.lifecycle.due import LifecyclePeriods
from tenancy.lifecycle.emails import LifecycleMail
from tenancy.lifecycle.notices import NoticeDispatcher
from tenancy.lifecycle.offboarding import TenantOffboarding
from tenancy.lifecycle.sweep import LifecycleSweep
from tenancy.members.mail import TeamMail
from tenancy.members.team import TeamService
from tenancy.payments.intake import IntakePolicy, PaymentIntake
from tenancy.ports import (
    Clock,
    EventPublisher,
    FindingsIndex,
    IdentityProvider,
    JobQueue,
    LifecycleStore,
    LogSource,
    Mailer,
    Notifier,
    PaymentConfirmer,
    PaymentLedger,
    ProvisioningJournal,
    PurchaseObserver,
    RateLimiter,
    RepairTrail,
    ServiceKeyStore,
    SessionStore,
    SubscriptionApi,
    SubscriptionStore,
    TeamStore,
    TenantStore,
    UsageStore,
    UserStore,
)
from tenancy.private_files import create_private_file, private_directory
from tenancy.provisioning.manual import provision_now
from tenancy.provisioning.retry import RetryPolicy
from tenancy.provisioning.saga import ProvisioningSaga, SagaSettings
from tenancy.provisioning.sweep import StalledJobSweeper, SweepResult
from tenancy.provisioning.worker import JobOutcome, ProvisioningWorker
from tenancy.runbook.alerts import ESCALATION_EMAILS, AlertDispatcher, AlertMonitor, AlertThresholds
from tenancy.runbook.audit_schedule import ScheduledAudit
from tenancy.runbook.evidence import EvidenceStores
from tenancy.runbook.findings import ESCALATION, Finding
from tenancy.runbook.findings_index import Auditor, FindingsRecorder
from tenancy.runbook.passive import DeadLettersOnly, TenantByKey
from tenancy.runbook.repair import LifecycleRepairs
from tenancy.runbook.service import Runbook
from tenancy.secret_source import (
    LIVE_REQUIRED,
    PLACEHOLDER,
    SecretName,
    SecretSource,
    SettingsSecrets,
    parameter_name,
)
from tenancy.usage.entitlements import UsageService
from tenancy.usage.keys import ServiceKeys
from tenancy.usage.warnings import UsageMail

if TYPE_CHECKING:  # each backend's adapters are imported by its own wiring alone (a Lambda's cold start)
    from mypy_boto3_ssm import SSMClient

    from tenancy.adapters.local.database import Database

__all__ = ["SWEEP_OPERATOR", "Services", "SystemClock", "build", "log_directory"]

# Who the repair trail names for what the sweep cleans up by itself.
SWEEP_OPERATOR = "stalled-job sweep"


class SystemClock:
    def now(self) -> datetime:
        return utc_now()


# Not slotted: each `cached_property` keeps its service in the instance's __dict__.
@dataclass
class Services:
    """The adapters that `build` chose (the fields), and the services wired from them (each a
    `cached_property`, built on first use, once per instance). `dataclasses.replace(services,
    queue=...)` makes a new instance whose services are built anew from the replaced adapters;
    a service already built keeps the adapters it was built with."""

    settings: Settings
    clock: Clock
    plans: PlanCatalogue
    tenants: TenantStore
    users: UserStore
    journal: ProvisioningJournal
    ledger: PaymentLedger
    queue: JobQueue
    identity: IdentityProvider
    mailer: Mailer
    confirmer: PaymentConfirmer
    trail: RepairTrail
    session_store: SessionStore
    findings_index: FindingsIndex
    subscriptions: SubscriptionStore
    lifecycle: LifecycleStore
    usage_store: UsageStore  # each tenant's usage, and the answers given to idempotency keys
    service_key_store: ServiceKeyStore
    team_store: TeamStore  # invitations, and the seats and tenant admins members hold
    events: EventPublisher  # where lifecycle events go: a webhook, EventBridge, or no one
    database: Database | None = None  # the embedded backend's SQLite file; None on AWS
    log_source: LogSource | None = None  # where `logs` reads; None: the files under TENANCY_HOME/logs
    rate_limiter: RateLimiter | None = None  # login and ITN throttles; None: no throttling
    # PayFast's subscription API when not the one the settings choose (a test's stand-in).
    payfast_api: SubscriptionApi | None = None
    # Where the secrets read at each use come from (SSM on AWS, refreshed on rotation); None: the
    # settings, as read at start.
    secret_source: SecretSource | None = None

    def current_secret(self, name: SecretName) -> str | None:
        """A secret as it is now: through SSM's cache on AWS (a rotated value within its max age),
        else as the settings hold it. For what reads a secret at each use (a checkout's signature)."""
        return (self.secret_source or SettingsSecrets(self.settings)).get(name)

    # Payments.

    @cached_property
    def intake(self) -> PaymentIntake:
        """Checks and keeps each PayFast ITN, and journals and queues the job of a completed one."""
        settings = self.settings
        offline = settings.payfast_mode is PayfastMode.OFFLINE
        policy = IntakePolicy(
            merchant_id=settings.payfast_merchant_id,
            passphrase=settings.passphrase,
            source_ranges=settings.payfast_source_ranges,
            trusted_proxies=settings.trusted_proxies,
            check_source=not offline,
            confirm_with_payfast=not offline,
            max_per_minute_per_source=settings.itn_max_per_minute_per_source,
        )
        return PaymentIntake(
            policy,
            self.plans,
            self.ledger,
            self.confirmer,
            self.clock,
            self.rate_limiter,
            # The intake settles a subscription ITN itself (and answers PayFast by the outcome),
            # so it is told of the finding alone, not the settling observer.
            self.findings_recorder,
            self.subscriptions,
            secrets=self.secret_source,
            settle=self.billing.settle,
        )

    @cached_property
    def billing(self) -> SubscriptionBilling:
        """Applies each checkout's subscription ITNs (first charge, renewals, cancellation) to its tenant."""
        settings = self.settings
        return SubscriptionBilling(
            subscriptions=self.subscriptions,
            tenants=self.tenants,
            ledger=self.ledger,
            journal=self.journal,
            plans=self.plans,
            lifecycle=self.lifecycle,
            notices=self.notices,
            api=self.subscription_api,
            clock=self.clock,
            account_url=f"{settings.public_base_url}/account",
            sender=settings.email_from,
            support_email=settings.effective_support_email,
        )

    @cached_property
    def lifecycle_sweep(self) -> LifecycleSweep:
        """Applies the moves time has made due: past due, suspended, cancelled, deleted."""
        return LifecycleSweep(
            tenants=self.tenants,
            subscriptions=self.subscriptions,
            users=self.users,
            lifecycle=self.lifecycle,
            api=self.subscription_api,
            notices=self.notices,
            settle=self.billing.settle,
            mail=self.lifecycle_mail,
            periods=self.lifecycle_periods,
            offboarding=self.offboarding,
            clock=self.clock,
        )

    @cached_property
    def lifecycle_mail(self) -> LifecycleMail:
        settings = self.settings
        return LifecycleMail(
            sender=settings.email_from,
            billing_url=f"{settings.public_base_url}/account",
            support_email=settings.effective_support_email,
        )

    @cached_property
    def usage(self) -> UsageService:
        """Entitlements and usage records for the Site Builder application, and corrections."""
        settings = self.settings
        return UsageService(
            tenants=self.tenants,
            subscriptions=self.subscriptions,
            usage=self.usage_store,
            users=self.users,
            lifecycle=self.lifecycle,
            notices=self.notices,
            trail=self.trail,
            mail=UsageMail(
                sender=settings.email_from,
                account_url=f"{settings.public_base_url}/account",
                support_email=settings.effective_support_email,
            ),
            clock=self.clock,
        )

    @cached_property
    def team(self) -> TeamService:
        """A tenant's members: invitations, roles, removal, ownership; seats per plan."""
        settings = self.settings
        return TeamService(
            tenants=self.tenants,
            users=self.users,
            team=self.team_store,
            identity=self.identity,
            plans=self.plans,
            lifecycle=self.lifecycle,
            notices=self.notices,
            trail=self.trail,
            mail=TeamMail(
                sender=settings.email_from,
                base_url=settings.public_base_url,
                support_email=settings.effective_support_email,
                login_url=settings.effective_login_url,
                password_ttl_days=settings.temporary_password_ttl_days,
            ),
            mailer=self.mailer,
            clock=self.clock,
            end_sessions=self.sessions.end_everywhere,
        )

    @cached_property
    def service_keys(self) -> ServiceKeys:
        """The service API's keys (made, listed, revoked, checked)."""
        return ServiceKeys(self.service_key_store, service_key_pepper(self.settings), self.clock)

    @cached_property
    def offboarding(self) -> TenantOffboarding:
        """A tenant's export (everything held about it) and deletion (a tombstone kept)."""
        return TenantOffboarding(
            tenants=self.tenants,
            users=self.users,
            identity=self.identity,
            subscriptions=self.subscriptions,
            lifecycle=self.lifecycle,
            ledger=self.ledger,
            journal=self.journal,
            mailer=self.mailer,
            notices=self.notices,
            mail=self.lifecycle_mail,
            clock=self.clock,
        )

    @cached_property
    def lifecycle_periods(self) -> LifecyclePeriods:
        """The grace, suspended and retention periods (TENANCY_GRACE_DAYS and the rest)."""
        settings = self.settings
        return LifecyclePeriods(
            grace_days=settings.grace_days,
            suspended_days=settings.suspended_days,
            retention_days=settings.retention_days,
        )

    @cached_property
    def notices(self) -> NoticeDispatcher:
        """Delivers what the tenants' moves owe: lifecycle events and owner emails."""
        return NoticeDispatcher(self.lifecycle, self.mailer, self.events, self.clock)

    @cached_property
    def subscription_changes(self) -> SubscriptionChanges:
        """Upgrades, downgrades and cancels tenants' subscriptions at PayFast, kept in the repair trail."""
        settings = self.settings
        return SubscriptionChanges(
            subscriptions=self.subscriptions,
            tenants=self.tenants,
            users=self.users,
            api=self.subscription_api,
            plans=self.plans,
            trail=self.trail,
            clock=self.clock,
            lifecycle=self.lifecycle,
            notices=self.notices,
            sender=settings.email_from,
            support_email=settings.effective_support_email,
            account_url=f"{settings.public_base_url}/account",
            observer=self.purchase_observer,
            team=self.team_store,
        )

    @cached_property
    def subscription_api(self) -> SubscriptionApi:
        """PayFast's subscription API; offline on the embedded backend, the built-in simulator."""
        settings = self.settings
        if self.payfast_api is not None:
            return self.payfast_api
        if settings.payfast_mode is PayfastMode.OFFLINE and self.database is not None:
            from tenancy.adapters.local.payfast_simulator import SimulatedSubscriptionApi

            return SimulatedSubscriptionApi(self.database)
        source = self.secret_source
        return HttpSubscriptionApi(
            merchant_id=settings.payfast_merchant_id,
            passphrase=settings.passphrase if source is None else partial(source.get, SecretName.PAYFAST_PASSPHRASE),
            base_url=settings.effective_payfast_api_url,
            sandbox=settings.payfast_mode is PayfastMode.SANDBOX,
            timeout_seconds=settings.payfast_api_timeout_seconds,
        )

    @cached_property
    def purchase_observer(self) -> PurchaseObserver:
        """Told of every change to a purchase: settles its subscription, then judges it again."""
        return SettlingObserver(self.billing, self.findings_recorder)

    # Accounts.

    @cached_property
    def accounts(self) -> AccountService:
        """Sign-in, the new-password challenge, password resets and the tenant a token names."""
        settings = self.settings
        throttle, reset_throttle = None, None
        if self.rate_limiter is not None:
            limits = LoginLimits(
                max_failures_per_account=settings.login_max_failures_per_account,
                max_failures_per_source=settings.login_max_failures_per_source,
                window_seconds=settings.login_lockout_seconds,
                slow_down_after=settings.login_slow_down_after,
                max_delay_seconds=settings.login_max_delay_seconds,
            )
            throttle = LoginThrottle(self.rate_limiter, limits, self.clock)
            reset_throttle = ResetRequestThrottle(self.rate_limiter, ResetLimits())
        reset_mail = ResetMail(
            self.mailer,
            sender=settings.email_from,
            login_url=settings.effective_login_url,
            support_email=settings.effective_support_email,
        )
        return AccountService(
            self.identity,
            self.tenants,
            throttle,
            reset_mail,
            reset_throttle,
            self.sessions,
            self.users,
            self.clock,
        )

    @cached_property
    def sessions(self) -> SessionService:
        """Browser and API sessions: started at sign-in, refreshed, revoked."""
        settings = self.settings
        lifetimes = SessionLifetimes(
            browser_seconds=settings.session_hours * 3600, api_seconds=settings.refresh_token_days * 86_400
        )
        return SessionService(self.session_store, self.identity, self.clock, lifetimes)

    @cached_property
    def operators(self) -> OperatorService:
        """Inviting, listing and removing operators."""
        settings = self.settings
        invite = OperatorInviteSettings(
            login_url=settings.effective_login_url,
            sender=settings.email_from,
            temporary_password_ttl_days=settings.temporary_password_ttl_days,
        )
        return OperatorService(self.identity, self.mailer, invite, self.sessions)

    # Provisioning.

    @cached_property
    def saga(self) -> ProvisioningSaga:
        """The six provisioning steps; `saga.with_after_step(hook)` for one that calls a hook after each."""
        settings = self.settings
        return ProvisioningSaga(
            settings=SagaSettings(
                login_url=settings.effective_login_url,
                email_from=settings.email_from,
                temporary_password_ttl_days=settings.temporary_password_ttl_days,
                support_email=settings.effective_support_email,
            ),
            plans=self.plans,
            tenants=self.tenants,
            users=self.users,
            identity=self.identity,
            mailer=self.mailer,
            journal=self.journal,
            clock=self.clock,
            lifecycle=self.lifecycle,
        )

    @cached_property
    def worker(self) -> ProvisioningWorker:
        """Receives jobs and runs the saga on each; keeps no state between jobs, so threads share it."""
        settings = self.settings
        saga = self.saga
        faults = settings.fault_plan
        if faults:
            # TEST-ONLY (TENANCY_FAULTS): the reliability suite crashes and slows real workers here.
            faulty = replace(self, mailer=faults.mailer(self.mailer, settings.home))
            saga = faulty.saga.with_after_step(faults.after_step(settings.home))
        return ProvisioningWorker(
            queue=self.queue,
            journal=self.journal,
            saga=saga,
            retry=RetryPolicy(
                base_seconds=settings.retry_base_seconds,
                factor=settings.retry_factor,
                cap_seconds=settings.retry_cap_seconds,
                max_attempts=settings.retry_max_attempts,
            ),
            clock=self.clock,
            visibility_timeout=settings.visibility_timeout_seconds,
            observer=self.purchase_observer,
            sweep_every=timedelta(seconds=settings.stalled_sweep_seconds),
        )

    @cached_property
    def sweeper(self) -> StalledJobSweeper:
        """Puts stalled jobs (in no worker's hands any more) back on the queue."""
        return StalledJobSweeper(
            self.journal,
            self.queue,
            self.clock,
            max_attempts=self.settings.retry_max_attempts,
            stalled_after=timedelta(seconds=self.settings.stalled_after_seconds),
            observer=self.purchase_observer,
        )

    def sweep(self) -> SweepResult:
        """One round of the stalled-job sweep (the embedded worker's, the AWS schedule's): stalled
        jobs back on the queue, then the dead letters whose purchase has healed since removed. SQS
        parks a message after MAX_RECEIVE_COUNT receives even while its job goes on (killed runs,
        retries) and the job then succeeds from another copy: left, the stale copy would keep the
        DLQ alarm firing for a purchase that needs no one (`tenancy dlq remove --healed`, done for
        the operator, and kept in the repair trail as the sweep's). Last, the subscription payments
        the findings index names accepted and not applied are applied (their ITN was answered 503,
        and PayFast's resends, which would have applied them, never came)."""
        swept = self.sweeper.sweep()
        decisions = self.runbook.remove_healed_dead_letters(operator=SWEEP_OPERATOR)
        cleared = [decision.message.transaction_id for decision in decisions if decision.removed]
        unapplied = self.findings_index.with_finding(Finding.RENEWAL_UNAPPLIED.value)
        repaired = self.runbook.apply_unapplied([entry.transaction_id for entry in unapplied], operator=SWEEP_OPERATOR)
        settled = [result.plan.diagnosis.transaction_id or "" for result in repaired]
        return replace(swept, cleared=cleared, settled=settled)

    # The runbook and alerts.

    @cached_property
    def evidence_stores(self) -> EvidenceStores:
        """Every store the runbook reads a purchase's case from."""
        return EvidenceStores(
            ledger=self.ledger,
            journal=self.journal,
            queue=self.queue,
            tenants=self.tenants,
            users=self.users,
            identity=self.identity,
            mailer=self.mailer,
            subscriptions=self.subscriptions,
            lifecycle=self.lifecycle,
            team=self.team_store,
        )

    @cached_property
    def runbook(self) -> Runbook:
        """RB-001's diagnose, repair, verify and dead-letter commands."""
        # Offline with no embedded database (AWS) there is no simulator and no PayFast to ask:
        # the HTTP client would only fail slowly, on every diagnose of a subscribed purchase.
        no_payfast = self.settings.payfast_mode is PayfastMode.OFFLINE and self.database is None
        return Runbook(
            stores=self.evidence_stores,
            worker=self.worker,
            trail=self.trail,
            accounts=self.accounts,
            clock=self.clock,
            password_ttl=self.password_ttl,
            observer=self.purchase_observer,
            settle=self.billing.settle,
            payfast=None if no_payfast else self.subscription_api,
            lifecycle=LifecycleRepairs(
                apply_due=lambda tenant_id, now: self.lifecycle_sweep.run_for(tenant_id, now),
                finish_deletion=lambda tenant_id: self.offboarding.delete(
                    tenant_id, trigger=Trigger.OPERATOR, actor="runbook repair", reason="finish the deletion"
                ),
                redeliver=self.notices.redeliver,
            ),
            periods=self.lifecycle_periods,
            restore_member=self.team.restore_access,
        )

    @cached_property
    def findings_recorder(self) -> FindingsRecorder:
        """Judges a purchase again after each change and keeps its finding in the findings index."""
        # It runs after every change, so it reads by key only (runbook.passive): no scan for a
        # tenant not made yet, and on SQS no look at the work queue (that would count as a delivery).
        stores = replace(self.evidence_stores, tenant_finder=TenantByKey(self.tenants, self.findings_index))
        if stores.queue.listing_counts_as_delivery:
            stores = replace(stores, queue=DeadLettersOnly(stores.queue))
        return FindingsRecorder(stores, self.findings_index, self.clock, self.password_ttl, self.lifecycle_periods)

    @cached_property
    def auditor(self) -> Auditor:
        """The full audit (`tenancy audit`, the console's, the schedule's), refreshing the findings index."""
        return Auditor(
            stores=self.evidence_stores,
            index=self.findings_index,
            recorder=self.findings_recorder,
            trail=self.trail,
            clock=self.clock,
            password_ttl=self.password_ttl,
            periods=self.lifecycle_periods,
        )

    @cached_property
    def scheduled_audit(self) -> ScheduledAudit:
        """The weekly audit: due when the last one is TENANCY_AUDIT_INTERVAL_HOURS old."""
        interval = timedelta(hours=self.settings.audit_interval_hours)
        return ScheduledAudit(self.auditor, self.findings_index, self.clock, interval)

    @cached_property
    def password_ttl(self) -> timedelta:
        """How long a temporary password lasts (a setting the runbook judges welcome emails by)."""
        return timedelta(days=self.settings.temporary_password_ttl_days)

    @cached_property
    def alert_monitor(self) -> AlertMonitor:
        """Evaluates the alert rules over the journal, the ledger and the queue."""
        settings = self.settings
        thresholds = AlertThresholds(
            window_minutes=settings.alert_window_minutes,
            error_rate=settings.alert_error_rate,
            error_rate_min_jobs=settings.alert_error_rate_min_jobs,
            multiple_failures=settings.alert_failures_threshold,
            security_rejections=settings.alert_security_threshold,
            unresolved_minutes=settings.alert_unresolved_minutes,
            suspensions_per_day=settings.alert_suspensions_per_day,
        )
        return AlertMonitor(
            journal=self.journal,
            ledger=self.ledger,
            queue=self.queue,
            clock=self.clock,
            thresholds=thresholds,
            index=self.findings_index,
            lifecycle=self.lifecycle,
        )

    @cached_property
    def alert_dispatcher(self) -> AlertDispatcher:
        """Sends alerts: every one is logged; TENANCY_ALERT_ROUTES adds email, Slack or PagerDuty per target."""
        routes: dict[str, list[Notifier]] = {}
        for target in ESCALATION:
            destinations = self.settings.alert_routes.get(target, ())
            routes[target] = [LogNotifier(), *(self._notifier(target, name) for name in destinations if name != "log")]
        return AlertDispatcher(routes)

    @cached_property
    def logs(self) -> LogSource:
        """What every process logged: CloudWatch Logs on AWS, else the files `configure_logging` writes to."""
        if self.log_source is not None:
            return self.log_source
        from tenancy.adapters.local.logs import FileLogSource

        return FileLogSource(log_directory(self.settings))

    # Operations.

    def provision_now(self, transaction_id: str, email: str, plan: str, name: str | None = None) -> JobOutcome:
        """RB-001 4.1's manual trigger (provisioning.manual) on these services."""
        return provision_now(
            transaction_id=transaction_id,
            email=email,
            plan=plan,
            name=name,
            plans=self.plans,
            journal=self.journal,
            queue=self.queue,
            worker=self.worker,
            clock=self.clock,
        )

    def close(self) -> None:
        if isinstance(self.confirmer, HttpPaymentConfirmer):
            self.confirmer.close()
        # Only a subscription API already built is closed: closing never builds one.
        api = self.__dict__.get("subscription_api")
        if isinstance(api, HttpSubscriptionApi):
            api.close()
        if self.database is not None:
            self.database.close()

    def _notifier(self, target: str, destination: str) -> Notifier:
        settings = self.settings
        if destination == "email":
            to = settings.alert_email_to or ESCALATION_EMAILS.get(target)
            if to is None:
                return UnconfiguredNotifier("email", "TENANCY_ALERT_EMAIL_TO")
            return EmailNotifier(self.mailer, to=to, sender=settings.email_from)
        # With the secrets in SSM, Slack's URL and PagerDuty's key are read at each alert (rotation).
        source, path = self.secret_source, settings.effective_secrets_path
        if destination == "slack" and source is not None:
            return SecretFollowingNotifier(
                "slack",
                partial(source.get, SecretName.ALERT_SLACK_WEBHOOK_URL),
                partial(SlackNotifier, timeout_seconds=settings.alert_http_timeout_seconds),
                f"SSM parameter {parameter_name(path, SecretName.ALERT_SLACK_WEBHOOK_URL)}",
            )
        if destination == "pagerduty" and source is not None:
            return SecretFollowingNotifier(
                "pagerduty",
                partial(source.get, SecretName.ALERT_PAGERDUTY_ROUTING_KEY),
                partial(
                    PagerDutyNotifier,
                    settings.alert_pagerduty_url,
                    source=f"tenancy-{settings.env}@{socket.gethostname()}",
                    timeout_seconds=settings.alert_http_timeout_seconds,
                ),
                f"SSM parameter {parameter_name(path, SecretName.ALERT_PAGERDUTY_ROUTING_KEY)}",
            )
        if destination == "slack":
            if settings.alert_slack_webhook_url is None:
                return UnconfiguredNotifier("slack", "TENANCY_ALERT_SLACK_WEBHOOK_URL")
            return SlackNotifier(settings.alert_slack_webhook_url, timeout_seconds=settings.alert_http_timeout_seconds)
        if settings.alert_pagerduty_routing_key is None:
            return UnconfiguredNotifier("pagerduty", "TENANCY_ALERT_PAGERDUTY_ROUTING_KEY")
        return PagerDutyNotifier(
            settings.alert_pagerduty_url,
            settings.alert_pagerduty_routing_key,
            source=f"tenancy-{settings.env}@{socket.gethostname()}",
            timeout_seconds=settings.alert_http_timeout_seconds,
        )


def service_key_pepper(settings: Settings) -> bytes:
    """TENANCY_SERVICE_KEY_PEPPER; embedded, without it, a random pepper made once under
    TENANCY_HOME/keys (private to this account). On AWS every function must share one: it must be set."""
    if settings.service_key_pepper is not None:
        return settings.service_key_pepper.get_secret_value().encode()
    if settings.backend is Backend.AWS:
        where = (
            f"the SSM parameter {parameter_name(settings.effective_secrets_path, SecretName.SERVICE_KEY_PEPPER)}"
            if settings.secrets_in_ssm
            else "TENANCY_SERVICE_KEY_PEPPER"
        )
        raise ConfigurationError(
            f"the service API needs {where} on AWS (at least 32 characters, e.g. `openssl rand -hex 32`)"
        )
    path = settings.keys_dir / "service-key-pepper"
    if not path.exists():
        private_directory(settings.keys_dir)
        create_private_file(path)
    if not path.read_text(encoding="ascii").strip():
        path.write_text(secrets.token_hex(32), encoding="ascii")
    return path.read_text(encoding="ascii").strip().encode()


def log_directory(settings: Settings) -> Path:
    """Where every process appends its log files: TENANCY_HOME/logs."""
    return settings.home / "logs"


def _catalogue(settings: Settings) -> PlanCatalogue:
    """The plan catalogue, refused at start when it sells subscriptions without the passphrase
    PayFast requires for them (rather than at the first buyer's checkout)."""
    plans = load_catalogue(settings.plans_file)
    subscriptions = [plan.name for plan in plans.plans if plan.is_subscription]
    if subscriptions and settings.passphrase is None:
        raise ConfigurationError(
            f"plans {', '.join(subscriptions)} are PayFast subscriptions, which need a passphrase: set "
            'TENANCY_PAYFAST_PASSPHRASE, or sell them once-off (billing = "once" in the plans file)'
        )
    return plans


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Wires the backend that `settings.backend` names. Every service and adapter that judges
    time (delays, visibility timeouts, expiries, rate-limit windows) reads `clock`: the system
    clock unless a test passes its own."""
    clock = clock or SystemClock()
    if settings.backend is Backend.AWS:
        return _build_aws(settings, clock)
    return _build_local(settings, clock)


def _build_local(settings: Settings, clock: Clock) -> Services:
    """One SQLite database under TENANCY_HOME for every store and queue, the embedded identity
    provider and the mail outbox (delivered by SMTP when TENANCY_SMTP_URL is set)."""
    # Imported here so that a Lambda's cold start never pays for the embedded backend.
    from tenancy.adapters.local.database import Database
    from tenancy.adapters.local.findings_index import SqliteFindingsIndex
    from tenancy.adapters.local.identity import EmbeddedIdentityProvider
    from tenancy.adapters.local.journal import SqliteJournal
    from tenancy.adapters.local.ledger import SqliteLedger
    from tenancy.adapters.local.lifecycle import SqliteLifecycleStore
    from tenancy.adapters.local.mail import OutboxMailer, SmtpTarget
    from tenancy.adapters.local.queue import SqliteJobQueue
    from tenancy.adapters.local.ratelimit import SqliteRateLimiter
    from tenancy.adapters.local.sessions import SqliteSessionStore
    from tenancy.adapters.local.store import SqliteTenantStore, SqliteUserStore
    from tenancy.adapters.local.subscriptions import SqliteSubscriptionStore
    from tenancy.adapters.local.team import SqliteTeamStore
    from tenancy.adapters.local.trail import SqliteRepairTrail
    from tenancy.adapters.local.usage import SqliteServiceKeyStore, SqliteUsageStore

    plans = _catalogue(settings)
    database = Database(settings.database_path)
    smtp = SmtpTarget(settings.smtp_url) if settings.smtp_url else None
    services = Services(
        settings=settings,
        clock=clock,
        plans=plans,
        tenants=SqliteTenantStore(database),
        users=SqliteUserStore(database),
        journal=SqliteJournal(database),
        ledger=SqliteLedger(database, clock=clock),
        queue=SqliteJobQueue(database, clock=clock, max_receive_count=settings.retry_max_attempts + 5),
        identity=EmbeddedIdentityProvider.from_settings(database, settings, clock),
        mailer=OutboxMailer(database, default_sender=settings.email_from, clock=clock, smtp=smtp),
        confirmer=HttpPaymentConfirmer(settings.effective_validate_url, settings.payfast_validate_timeout_seconds),
        trail=SqliteRepairTrail(database),
        session_store=SqliteSessionStore(database),
        findings_index=SqliteFindingsIndex(database),
        subscriptions=SqliteSubscriptionStore(database),
        lifecycle=SqliteLifecycleStore(database),
        usage_store=SqliteUsageStore(database),
        service_key_store=SqliteServiceKeyStore(database),
        team_store=SqliteTeamStore(database),
        events=_webhook_publisher(settings),
        database=database,
        rate_limiter=SqliteRateLimiter(database, clock=clock),
    )
    rates = settings.fault_plan.rates()
    if rates:
        # TEST-ONLY (TENANCY_FAULTS' `rate:` rules): the soak's SQLite locks and SMTP failures, in
        # what the services do once built (the start-up writes, such as the signing key, are spared).
        from tenancy.adapters.local.fault_hooks import install_fault_hooks

        install_fault_hooks(rates, database, smtp)
    return services


def _webhook_publisher(settings: Settings) -> EventPublisher:
    """Standard Webhooks to TENANCY_WEBHOOK_URL, or no one (the config refuses a URL without its secret)."""
    if settings.webhook_url and settings.webhook_secret is not None:
        return WebhookPublisher(
            settings.webhook_url,
            settings.webhook_secret.get_secret_value(),
            timeout_seconds=settings.webhook_timeout_seconds,
        )
    return NoSubscriberPublisher()


def _required_aws_settings(settings: Settings) -> tuple[str, str, str, str]:
    """queue_url, dlq_url, user_pool_id, user_pool_client_id: what `tenancy aws bootstrap` prints
    and the AWS backend cannot start without."""
    names = ("queue_url", "dlq_url", "user_pool_id", "user_pool_client_id")
    values = [getattr(settings, name) or "" for name in names]
    missing = [f"TENANCY_{name.upper()}" for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise ConfigurationError(
            f"TENANCY_BACKEND=aws needs {', '.join(missing)}: run `tenancy aws bootstrap` and export what it prints"
        )
    return values[0], values[1], values[2], values[3]


def _build_aws(settings: Settings, clock: Clock) -> Services:
    """DynamoDB, SQS, Cognito, SES and CloudWatch Logs through one boto3 session. Endpoints
    come from boto3's own `AWS_ENDPOINT_URL` handling, so the same wiring runs against moto."""
    queue_url, dlq_url, user_pool_id, client_id = _required_aws_settings(settings)
    # Imported here so that the embedded backend never pays for importing boto3.
    import boto3
    from botocore.config import Config

    from tenancy.adapters.aws.clients import LazyClients
    from tenancy.adapters.aws.cognito import CognitoIdentityProvider
    from tenancy.adapters.aws.dynamodb import (
        DynamoJournal,
        DynamoLedger,
        DynamoRepairTrail,
        DynamoTenantStore,
        DynamoUserStore,
    )
    from tenancy.adapters.aws.eventbridge import EventBridgePublisher
    from tenancy.adapters.aws.findings_index import DynamoFindingsIndex
    from tenancy.adapters.aws.lifecycle import DynamoLifecycleStore
    from tenancy.adapters.aws.logs import CloudWatchLogSource
    from tenancy.adapters.aws.ratelimit import DynamoRateLimiter
    from tenancy.adapters.aws.ses import SesMailer
    from tenancy.adapters.aws.sessions import DynamoSessionStore
    from tenancy.adapters.aws.sqs import SqsJobQueue
    from tenancy.adapters.aws.subscriptions import DynamoSubscriptionStore
    from tenancy.adapters.aws.team import DynamoTeamStore
    from tenancy.adapters.aws.usage import DynamoServiceKeyStore, DynamoUsageStore

    session = boto3.Session(region_name=settings.aws_region)
    rates = settings.fault_plan.rates()
    if rates:
        # TEST-ONLY (TENANCY_FAULTS' `rate:` rules): registered before any client is built, since
        # a client copies the session's event handlers when it is made.
        from tenancy.adapters.aws.fault_hooks import install_fault_hooks

        install_fault_hooks(rates, session)
    # botocore's defaults (60 s timeouts, legacy retries) outlast the provisioning function's 30 s.
    config = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3})
    clients = LazyClients(session, config)
    secret_source: SecretSource | None = None
    if settings.secrets_in_ssm:
        settings, secret_source = _secrets_from_ssm(settings, clients.client("ssm"), clock)
    dynamodb = clients.client("dynamodb")
    queue = SqsJobQueue(clients.client("sqs"), queue_url, dlq_url, clock=clock)
    # Lambda writes everything a function logs to the function's group. What the embedded
    # backend calls "app" (login, the CLI, adapters) runs inside the provisioning function on
    # AWS (the saga signs users up and mails them), so that is where it is searched.
    log_groups = {
        LogComponent.ITN.value: settings.log_group("itn-handler"),
        LogComponent.PROVISIONING.value: settings.log_group("provisioning"),
        LogComponent.APP.value: settings.log_group("provisioning"),
    }
    return Services(
        settings=settings,
        clock=clock,
        plans=_catalogue(settings),
        tenants=DynamoTenantStore(dynamodb, settings.tenants_table),
        users=DynamoUserStore(dynamodb, settings.users_table),
        journal=DynamoJournal(dynamodb, settings.provisioning_table),
        ledger=DynamoLedger(dynamodb, settings.payments_table, settings.provisioning_table, queue),
        queue=queue,
        identity=CognitoIdentityProvider(
            clients.client("cognito-idp"),
            user_pool_id,
            client_id,
            jwks_url=settings.effective_cognito_jwks_url,
        ),
        mailer=SesMailer(
            clients.client("ses"),
            dynamodb,
            settings.mail_log_table,
            settings.email_from,
            clock=clock,
            keep_secrets=settings.mail_log_keeps_secrets,
        ),
        confirmer=HttpPaymentConfirmer(settings.effective_validate_url, settings.payfast_validate_timeout_seconds),
        trail=DynamoRepairTrail(dynamodb, settings.repairs_table),
        session_store=DynamoSessionStore(dynamodb, settings.sessions_table),
        findings_index=DynamoFindingsIndex(dynamodb, settings.findings_table),
        subscriptions=DynamoSubscriptionStore(dynamodb, settings.subscriptions_table),
        lifecycle=DynamoLifecycleStore(
            dynamodb,
            lifecycle_table=settings.lifecycle_table,
            tenants_table=settings.tenants_table,
            subscriptions_table=settings.subscriptions_table,
        ),
        usage_store=DynamoUsageStore(
            dynamodb, tenants_table=settings.tenants_table, answers_table=settings.usage_answers_table
        ),
        service_key_store=DynamoServiceKeyStore(dynamodb, settings.service_keys_table),
        team_store=DynamoTeamStore(
            dynamodb,
            invitations_table=settings.invitations_table,
            tenants_table=settings.tenants_table,
            users_table=settings.users_table,
        ),
        events=EventBridgePublisher(clients.client("events"), settings.effective_event_bus_name),
        log_source=CloudWatchLogSource(clients.client("logs"), log_groups),
        rate_limiter=DynamoRateLimiter(dynamodb, settings.rate_limits_table, clock=clock),
        secret_source=secret_source,
    )


def _secrets_from_ssm(settings: Settings, ssm: SSMClient, clock: Clock) -> tuple[Settings, SecretSource]:
    """The cold start's read of the secrets under TENANCY_SECRETS_PATH: the settings with them in
    (checked as the settings check their own), and the source that keeps them fresh. Refuses a
    missing parameter, a secret also given as a plain variable, and live mode on a placeholder."""
    from tenancy.adapters.aws.secrets import SsmSecrets

    path = settings.secrets_path or ""
    given = sorted(name.variable for name in SecretName if name.setting in settings.model_fields_set)
    if given:
        raise ConfigurationError(
            f"{', '.join(given)} must not be set with TENANCY_SECRETS_PATH: secrets are read from SSM"
            f" Parameter Store under {path} only"
        )
    source = SsmSecrets(
        ssm,
        path,
        clock=clock,
        max_age=timedelta(seconds=settings.secrets_max_age_seconds),
        fallback=SettingsSecrets(settings),
    )
    source.load()
    if settings.payfast_mode is PayfastMode.LIVE:
        waiting = [parameter_name(path, name) for name in LIVE_REQUIRED if source.is_placeholder(name)]
        if waiting:
            raise ConfigurationError(
                f"live mode refuses to start while {', '.join(waiting)} still hold{'s' if len(waiting) == 1 else ''}"
                f" the placeholder {PLACEHOLDER!r}: set the real values with"
                " `aws ssm put-parameter --type SecureString --overwrite`"
            )
    values = {name.setting: source.get(name) for name in SecretName}
    try:
        # Built anew so that every validator of the settings judges the values read.
        merged = Settings(**{**settings.model_dump(), **values})
    except ValidationError as error:
        # Only the parameter and the validator's words: pydantic's own text would quote the secret.
        by_setting = {name.setting: parameter_name(path, name) for name in SecretName}
        problems = "; ".join(
            f"{by_setting.get(str(item['loc'][0]) if item['loc'] else '', 'settings')}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
        raise ConfigurationError(f"the secrets under {path} cannot work: {problems}") from None
    problem = merged.secrets_problem()
    if problem is not None:
        raise ConfigurationError(f"{problem} (the secrets are read from SSM under {path})")
    return merged, source
