"""`verify`: RB-001 section 5 as checks that each pass or fail, with a real sign-in when given a
password, and the welcome email of RB-001 4.4, so that a purchase `diagnose` finds broken never
verifies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tenancy.accounts.login import AccountService
from tenancy.domain.model import AuthChallenge
from tenancy.errors import AuthenticationError
from tenancy.ports import IdentityProvider
from tenancy.runbook.evidence import CaseFile, Member, shown
from tenancy.runbook.findings import Finding
from tenancy.runbook.rules import DEFAULT_PASSWORD_TTL, is_operator_account, welcome_of

__all__ = ["TENANT_ACCOUNT_CHECK", "WELCOME_CHECK", "Check", "VerifyReport", "member_check_name", "verify"]

WELCOME_CHECK = "welcome email sent to the owner (RB-001 4.4)"
TENANT_ACCOUNT_CHECK = "the account is a tenant's"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool | None  # None: skipped, with the reason in `detail`
    detail: str

    def as_document(self) -> dict[str, object]:
        status = "skip" if self.passed is None else "pass" if self.passed else "fail"
        return {"check": self.name, "status": status, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed is not False for check in self.checks)

    def as_document(self) -> dict[str, object]:
        return {"passed": self.passed, "checks": [check.as_document() for check in self.checks]}


def verify(
    case: CaseFile,
    *,
    accounts: AccountService,
    identity: IdentityProvider,
    now: datetime,
    password_ttl: timedelta = DEFAULT_PASSWORD_TTL,
    password: str | None = None,
) -> VerifyReport:
    tenant, user = case.tenant, case.identity_user
    tenant_id = tenant.tenant_id if tenant else case.tenant_id
    no_user = _no_user(case)
    checks: list[Check] = []
    if user is not None and is_operator_account(user):
        # Only for an operator's account, which no other check would explain: it is no tenant's at all.
        checks.append(Check(TENANT_ACCOUNT_CHECK, False, Finding.NOT_A_TENANT.label))
    checks += [
        Check(
            "tenant record exists and is active",
            # A cancelling tenant keeps full access until its paid-through date.
            tenant is not None and tenant.status.has_access,
            f"{tenant.tenant_id} is {tenant.status.value}" if tenant else f"no tenant record {tenant_id or ''}".strip(),
        ),
        Check("identity user exists", user is not None, user.username if user else no_user),
        Check(
            "identity user is enabled",
            user is not None and user.enabled,
            ("enabled" if user.enabled else "disabled") + f", {user.status.value}" if user else no_user,
        ),
        Check(
            "custom:tenant_id matches the tenant",
            user is not None and tenant is not None and user.tenant_id == tenant.tenant_id,
            f"custom:tenant_id={shown(user.tenant_id)}, tenant {shown(tenant_id)}" if user else no_user,
        ),
        Check(
            "users record matches",
            tenant is not None and any(record.tenant_id == tenant.tenant_id for record in case.users),
            ", ".join(f"{record.user_id} -> {record.tenant_id}" for record in case.users) or "no users record",
        ),
        _owner_check(case),
    ]
    if user is None:
        checks.append(Check(WELCOME_CHECK, False, no_user))
    else:
        welcome = welcome_of(user, case.welcome_emails, now, password_ttl)
        checks.append(Check(WELCOME_CHECK, welcome.given, welcome.detail))
    # Every member besides the owner (issue 17), each a check of its own: none for a tenant of one.
    checks += [_member_check(member) for member in case.members]
    if password is not None:
        checks += _sign_in(case, accounts, identity, password, tenant_id)
    return VerifyReport(tuple(checks))


def _owner_check(case: CaseFile) -> Check:
    tenant, user = case.tenant, case.identity_user
    name = "tenant owner is the identity user"
    if case.ownership_handed_on and case.owner_record is not None:
        return Check(name, True, f"ownership handed on to tenant admin {case.owner_record.email}")
    return Check(
        name,
        tenant is not None and user is not None and tenant.owner_user_id == user.sub,
        f"owner {shown(tenant.owner_user_id if tenant else None)}, sub {shown(user.sub if user else None)}",
    )


def member_check_name(email: str) -> str:
    return f"member {email} is an enabled identity user of the tenant"


def _member_check(member: Member) -> Check:
    """One check per member: the identity user enabled, naming the tenant its users record names
    (and the record there at all)."""
    record, user = member.record, member.identity_user
    name = member_check_name(member.email)
    if user is None:
        return Check(name, False, f"{member.role}, no identity user")
    enabled = "enabled" if user.enabled else "disabled"
    if record is None:
        detail = f"{member.role}, {enabled}, custom:tenant_id={shown(user.tenant_id)}, no users record"
        return Check(name, False, detail)
    return Check(
        name,
        user.enabled and user.tenant_id == record.tenant_id,
        f"{record.role}, {enabled}, custom:tenant_id={shown(user.tenant_id)}, users record -> {record.tenant_id}",
    )


def _no_user(case: CaseFile) -> str:
    if case.email:
        return f"no user {case.email}"
    if case.tenant is not None and case.tenant.owner_user_id:
        return f"no user with the tenant owner's subject {case.tenant.owner_user_id}"
    return "no user (no email or owner known)"


def _sign_in(
    case: CaseFile, accounts: AccountService, identity: IdentityProvider, password: str, tenant_id: str | None
) -> list[Check]:
    try:
        result = accounts.login(case.email or "", password)
    except AuthenticationError as error:
        return [Check("user can authenticate", False, error.reason)]
    if isinstance(result, AuthChallenge):
        return [
            Check("user can authenticate", True, "password accepted; a new password is required at first sign-in"),
            Check("token claims carry the tenant id", None, "no token until the first sign-in sets a password"),
        ]
    claims = identity.verify_id_token(result.id_token)
    carried = claims.get("custom:tenant_id")
    return [
        Check("user can authenticate", True, "signed in"),
        Check("token claims carry the tenant id", carried == tenant_id, f"custom:tenant_id={shown(carried)}"),
    ]
