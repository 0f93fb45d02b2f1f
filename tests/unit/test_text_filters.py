"""Counted nouns (domain.plurals), in the alert rules' texts too, and the console's rendering of
the runbook's Markdown code spans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenancy.domain.clock import format_timestamp
from tenancy.domain.ids import invoice_number_for, tenant_id_for
from tenancy.domain.model import JobStatus, PaymentRecord, PaymentVerdict, ProvisioningJob
from tenancy.domain.plurals import plural, plural_noun
from tenancy.runbook.alerts import AlertInputs, AlertThresholds, evaluate
from tenancy.web.pages.text_filters import code_spans


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "0 jobs"), (1, "1 job"), (2, "2 jobs"), (10_000, "10000 jobs")]
)
def test_one_is_singular_and_every_other_count_plural(count: int, expected: str) -> None:
    assert plural(count, "job") == expected


def test_irregular_plurals_are_named_and_the_noun_alone_is_available_for_a_number_set_apart() -> None:
    assert plural(2, "entry", "entries") == "2 entries"
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural_noun(1, "active tenant") == "active tenant"
    assert plural_noun(3, "active tenant") == "active tenants"


def test_code_spans_become_code_elements() -> None:
    rendered = code_spans("1 job in the DLQ: see `tenancy dlq list`; `tenancy dlq remove --healed` clears")

    assert str(rendered) == (
        "1 job in the DLQ: see <code>tenancy dlq list</code>;"
        " <code>tenancy dlq remove --healed</code> clears"
    )


def test_code_spans_escape_everything_else_first() -> None:
    rendered = code_spans('<script>alert(1)</script> & `mail list --to "<a@b.co>"` and a lone ` backtick')

    assert str(rendered) == (
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <code>mail list --to &#34;&lt;a@b.co&gt;&#34;</code>"
        " and a lone ` backtick"
    )


def test_every_alert_rule_counts_one_thing_in_the_singular() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    long_ago = format_timestamp(now - timedelta(hours=3))
    parked = ProvisioningJob(
        transaction_id="TXN-100001",
        tenant_id=tenant_id_for("TXN-100001"),
        invoice_number=invoice_number_for("TXN-100001"),
        email="stuck@example.com",
        plan="professional",
        tenant_name="Acme",
        status=JobStatus.DEAD_LETTERED,
        created_at=long_ago,
        updated_at=format_timestamp(now - timedelta(minutes=1)),
    )
    recently = format_timestamp(now - timedelta(minutes=1))
    payments = [
        PaymentRecord(recently, "197.97.145.150", (), PaymentVerdict.REJECTED, ("amount_gross 1.00 is not 299.00",)),
        PaymentRecord(recently, "10.0.0.1", (), PaymentVerdict.REJECTED, ("signature mismatch",)),
    ]
    one_of_each = AlertInputs(queue_depth=0, dlq_depth=1, jobs=[parked], payments=payments)

    results = evaluate(one_of_each, AlertThresholds(), now)

    messages = {result.rule: result.message for result in results}
    assert messages["dlq_not_empty"].startswith("1 job in the dead-letter queue")
    assert messages["error_rate"].startswith("1 of 1 job updated in the last 60 min failed an attempt")
    assert messages["multiple_failures"].startswith("1 unresolved provisioning failure (")
    assert messages["payment_failures"].startswith("1 ITN rejected for merchant, plan or amount and 0 paid jobs")
    assert messages["security_rejections"].startswith("1 ITN rejected for signature")
    assert messages["unresolved_over_an_hour"].startswith("1 job unresolved for more than 60 min")
    assert not any("(s)" in message for message in messages.values())
