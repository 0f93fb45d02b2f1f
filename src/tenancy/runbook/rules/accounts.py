"""The rule about the account asked about: an operator's is no tenant's."""

from __future__ import annotations

from tenancy.accounts.roles import OPERATOR_ROLE, TENANT_ADMIN_ROLE, roles_of
from tenancy.domain.model import IdentityUser
from tenancy.runbook.evidence import CaseFile
from tenancy.runbook.findings import ESCALATION, Finding, NextStep
from tenancy.runbook.rules.base import Context, Found, rule

__all__ = ["is_operator_account", "not_a_tenant"]


def is_operator_account(user: IdentityUser) -> bool:
    """An operations-console operator's account: it runs the console and owns no tenant."""
    roles = roles_of(user.attributes)
    return OPERATOR_ROLE in roles and TENANT_ADMIN_ROLE not in roles


@rule("ACC001", Finding.NOT_A_TENANT)
def not_a_tenant(case: CaseFile, context: Context) -> Found | None:
    """The identity user is an operator's account, which runs the console and owns no tenant. It
    comes before every rule about tenants: each of their repairs would make the operator a
    tenant's owner. A purchase made with an operator's email cannot be provisioned to it, and goes
    to Finance (refund it, or buy again with another email)."""
    user = case.identity_user
    if user is None or not is_operator_account(user):
        return None
    what = f"{user.username} is {Finding.NOT_A_TENANT.label}"
    purchase = case.transaction_id if case.completed_payment or case.job or case.tenant else None
    if purchase is None:
        return Found(
            f"{what}: it runs the operations console, owns no tenant, and has nothing to provision.",
            NextStep("Nothing to repair.", operator_accounts=True),
        )
    return Found(
        f"{what}: purchase {purchase} by this email cannot be provisioned to it.",
        NextStep("Decide with the customer: refund the payment, or buy again with an email that is not an operator's."),
        ESCALATION["finance"],
    )
