"""RB-001 as the product ships it: its numbered headings read as sections with anchors, its HTML
with those anchors as ids, and every finding (and alert) pointing at a section the document has."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from tenancy.runbook.alerts import RULES
from tenancy.runbook.findings import Finding
from tenancy.runbook.runbook_doc import (
    ALERT_SECTIONS,
    RunbookDocument,
    anchor_of,
    load_runbook,
    parse_runbook,
    runbook_page_path,
)

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE = REPOSITORY / "docs" / "runbooks" / "RB-001.md"

# A small runbook in the contract's shape: numbered headings, a changelog whose version headings
# look numbered (no sections), a bash block whose comments start with `#` (no headings), a table,
# and raw HTML that must not reach the page as HTML.
FIXTURE = """\
# RB-001: Tenant Provisioning Runbook

## Changelog

### 1.1 (2026-12-07), from 1.0

## 1. Purpose

Fix tenants. <script>alert(1)</script>

## 3. Identifying the Issue

### 3.2 Quick Diagnosis

```bash
# Check if tenant exists
## not a heading either
aws dynamodb get-item --table-name tenants --key "{\\"tenant_id\\": {\\"S\\": \\"$TENANT_ID\\"}}"
```

## 4. Resolution Procedures

### 4.2 Scenario: Cognito User Creation Failed

| Symptom | Likely Cause |
|---------|--------------|
| Account not found | no identity user |

### 4.10 Scenario: Team Member Cannot Sign In

