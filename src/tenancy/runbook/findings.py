"""The findings `diagnose` names: one per failure scenario of RB-001, with where to escalate."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ESCALATION", "Diagnosis", "Finding"]


class Finding(StrEnum):
    HEALTHY = "healthy"
    PAYMENT_NOT_FOUND = "payment_not_found"
    PAYMENT_NOT_COMPLETE = "payment_not_complete"
    PROVISIONING_FAILED = "provisioning_failed"
    IDENTITY_USER_MISSING = "identity_user_missing"
    TENANT_RECORD_MISSING = "tenant_record_missing"
    WELCOME_EMAIL_MISSING = "welcome_email_missing"
    TENANT_ID_MISMATCH = "tenant_id_mismatch"
    IN_PROGRESS = "in_progress"
    NEEDS_REVIEW = "needs_review"
    NOT_A_TENANT = "not_a_tenant"

    @property
    def runbook_section(self) -> str | None:
        return _SECTIONS.get(self)

    @property
    def label(self) -> str:
        """What the finding means, in a few words for a page or a table."""
        return _LABELS[self]

    @property
    def repairable(self) -> bool:
        return self in _REPAIRABLE


_SECTIONS = {
    Finding.HEALTHY: "5",
    Finding.PROVISIONING_FAILED: "4.1",
    Finding.IDENTITY_USER_MISSING: "4.2",
    Finding.TENANT_RECORD_MISSING: "4.3",
    Finding.WELCOME_EMAIL_MISSING: "4.4",
    Finding.NEEDS_REVIEW: "6",
}
_LABELS = {
    Finding.HEALTHY: "provisioned; the owner can sign in",
    Finding.PAYMENT_NOT_FOUND: "no payment, job, tenant or account found",
    Finding.PAYMENT_NOT_COMPLETE: "the payment is not complete or was rejected",
    Finding.PROVISIONING_FAILED: "paid, but no tenant",
    Finding.IDENTITY_USER_MISSING: "the tenant has no identity user or users record",
    Finding.TENANT_RECORD_MISSING: "the identity user has no tenant record",
    Finding.WELCOME_EMAIL_MISSING: "the owner has no usable welcome email",
    Finding.TENANT_ID_MISMATCH: "the stores disagree about the tenant",
    Finding.IN_PROGRESS: "provisioning is still running",
    Finding.NEEDS_REVIEW: "stopped for a human decision",
    # An operator runs the console and owns no tenant: nothing about it is a provisioning failure.
    Finding.NOT_A_TENANT: "an operator account, not a tenant",
}
# NOT_A_TENANT is never repairable: every repair would turn the operator into a tenant's owner.
_REPAIRABLE = {
    Finding.PROVISIONING_FAILED,
    Finding.IDENTITY_USER_MISSING,
    Finding.TENANT_RECORD_MISSING,
    Finding.WELCOME_EMAIL_MISSING,
    Finding.TENANT_ID_MISMATCH,
}

# RB-001 section 6.
ESCALATION = {
    "engineering": "Engineering Lead (Slack #platform-alerts)",
    "finance": "Finance Team (finance@company.com)",
    "security": "Security Team (security@company.com)",
    "on_call": "On-call Manager (PagerDuty)",
}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    finding: Finding
    summary: str
    evidence: tuple[str, ...]
    next_action: str
    escalate_to: str | None = None
    transaction_id: str | None = None
    tenant_id: str | None = None
    email: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.finding is Finding.HEALTHY

    def as_document(self) -> dict[str, Any]:
        return {
            "finding": self.finding.value,
            "runbook_section": self.finding.runbook_section,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "next_action": self.next_action,
            "escalate_to": self.escalate_to,
            "transaction_id": self.transaction_id,
            "tenant_id": self.tenant_id,
            "email": self.email,
        }
