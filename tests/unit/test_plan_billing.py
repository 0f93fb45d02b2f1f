"""How the plan catalogue says a plan is billed: a PayFast subscription (monthly by default) with
its first, recurring and annual prices, or a once-off purchase; and the price as a buyer reads it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tenancy.domain.billing import Frequency
from tenancy.domain.plans import Limits, Plan, PlanCatalogue, load_catalogue
from tenancy.errors import ConfigurationError

LIMITS = """max_sites = 1
max_generations_per_month = 20
max_storage_mb = 100
custom_domain_allowed = false
"""


def catalogue_of(tmp_path: Path, *plans: str) -> PlanCatalogue:
    """The catalogue of a plans file with these `[plans.NAME]` bodies (the limits added to each)."""
    path = tmp_path / "plans.toml"
    tables = (f"[plans.p{index}]\n{body}\n{LIMITS}" for index, body in enumerate(plans, start=1))
    path.write_text("\n".join(tables), encoding="utf-8")
    return load_catalogue(path)


def test_a_plan_without_billing_is_a_monthly_subscription_at_its_price(tmp_path: Path) -> None:
    plan = catalogue_of(tmp_path, 'price_zar = "299.00"').get("p1")

    assert plan.billing is Frequency.MONTHLY
    assert plan.is_subscription
    assert plan.price_zar == plan.recurring_price_zar == Decimal("299.00")
    assert plan.annual_price_zar is None
    assert plan.billing_name == "monthly"


def test_the_packaged_plans_are_monthly_subscriptions_at_their_price() -> None:
    for plan in load_catalogue().plans:
        assert plan.billing is Frequency.MONTHLY, plan.name
        assert plan.recurring_price_zar == plan.price_zar, plan.name


def test_billing_once_is_a_once_off_plan(tmp_path: Path) -> None:
    plan = catalogue_of(tmp_path, 'price_zar = "299.00"\nbilling = "once"').get("p1")

    assert plan.billing is None
    assert not plan.is_subscription
    assert plan.billing_name == "once"
    assert plan.price_label() == "R299.00 once"


def test_a_plan_reads_its_frequency_recurring_and_annual_prices(tmp_path: Path) -> None:
    body = 'price_zar = "99"\nbilling = "Quarterly"\nrecurring_price_zar = 249.5\nannual_price_zar = "899.00"'
    plan = catalogue_of(tmp_path, body).get("p1")

    assert plan.billing is Frequency.QUARTERLY
    assert (plan.price_zar, plan.recurring_price_zar, plan.annual_price_zar) == (
        Decimal("99.00"),
        Decimal("249.50"),
        Decimal("899.00"),
    )


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('price_zar = "99"\nbilling = "fortnightly"', "unknown billing frequency 'fortnightly'"),
        ('price_zar = "99"\nbilling = 3', "billing must be"),
        ('price_zar = "99"\nrecurring_price_zar = "lots"', "incomplete or malformed"),
        ('price_zar = "99"\nrecurring_price_zar = 0', "positive recurring_price_zar"),
        ('price_zar = "99"\nannual_price_zar = -990', "positive annual_price_zar"),
        ('price_zar = "99"\nannual_price_zar = true', "number for annual_price_zar"),
        ('price_zar = "99"\nbilling = "once"\nrecurring_price_zar = "99"', "sold once"),
        ('price_zar = "99"\nbilling = "once"\nannual_price_zar = "990"', "sold once"),
    ],
    ids=[
        "unknown-frequency",
        "frequency-not-a-name",
        "bad-recurring",
        "zero-recurring",
        "negative-annual",
        "annual-not-a-number",
        "once-off-with-recurring",
        "once-off-with-annual",
    ],
)
def test_a_malformed_billing_is_a_configuration_error_naming_the_plan(
    tmp_path: Path, body: str, complaint: str
) -> None:
    with pytest.raises(ConfigurationError, match=complaint) as raised:
        catalogue_of(tmp_path, 'price_zar = "10"', body)

    assert "plan 'p2'" in str(raised.value)


@pytest.mark.parametrize(
    ("billing", "recurring", "label"),
    [
        (Frequency.MONTHLY, "299.00", "R299.00 / month"),
        (Frequency.QUARTERLY, "299.00", "R299.00 / quarter"),
        (Frequency.BIANNUALLY, "299.00", "R299.00 / half-year"),
        (Frequency.ANNUALLY, "299.00", "R299.00 / year"),
        (Frequency.MONTHLY, "349.00", "R299.00, then R349.00 / month"),
        (None, "299.00", "R299.00 once"),
    ],
)
def test_the_price_label_says_the_price_and_its_period(billing: Frequency | None, recurring: str, label: str) -> None:
    limits = Limits(1, 20, 100, custom_domain_allowed=False)
    plan = Plan("p", "P", Decimal("299.00"), limits, billing=billing, recurring_price_zar=Decimal(recurring))

    assert plan.price_label() == label


def test_a_plan_made_in_code_without_billing_keeps_working_as_a_monthly_plan() -> None:
    plan = Plan("starter", "Starter", Decimal("99.00"), Limits(1, 20, 100, custom_domain_allowed=False))

    assert plan.billing is Frequency.MONTHLY
    assert plan.recurring_price_zar == Decimal("99.00")
    assert plan == Plan("starter", "Starter", Decimal("99.00"), plan.limits, recurring_price_zar=Decimal("99.00"))
