"""Derived identifiers, temporary passwords and the plan catalogue (data contract: Identifiers, tenants.limits)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tenancy.adapters.local.identity import password_policy_failures
from tenancy.domain.ids import (
    invoice_number_for,
    normalize_email,
    storage_prefix_for,
    temporary_password,
    tenant_id_for,
)
from tenancy.domain.plans import Limits, load_catalogue
from tenancy.errors import ConfigurationError, InvalidInputError, UnknownPlanError

TENANT_ID = re.compile(r"^ten_[a-z2-7]{16}$")
HASHED_INVOICE = re.compile(r"^INV-[A-Z2-7]{12}$")
UPPER, LOWER, DIGITS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), set("abcdefghijklmnopqrstuvwxyz"), set("0123456789")

transaction_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
) | st.from_regex(r"TXN-[A-Za-z0-9_-]{1,20}", fullmatch=True)


# --- tenant ids ---------------------------------------------------------------------------


def test_tenant_id_is_ten_prefix_and_16_base32_characters() -> None:
    assert TENANT_ID.match(tenant_id_for("TXN-123456"))


@given(transaction_ids)
def test_tenant_id_is_deterministic_for_any_transaction_id(transaction_id: str) -> None:
    first = tenant_id_for(transaction_id)
    assert first == tenant_id_for(transaction_id)
    assert TENANT_ID.match(first)


def test_tenant_id_differs_per_transaction() -> None:
    transaction_ids = [f"TXN-{n:06d}" for n in range(2000)]
    tenant_ids = {tenant_id_for(transaction_id) for transaction_id in transaction_ids}
    assert len(tenant_ids) == len(transaction_ids)


def test_tenant_id_is_case_sensitive_to_the_transaction_id() -> None:
    assert tenant_id_for("TXN-abc") != tenant_id_for("TXN-ABC")


def test_storage_prefix_is_tenants_slash_tenant_id() -> None:
    tenant_id = tenant_id_for("TXN-1")
    assert storage_prefix_for(tenant_id) == f"tenants/{tenant_id}"
    assert storage_prefix_for("ten_NEWID") == "tenants/ten_NEWID"


# --- invoice numbers ----------------------------------------------------------------------


def test_invoice_number_mirrors_the_txn_suffix_as_rb001_writes_it() -> None:
    assert invoice_number_for("TXN-123456") == "INV-123456"
    assert invoice_number_for("TXN-A1_b-2") == "INV-A1_b-2"


@pytest.mark.parametrize("transaction_id", ["pf-123456", "123456", "TXN-", "TXN-12 34", "txn-123456", "TXN-1/2"])
def test_invoice_number_for_other_shapes_is_a_stable_hash(transaction_id: str) -> None:
    invoice = invoice_number_for(transaction_id)
    assert HASHED_INVOICE.match(invoice), invoice
    assert invoice == invoice_number_for(transaction_id)


def test_hashed_invoice_numbers_differ_per_transaction() -> None:
    invoices = {invoice_number_for(f"order-{n}") for n in range(2000)}
    assert len(invoices) == 2000


def test_invoice_and_tenant_hashes_are_independent() -> None:
    transaction_id = "order-77"
    assert invoice_number_for(transaction_id)[4:].lower() != tenant_id_for(transaction_id)[4:16]


# --- emails and temporary passwords -------------------------------------------------------


def test_normalize_email_trims_and_lower_cases() -> None:
    assert normalize_email("  Owner@Example.COM \n") == "owner@example.com"


def _assert_strong(password: str, length: int) -> None:
    characters = set(password)
    assert len(password) == length
    assert characters & UPPER, password
    assert characters & LOWER, password
    assert characters & DIGITS, password
    assert characters - UPPER - LOWER - DIGITS, password
    assert not any(character.isspace() for character in password)
    # The embedded identity provider (Cognito's default policy) accepts it.
    assert password_policy_failures(password) == []


@hypothesis_settings(max_examples=300)
@given(st.integers(min_value=8, max_value=64))
def test_temporary_password_has_upper_lower_digit_and_symbol(length: int) -> None:
    _assert_strong(temporary_password(length), length)


def test_temporary_password_default_is_16_strong_characters_on_every_draw() -> None:
    passwords = [temporary_password() for _ in range(2000)]
    for password in passwords:
        _assert_strong(password, 16)
    assert len(set(passwords)) == len(passwords)


# --- the plan catalogue -------------------------------------------------------------------


def test_packaged_catalogue_has_starter_professional_enterprise() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.names()) == {"starter", "professional", "enterprise"}
    for plan in catalogue.plans:
        assert plan.price_zar > 0
        assert plan.display_name


def test_professional_limits_are_exactly_rb001s() -> None:
    professional = load_catalogue().get("professional")
    assert professional.limits == Limits(
        max_sites=5, max_generations_per_month=100, max_storage_mb=500, custom_domain_allowed=True
    )
    assert type(professional.limits.max_sites) is int
    assert type(professional.limits.custom_domain_allowed) is bool


def test_get_of_an_unknown_plan_raises_unknown_plan_error_naming_it() -> None:
    with pytest.raises(UnknownPlanError, match="platinum") as raised:
        load_catalogue().get("platinum")
    assert isinstance(raised.value, InvalidInputError)
    assert "professional" in str(raised.value)


CUSTOM_PLANS = """
[plans.solo]
display_name = "Solo"
price_zar = 49.5
max_sites = 2
max_generations_per_month = 10
max_storage_mb = 50
custom_domain_allowed = false