## 6. Escalation
"""

# The table: the section each finding is resolved by.
EXPECTED_SECTIONS = {
    Finding.HEALTHY: "5",
    Finding.PROVISIONING_FAILED: "4.1",
    Finding.IDENTITY_USER_MISSING: "4.2",
    Finding.TENANT_RECORD_MISSING: "4.3",
    Finding.WELCOME_EMAIL_MISSING: "4.4",
    Finding.TENANT_ID_MISMATCH: "4.5",
    Finding.RENEWAL_UNAPPLIED: "4.7",
    Finding.SUBSCRIPTION_OUT_OF_SYNC: "4.7",
    Finding.UNKNOWN_SUBSCRIPTION: "4.7",
    Finding.TENANT_HELD: "4.8",
    Finding.TENANT_DELETED: "4.8",
    Finding.LIFECYCLE_OVERDUE: "4.8",
    Finding.ACCESS_MISMATCH: "4.8",
    Finding.EVENT_UNDELIVERED: "4.8",
    Finding.USAGE_OVER_LIMIT: "4.9",
    Finding.MEMBER_MISMATCH: "4.10",
    Finding.NEEDS_REVIEW: "6",
    Finding.PAYMENT_NOT_FOUND: "3.2",
    Finding.PAYMENT_NOT_COMPLETE: "3.2",
    Finding.IN_PROGRESS: "3.2",
    Finding.NOT_A_TENANT: None,
}


@pytest.fixture
def shipped() -> RunbookDocument:
    document = load_runbook()
    assert document is not None, "docs/runbooks/RB-001.md is missing: the package would ship no runbook"
    return document


def test_numbered_headings_are_sections_with_their_number_title_and_level() -> None:
    document = parse_runbook(FIXTURE)

    assert [(part.number, part.title, part.level) for part in document.sections] == [
        ("1", "Purpose", 2),
        ("3", "Identifying the Issue", 2),
        ("3.2", "Quick Diagnosis", 3),
        ("4", "Resolution Procedures", 2),
        ("4.2", "Scenario: Cognito User Creation Failed", 3),
        ("4.10", "Scenario: Team Member Cannot Sign In", 3),
        ("6", "Escalation", 2),
    ]
    assert document.title == "RB-001: Tenant Provisioning Runbook"
    assert document.section("4.2") is not None
    assert document.section("4.2").heading == "4.2 Scenario: Cognito User Creation Failed"  # type: ignore[union-attr]
    assert document.section("4.1") is None
    assert document.section(None) is None


def test_an_anchor_is_the_section_number_with_dots_as_dashes() -> None:
    assert [anchor_of(number) for number in ("4.2", "4.10", "5", "6.1")] == ["4-2", "4-10", "5", "6-1"]
    assert runbook_page_path("4.2") == "/ops/runbook#4-2"
    assert runbook_page_path(None) == "/ops/runbook"


def test_the_html_gives_each_heading_its_anchor_as_id_and_escapes_raw_html() -> None:
    page = parse_runbook(FIXTURE).html()

    ids = re.findall(r'<h[1-6] id="([^"]+)"', page)
    assert ids == [
        "rb-001-tenant-provisioning-runbook",
        "changelog",
        "1-1-2026-12-07-from-1-0",  # a version in the changelog, not a section 1.1
        "1",
        "3",
        "3-2",
        "4",
        "4-2",
        "4-10",
        "6",
    ]
    assert '<h3 id="4-2">4.2 Scenario: Cognito User Creation Failed</h3>' in page
    # The bash block's comments stay code, not headings.
    assert "# Check if tenant exists" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_tables_and_code_scroll_inside_a_box_a_keyboard_can_reach() -> None:
    page = parse_runbook(FIXTURE).html()

    # On a phone the page itself never scrolls sideways: wide content scrolls in its own box.
    label = "Table: 4.2 Scenario: Cognito User Creation Failed"
    assert f'<div class="table-scroll" role="region" aria-label="{label}" tabindex="0">\n<table>' in page
    assert '<pre tabindex="0"><code class="language-bash">' in page


def test_a_missing_document_loads_as_none(tmp_path: Path) -> None:
    assert load_runbook(tmp_path / "RB-001.md") is None


def test_a_stray_byte_in_the_document_does_not_stop_it_loading(tmp_path: Path) -> None:
    # Every console page links into the runbook: a bad byte must not take the console down.
    path = tmp_path / "RB-001.md"
    path.write_bytes(FIXTURE.encode() + b"\n## 7. Prevention \xff\n")

    document = load_runbook(path)

    assert document is not None
    assert document.section("7") is not None
    assert document.section("4.2") is not None


def test_each_finding_names_the_section_that_resolves_it() -> None:
    assert {finding: finding.runbook_section for finding in Finding} == EXPECTED_SECTIONS


def test_every_section_a_finding_or_an_alert_names_is_in_the_shipped_runbook(shipped: RunbookDocument) -> None:
    named = {finding.value: finding.runbook_section for finding in Finding if finding.runbook_section}
    named |= {f"alert {rule}": section for rule, section in ALERT_SECTIONS.items()}

    missing = {name: section for name, section in named.items() if shipped.section(section) is None}

    assert missing == {}, f"RB-001 has no section for {missing}"
    assert set(ALERT_SECTIONS) <= set(RULES)  # an alert linked by a name that no rule has would never show


def test_the_shipped_runbook_numbers_each_section_once(shipped: RunbookDocument) -> None:
    numbers = [part.number for part in shipped.sections]

    assert len(numbers) == len(set(numbers)), numbers
    assert {"1", "4", "4.1", "4.10", "5", "6"} <= set(numbers)


def test_the_package_reads_the_one_runbook_in_docs_and_ships_it() -> None:
    """One source: the package's RB-001.md is a link to docs/runbooks/RB-001.md (no copy to drift),
    and the package data names it, so a built wheel carries its content."""
    packaged = resources.files("tenancy.runbook") / "RB-001.md"
    settings = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))

    assert Path(str(packaged)).resolve() == SOURCE.resolve()
    assert packaged.read_text(encoding="utf-8") == SOURCE.read_text(encoding="utf-8")
    assert "runbook/RB-001.md" in settings["tool"]["setuptools"]["package-data"]["tenancy"]
