"""RB-001's findings as rules: each rule on a case built in memory (one healthy purchase, broken
the way the rule is about), and the registry: every finding named by exactly one rule, in the
order RB-001 needs. Adding a finding is adding its rule to runbook.rules and its test here."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenancy.advice import next_action
from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import tenant_id_for
from tenancy.domain.model import (
    Billing,
    IdentityUser,
    IdentityUserStatus,
    JobStatus,
    OutboxMessage,
    PaymentRecord,
    PaymentVerdict,
    ProvisioningJob,
    QueuedMessage,
    Step,
    Tenant,
    TenantStatus,
    Usage,
    UserRecord,
    UserStatus,
)
from tenancy.domain.plans import Limits
from tenancy.provisioning.welcome import WELCOME_SUBJECT
from tenancy.runbook.diagnose import classify
from tenancy.runbook.evidence import CaseFile, Selector
from tenancy.runbook.findings import ESCALATION, Diagnosis, Finding, Store
from tenancy.runbook.rules import RULES, Context, Rule
from tenancy.runbook.rules.accounts import not_a_tenant
from tenancy.runbook.rules.jobs import in_progress, needs_review
from tenancy.runbook.rules.payment import payment_not_complete, payment_not_found
from tenancy.runbook.rules.records import (
    identity_user_missing,
    provisioning_failed,
    tenant_id_mismatch,
    tenant_record_missing,
)
from tenancy.runbook.rules.subscriptions import renewal_unapplied
from tenancy.runbook.rules.usage import usage_over_limit
from tenancy.runbook.rules.welcome import healthy, welcome_email_missing

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MINUTES_AGO = format_timestamp(NOW - timedelta(minutes=5))
TRANSACTION = "TXN-RULES-1"
TENANT = tenant_id_for(TRANSACTION)
EMAIL = "owner@example.com"
SUB = "sub-owner"


# --- One healthy purchase, in memory -----------------------------------------------------------


def payment(**changes: Any) -> PaymentRecord:
    return dataclasses.replace(
        PaymentRecord(
            received_at=MINUTES_AGO,
            source_ip="197.97.145.145",
            fields=(),
            verdict=PaymentVerdict.ACCEPTED,
            pf_payment_id="1234567",
            transaction_id=TRANSACTION,
            payment_status="COMPLETE",
            email=EMAIL,
            plan="professional",
            amount_gross="299.00",
        ),
        **changes,
    )


def job(**changes: Any) -> ProvisioningJob:
    return dataclasses.replace(
        ProvisioningJob(
            transaction_id=TRANSACTION,
            tenant_id=TENANT,
            invoice_number="INV-1",
            email=EMAIL,
            plan="professional",
            tenant_name="Owner",
            status=JobStatus.SUCCEEDED,
            created_at=MINUTES_AGO,
            updated_at=MINUTES_AGO,
            completed_steps=tuple(Step),
            attempts=1,
            owner_user_id=SUB,
        ),
        **changes,
    )


def tenant(**changes: Any) -> Tenant:
    return dataclasses.replace(
        Tenant(
            tenant_id=TENANT,
            owner_user_id=SUB,
            name="Owner",
            plan="professional",
            status=TenantStatus.ACTIVE,
            limits=Limits(5, 100, 500, True),
            usage=Usage(),
            storage_prefix=f"tenants/{TENANT}",
            billing=Billing(TRANSACTION, "INV-1"),
            created_at=MINUTES_AGO,
            updated_at=MINUTES_AGO,
        ),
        **changes,
    )


def identity_user(*, roles: str = "tenant_admin", tenant_id: str = TENANT, **changes: Any) -> IdentityUser:
    attributes = {"email": EMAIL, "custom:tenant_id": tenant_id, "custom:roles": roles}
    return dataclasses.replace(
        IdentityUser(EMAIL, SUB, IdentityUserStatus.FORCE_CHANGE_PASSWORD, True, attributes, NOW), **changes
    )


def users_record(**changes: Any) -> UserRecord:
    return dataclasses.replace(
        UserRecord("user_1", TENANT, EMAIL, "tenant_admin", UserStatus.ACTIVE, MINUTES_AGO), **changes
    )


def welcome(**changes: Any) -> OutboxMessage:
    tags = {"transaction_id": TRANSACTION, "identity_sub": SUB}
    return dataclasses.replace(
        OutboxMessage(
            "mail-1", EMAIL, "noreply@example.com", WELCOME_SUBJECT, "", "delivered", MINUTES_AGO, None, tags
        ),
        **changes,
    )


def message(*, dead_lettered: bool = False) -> QueuedMessage:
    queue = "provisioning-dlq" if dead_lettered else "provisioning"
    return QueuedMessage("msg-1", queue, TRANSACTION, 1, MINUTES_AGO, MINUTES_AGO)


def healthy_case(**changes: Any) -> CaseFile:
    """Paid, provisioned, linked and welcomed: the case every rule test breaks one way."""
    case = CaseFile(
        selector=Selector(transaction_id=TRANSACTION),
        transaction_id=TRANSACTION,
        email=EMAIL,
        tenant_id=TENANT,
        payments=(payment(),),
        job=job(),
        tenant=tenant(),
        users=(users_record(),),
        identity_user=identity_user(),
        emails=(welcome(),),
    )
    return dataclasses.replace(case, **changes)


def diagnosed(case: CaseFile, now: datetime = NOW) -> Diagnosis:
    return classify(case, now)


def found_by(rule: Rule, case: CaseFile) -> bool:
    return rule(case, Context(NOW)) is not None


# --- Each rule ---------------------------------------------------------------------------------


def test_healthy_names_a_paid_provisioned_linked_and_welcomed_purchase() -> None:
    diagnosis = diagnosed(healthy_case())

    assert (diagnosis.finding, diagnosis.rule) == (Finding.HEALTHY, healthy.code)
    assert diagnosis.summary == f"Tenant {TENANT} is active; {EMAIL} can sign in."
    assert next_action(diagnosis) == "Nothing to do."
    assert not [rule.code for rule in RULES[:-1] if found_by(rule, healthy_case())]  # no other rule fires


def test_healthy_names_the_stale_dead_letters_and_the_mail_only_the_outbox_kept() -> None:
    case = healthy_case(messages=(message(dead_lettered=True),), emails=(welcome(status="stored"),))

    diagnosis = diagnosed(case)

    assert diagnosis.healthy
    assert (diagnosis.next_step.stale_dead_letters, diagnosis.next_step.mail_kept_for) == (("msg-1",), EMAIL)
    assert "`tenancy dlq remove msg-1`" in next_action(diagnosis)
    assert f"`tenancy mail list --to {EMAIL}`" in next_action(diagnosis)


def test_payment_not_found_when_no_store_knows_the_purchase() -> None:
    case = CaseFile(Selector(email="nobody@example.com"), None, "nobody@example.com", None)

    diagnosis = diagnosed(case)

    assert (diagnosis.finding, diagnosis.rule) == (Finding.PAYMENT_NOT_FOUND, payment_not_found.code)
    assert diagnosis.summary == "No payment, job, tenant or identity user for email nobody@example.com."
    assert "PayFast receipt" in next_action(diagnosis)


@pytest.mark.parametrize(
    ("itn", "escalate_to"),
    [
        (payment(payment_status="PENDING"), None),
        (payment(verdict=PaymentVerdict.REJECTED, reasons=("signature mismatch",)), ESCALATION["security"]),
        (
            payment(verdict=PaymentVerdict.REJECTED, reasons=("amount 1.00 is not the plan's price",)),
            ESCALATION["finance"],
        ),
    ],
)
def test_payment_not_complete_escalates_a_rejection_by_the_check_that_refused_it(
    itn: PaymentRecord, escalate_to: str | None
) -> None:
    case = healthy_case(payments=(itn,), job=None, tenant=None, users=(), identity_user=None, emails=())

    diagnosis = diagnosed(case)

    assert (diagnosis.finding, diagnosis.rule) == (Finding.PAYMENT_NOT_COMPLETE, payment_not_complete.code)
    assert diagnosis.escalate_to == escalate_to


def test_an_operator_s_account_is_not_a_tenant_and_is_never_repaired() -> None:
    alone = CaseFile(Selector(email=EMAIL), None, EMAIL, None, identity_user=identity_user(roles="operator"))
    bought = healthy_case(identity_user=identity_user(roles="operator"))

    diagnosis, purchase = diagnosed(alone), diagnosed(bought)

    assert (diagnosis.finding, diagnosis.rule) == (Finding.NOT_A_TENANT, not_a_tenant.code)
    assert diagnosis.next_step.operator_accounts
    assert "`tenancy ops list-operators`" in next_action(diagnosis)
    assert (purchase.finding, purchase.escalate_to) == (Finding.NOT_A_TENANT, ESCALATION["finance"])
    assert not Finding.NOT_A_TENANT.repairable


def test_in_progress_while_a_worker_has_the_job_and_lost_once_it_stalled() -> None:
    running = job(status=JobStatus.RUNNING, completed_steps=(Step.TENANT_RECORD,), updated_at=MINUTES_AGO)
    case = healthy_case(job=running, identity_user=None, users=(), emails=())

    moving = diagnosed(case)
    stalled = diagnosed(case, NOW + timedelta(hours=1))

    assert (moving.finding, moving.rule) == (Finding.IN_PROGRESS, in_progress.code)
    assert moving.summary == "Provisioning is running (attempt 1)."
    assert stalled.finding is Finding.IDENTITY_USER_MISSING  # lost: the rules after it judge it


def test_needs_review_for_a_second_purchase_and_for_a_suspended_tenant() -> None:
    second = healthy_case(job=job(status=JobStatus.NEEDS_REVIEW, review_reason="owner has a tenant"), tenant=None)
    suspended = healthy_case(tenant=tenant(status=TenantStatus.SUSPENDED))

    for case in (second, suspended):
        diagnosis = diagnosed(case)
        assert (diagnosis.finding, diagnosis.rule) == (Finding.NEEDS_REVIEW, needs_review.code)
        assert diagnosis.escalate_to == ESCALATION["finance"]


def test_tenant_record_missing_is_4_3() -> None:
    diagnosis = diagnosed(healthy_case(tenant=None))

    assert (diagnosis.finding, diagnosis.rule) == (Finding.TENANT_RECORD_MISSING, tenant_record_missing.code)
    assert diagnosis.summary == f"Identity user {EMAIL} exists but tenant record {TENANT} is missing."
    expected = f"tenancy repair --transaction-id {TRANSACTION} --yes"
    assert (
        next_action(diagnosis)
        == f"{expected}  (creates the tenant record from the payment and links the identity user)"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"identity_user": identity_user(tenant_id="ten_elsewhere")},
        {"users": (users_record(tenant_id="ten_elsewhere"),)},
        {"tenant": tenant(owner_user_id="sub-someone-else")},
    ],
    ids=["custom:tenant_id", "users record", "owner"],
)
def test_tenant_id_mismatch_when_the_stores_disagree(changes: dict[str, Any]) -> None:
    diagnosis = diagnosed(healthy_case(**changes))

    assert (diagnosis.finding, diagnosis.rule) == (Finding.TENANT_ID_MISMATCH, tenant_id_mismatch.code)
    assert next_action(diagnosis).endswith(f"(points the identity user, users record and owner at tenant {TENANT})")


@pytest.mark.parametrize(
    ("changes", "does"),
    [
        ({"identity_user": None}, "creates the identity user and users record, sends a new temporary password"),
        ({"users": ()}, "creates the users record and links the owner"),
        ({"tenant": tenant(owner_user_id="")}, "creates the users record and links the owner"),
    ],
    ids=["identity user", "users record", "owner link"],
)
def test_identity_user_missing_is_4_2(changes: dict[str, Any], does: str) -> None:
    diagnosis = diagnosed(healthy_case(**changes))

    assert (diagnosis.finding, diagnosis.rule) == (Finding.IDENTITY_USER_MISSING, identity_user_missing.code)
    assert diagnosis.next_step.advice == does


def test_provisioning_failed_is_4_1_with_why() -> None:
    dead = job(status=JobStatus.DEAD_LETTERED, attempts=5, last_error="boom", completed_steps=())
    never = healthy_case(job=None, tenant=None, identity_user=None, users=(), emails=())
    parked = healthy_case(job=dead, tenant=None, identity_user=None, users=(), emails=())
    half_done = healthy_case(tenant=tenant(status=TenantStatus.PROVISIONING))

    summaries = [diagnosed(case).summary for case in (never, parked, half_done)]

    assert {diagnosed(case).rule for case in (never, parked, half_done)} == {provisioning_failed.code}
    assert summaries == [
        "Paid, but no tenant record: no provisioning job was ever created (never enqueued).",
        "Paid, but no tenant record: the job was dead-lettered after 5 attempts (boom).",
        f"Tenant {TENANT} is still 'provisioning': the job is succeeded (no error recorded).",
    ]


def test_welcome_email_missing_is_4_4_and_cites_the_mail_provider_s_counts() -> None:
    case = healthy_case(emails=())
    context = Context(NOW, mail_statistics=lambda: (("delivered", 3), ("failed", 1)))

    rule_found = welcome_email_missing(case, context)
    diagnosis = classify(case, NOW, mail_statistics=context.mail_statistics)

    assert rule_found is not None
    assert (diagnosis.finding, diagnosis.rule) == (Finding.WELCOME_EMAIL_MISSING, welcome_email_missing.code)
    assert diagnosis.summary.endswith("has no welcome email: none was sent.")
    [counts] = [item for item in diagnosis.evidence if "mail provider" in item.text]
    assert (counts.store, counts.fields) == (Store.MAIL, {"provider_counts": {"delivered": 3, "failed": 1}})
    assert counts.line == "mail: the mail provider, for all recipients: delivered=3 failed=1"


def test_usage_over_limit_names_each_metric_above_the_plan_with_its_numbers_and_repairs_nothing() -> None:
    # professional allows 5 sites, 100 generations and 500 MB: a downgrade left more sites and storage.
    over = tenant(usage=Usage(sites_count=7, generations_this_month=100, storage_used_mb=640))

    diagnosis = diagnosed(healthy_case(tenant=over), NOW + timedelta(hours=2))

    assert (diagnosis.finding, diagnosis.rule) == (Finding.USAGE_OVER_LIMIT, usage_over_limit.code)
    assert (
        diagnosis.summary
        == f"Tenant {TENANT} uses more than its plan professional allows: sites 7 of 5, storage_mb 640 of 500."
    )
    over_limit = [item for item in diagnosis.evidence if "metric" in item.fields]
    assert [(item.store, item.fields["metric"], item.fields["used"], item.fields["limit"]) for item in over_limit] == [
        (Store.TENANTS, "sites", 7, 5),
        (Store.TENANTS, "storage_mb", 640, 500),
    ]  # generations at exactly the limit is not over it
    # No failure: not repaired, not escalated even when open for hours, counted with the healthy.
    assert not diagnosis.finding.is_failure
    assert not diagnosis.repairable
    assert diagnosis.escalate_to is None
    advice = next_action(diagnosis)
    assert advice.startswith("Nothing to repair: ask the owner to bring the usage down")
    assert f"`tenancy usage show {TENANT}`" in advice
    assert f'`tenancy usage set {TENANT} METRIC N --reason "..." --yes`' in advice
    assert "tenancy repair" not in advice


@pytest.mark.parametrize(("count", "counted"), [(1, "1 subscription payment"), (2, "2 subscription payments")])
def test_renewal_unapplied_counts_the_payments_in_words(count: int, counted: str) -> None:
    # No subscription was recorded, so each accepted charge with PayFast's token is unapplied.
    charges = tuple(payment(pf_payment_id=f"pf-{n}", token="tok-1") for n in range(count))

    found = renewal_unapplied(healthy_case(payments=charges), Context(NOW))

    assert found is not None
    assert found.summary.startswith(f"{counted} of {TRANSACTION} accepted but not applied: ")
    assert "(s)" not in found.summary


def test_a_failure_open_for_more_than_an_hour_goes_to_the_on_call_manager() -> None:
    case = healthy_case(identity_user=None)

    assert diagnosed(case).escalate_to is None
    assert diagnosed(case, NOW + timedelta(hours=2)).escalate_to == ESCALATION["on_call"]


def test_evidence_is_one_structured_item_per_record_in_the_order_an_operator_checks_them() -> None:
    diagnosis = diagnosed(healthy_case())

    assert [item.store for item in diagnosis.evidence] == [
        Store.LEDGER,
        Store.JOURNAL,
        Store.TENANTS,
        Store.IDENTITY,
        Store.USERS,
        Store.MAIL,
    ]
    identity = diagnosis.evidence[3]
    assert identity.fields["tenant_id"] == TENANT
    assert identity.line == identity.store.value + ": " + identity.text  # type: ignore[union-attr]


# --- The registry ------------------------------------------------------------------------------


def test_every_finding_is_named_by_exactly_one_rule() -> None:
    assert Counter(rule.finding for rule in RULES) == Counter(set(Finding))


def test_every_rule_has_its_own_code_and_says_what_it_finds_and_why() -> None:
    assert len({rule.code for rule in RULES}) == len(RULES)
    assert len({rule.name for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.name == rule.finding.value, rule.name  # a rule is named after its finding
        assert len(rule.doc.split()) >= 20, f"{rule.code} {rule.name}: say what it finds and why"


def test_the_registry_is_in_rb001_s_order() -> None:
    assert [rule.finding for rule in RULES] == [
        Finding.PAYMENT_NOT_FOUND,  # nothing to look at without a payment
        Finding.UNKNOWN_SUBSCRIPTION,  # a subscription's ITN no checkout here started: Finance's
        Finding.PAYMENT_NOT_COMPLETE,
        Finding.NOT_A_TENANT,  # before every tenant rule: their repairs would make the operator an owner
        Finding.ACCESS_MISMATCH,  # people left by an interrupted deletion: before the missing-records rules
        Finding.TENANT_DELETED,  # a deleted tenant's missing people are no failure
        Finding.IN_PROGRESS,  # what a worker still has, it is about to do
        Finding.NEEDS_REVIEW,  # a person decides: no record is missing that should be there
        Finding.TENANT_RECORD_MISSING,  # 4.3
        Finding.TENANT_ID_MISMATCH,
        Finding.IDENTITY_USER_MISSING,  # 4.2
        Finding.PROVISIONING_FAILED,  # 4.1
        Finding.MEMBER_MISMATCH,  # a team member cannot sign in: after the owner's own records
        Finding.RENEWAL_UNAPPLIED,  # a subscription payment accepted, not applied
        Finding.SUBSCRIPTION_OUT_OF_SYNC,  # PayFast's own view disagrees with ours
        Finding.LIFECYCLE_OVERDUE,  # a move time made due, not applied
        Finding.EVENT_UNDELIVERED,  # a move's event or email never delivered
        Finding.TENANT_HELD,  # suspended or cancelled by its lifecycle: no failure
        Finding.WELCOME_EMAIL_MISSING,  # 4.4
        Finding.USAGE_OVER_LIMIT,  # above the plan's limits: no failure, so it hides none
        Finding.HEALTHY,  # section 5: whatever the others did not name
    ]


_OPERATOR = identity_user(roles="operator")
_RUNNING = job(status=JobStatus.RUNNING, completed_steps=())


@pytest.mark.parametrize(
    ("case", "first", "also"),
    [
        (
            healthy_case(job=None, tenant=None, identity_user=None, users=(), emails=(), payments=()),
            Finding.PAYMENT_NOT_FOUND,
            provisioning_failed,
        ),
        (
            healthy_case(payments=(payment(payment_status="PENDING"),), job=None, tenant=None),
            Finding.PAYMENT_NOT_COMPLETE,
            tenant_record_missing,
        ),
        (healthy_case(identity_user=_OPERATOR, tenant=None), Finding.NOT_A_TENANT, tenant_record_missing),
        (
            healthy_case(job=_RUNNING, tenant=None, identity_user=None, messages=(message(),)),
            Finding.IN_PROGRESS,
            provisioning_failed,
        ),
        (
            healthy_case(job=job(status=JobStatus.NEEDS_REVIEW), tenant=None, identity_user=None),
            Finding.NEEDS_REVIEW,
            provisioning_failed,
        ),
        (
            healthy_case(tenant=tenant(status=TenantStatus.PROVISIONING), identity_user=None),
            Finding.IDENTITY_USER_MISSING,
            provisioning_failed,
        ),
        (
            healthy_case(tenant=tenant(status=TenantStatus.PROVISIONING, owner_user_id="sub-other")),
            Finding.TENANT_ID_MISMATCH,
            provisioning_failed,
        ),
        (healthy_case(users=(), emails=()), Finding.IDENTITY_USER_MISSING, welcome_email_missing),
        (healthy_case(emails=()), Finding.WELCOME_EMAIL_MISSING, healthy),
        (
            healthy_case(emails=(), tenant=tenant(usage=Usage(sites_count=9))),
            Finding.WELCOME_EMAIL_MISSING,
            usage_over_limit,
        ),
        (
            healthy_case(identity_user=None, tenant=tenant(usage=Usage(sites_count=9))),
            Finding.IDENTITY_USER_MISSING,
            usage_over_limit,
        ),
    ],
    ids=lambda value: value.value if isinstance(value, Finding) else value.code if isinstance(value, Rule) else "",
)
def test_where_two_rules_find_something_rb001_s_order_decides(case: CaseFile, first: Finding, also: Rule) -> None:
    assert found_by(also, case), "the case must be one the later rule finds too"
    assert diagnosed(case).finding is first


def test_a_suspended_tenant_whose_stores_disagree_is_a_mismatch_before_a_review() -> None:
    # needs_review comes first, but a tenant's state is a deliberate one only when its stores agree.
    case = healthy_case(tenant=tenant(status=TenantStatus.SUSPENDED), identity_user=identity_user(tenant_id="ten_x"))

    assert not found_by(needs_review, case)
    assert diagnosed(case).finding is Finding.TENANT_ID_MISMATCH