[plans.agency]
price_zar = "1999"
max_sites = 200
max_generations_per_month = 5000
max_storage_mb = 100000
custom_domain_allowed = true
"""


def test_load_catalogue_reads_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(CUSTOM_PLANS, encoding="utf-8")
    catalogue = load_catalogue(path)
    assert catalogue.names() == ("solo", "agency")
    solo = catalogue.get("solo")
    assert solo.display_name == "Solo"
    assert solo.price_zar == Decimal("49.50")
    assert solo.limits == Limits(2, 10, 50, False)
    agency = catalogue.get("agency")
    assert agency.display_name == "Agency"
    assert agency.price_zar == Decimal("1999.00")
    assert agency.limits.custom_domain_allowed is True
    with pytest.raises(UnknownPlanError):
        catalogue.get("professional")


def test_load_catalogue_of_a_missing_file_raises_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_catalogue(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("[plans.solo\nprice_zar = 1", "not valid TOML"),
        ("title = 'no plans here'\n", "no \\[plans.NAME\\]"),
        ("plans = 3\n", "no \\[plans.NAME\\]"),
        ("[plans]\n", "no \\[plans.NAME\\]"),
        ("[plans.solo]\nprice_zar = 10\nmax_sites = 1\n", "incomplete or malformed"),
        (
            "[plans.solo]\nprice_zar = 'ten'\nmax_sites = 1\nmax_generations_per_month = 1\n"
            "max_storage_mb = 1\ncustom_domain_allowed = false\n",
            "incomplete or malformed",
        ),
        (
            "[plans.solo]\nprice_zar = 10\nmax_sites = 'five'\nmax_generations_per_month = 1\n"
            "max_storage_mb = 1\ncustom_domain_allowed = false\n",
            "incomplete or malformed",
        ),
        (
            "[plans.solo]\nprice_zar = 0\nmax_sites = 1\nmax_generations_per_month = 1\n"
            "max_storage_mb = 1\ncustom_domain_allowed = false\n",
            "positive price",
        ),
    ],
    ids=[
        "bad-toml",
        "no-plans",
        "plans-not-a-table",
        "empty-plans",
        "missing-limits",
        "bad-price",
        "bad-limit",
        "zero-price",
    ],
)
def test_load_catalogue_of_a_malformed_file_raises_configuration_error(
    tmp_path: Path, content: str, complaint: str
) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=complaint):
        load_catalogue(path)
