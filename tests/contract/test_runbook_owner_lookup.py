"""The runbook finds the owner of a tenant written by hand (RB-001 4.3: no payment, no job) from
the tenant record itself, the same on the embedded backend and on AWS (DynamoDB and Cognito on
moto): `verify --tenant-id` and `diagnose --tenant-id` answer as `--email` does."""

from __future__ import annotations

from tenancy.bootstrap import Services
from tenancy.runbook.evidence import Selector
from tenancy.runbook.findings import Finding
from tenancy.runbook.verify import WELCOME_CHECK

from runbook_cases import hand_written_tenant


def test_a_hand_written_tenant_verifies_by_tenant_id_as_by_email(services: Services) -> None:
    sub = hand_written_tenant(services, "hand@example.com", "ten_NEWID", "TXN-123456")
    by_tenant, by_email = Selector(tenant_id="ten_NEWID"), Selector(email="hand@example.com")

    report = services.runbook.verify(by_tenant)
    diagnosis = services.runbook.diagnose(by_tenant)

    assert report == services.runbook.verify(by_email)
    checks = {check.name: (check.passed, check.detail) for check in report.checks}
    assert checks["identity user exists"] == (True, "hand@example.com")
    assert checks["custom:tenant_id matches the tenant"] == (True, "custom:tenant_id=ten_NEWID, tenant ten_NEWID")
    assert checks["tenant owner is the identity user"] == (True, f"owner {sub}, sub {sub}")
    assert checks["users record matches"] == (True, "user_newid -> ten_NEWID")
    assert checks[WELCOME_CHECK] == (False, "none was sent")  # written by hand: the one thing left
    assert (diagnosis.finding, diagnosis.email) == (Finding.WELCOME_EMAIL_MISSING, "hand@example.com")

    result = services.runbook.repair(by_tenant, operator="ops-test")

    assert (result.outcome, result.after.finding, result.verification.passed) == ("repaired", Finding.HEALTHY, True)
    assert services.runbook.verify(by_tenant).passed


def test_a_tenant_whose_owner_subject_names_nobody_says_so(services: Services) -> None:
    hand_written_tenant(services, "gone@example.com", "ten_GONE", "TXN-GONE")
    services.identity.delete_user("gone@example.com")

    diagnosis = services.runbook.diagnose(Selector(tenant_id="ten_GONE"))
    checks = {check.name: check for check in services.runbook.verify(Selector(tenant_id="ten_GONE")).checks}

    assert diagnosis.finding is Finding.IDENTITY_USER_MISSING
    lines = diagnosis.evidence_lines
    assert any(line.startswith("identity: no user with the tenant owner's subject ") for line in lines)
    assert checks["identity user exists"].passed is False
    assert checks["identity user exists"].detail.startswith("no user with the tenant owner's subject ")
