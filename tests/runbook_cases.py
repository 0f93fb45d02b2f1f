"""Purchases broken or made by hand the way RB-001 describes, for the runbook's tests on either
backend (importable as `runbook_cases`: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from tenancy.advice import next_action
from tenancy.bootstrap import Services
from tenancy.domain.model import Billing, Tenant, TenantStatus, Usage, UserRecord, UserStatus
from tenancy.runbook.evidence import Selector

HAND_WRITTEN_AT = "2026-01-18T00:00:00Z"  # RB-001's own timestamps, as an operator pastes them
OPERATOR_PASSWORD = "Operator-Passw0rd!"


def hand_written_tenant(services: Services, email: str, tenant_id: str, transaction_id: str) -> str:
    """RB-001 4.2's admin-create-user and users record, and 4.3's tenant item and link, written
    with no payment, job or welcome email behind them. Returns the identity user's sub."""
    user = services.identity.create_user(
        email,
        {"email": email, "email_verified": "true", "custom:tenant_id": tenant_id, "custom:roles": "tenant_admin"},
        "TempPass123!",
    )
    services.tenants.put(
        Tenant(
            tenant_id=tenant_id,
            owner_user_id=user.sub,
            name="User Tenant",
            plan="professional",
            status=TenantStatus.ACTIVE,
            limits=services.plans.get("professional").limits,
            usage=Usage(),
            storage_prefix=f"tenants/{tenant_id}",
            billing=Billing(transaction_id=transaction_id, invoice_number="INV-123456"),
            created_at=HAND_WRITTEN_AT,
            updated_at=HAND_WRITTEN_AT,
        )
    )
    services.users.put(
        UserRecord(
            user_id=f"user_{tenant_id.removeprefix('ten_').lower()}",
            tenant_id=tenant_id,
            email=email,
            role="tenant_admin",
            status=UserStatus.ACTIVE,
            created_at=HAND_WRITTEN_AT,
        )
    )
    return user.sub


def operator_account(services: Services, email: str) -> None:
    """An operations-console operator (`tenancy ops add-operator`) with a password of their own."""
    services.operators.add_operator(email)
    services.identity.set_password(email, OPERATOR_PASSWORD, permanent=True)


def texts_for_people(services: Services, selector: Selector) -> list[str]:
    """Every line the runbook writes for people about a purchase: the diagnosis, the repair plan
    and the verify details."""
    runbook = services.runbook
    diagnosis = runbook.diagnose(selector)
    plan = runbook.plan(selector)
    report = runbook.verify(selector)
    return [
        diagnosis.summary,
        next_action(diagnosis),
        *diagnosis.evidence_lines,
        *plan.actions,
        *(f"{check.name}: {check.detail}" for check in report.checks),
    ]
