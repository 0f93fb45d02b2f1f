"""The plan catalogue: names, prices, billing and limits, loaded from TOML (package data by default)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from tenancy.domain.billing import Frequency
from tenancy.errors import ConfigurationError, UnknownPlanError

__all__ = ["ONCE_OFF", "Limits", "Plan", "PlanCatalogue", "load_catalogue"]

# The catalogue's word for a plan sold once, with no subscription (`billing = "once"`).
ONCE_OFF = "once"
# What `recurring_price_zar` holds until it is given: "the same as price_zar". A dataclass default
# cannot name another field, and no real recurring price is zero (the loader refuses one).
_SAME_AS_PRICE = Decimal(0)


@dataclass(frozen=True, slots=True)
class Limits:
    max_sites: int
    max_generations_per_month: int
    max_storage_mb: int
    custom_domain_allowed: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan as sold. `price_zar` is the first charge (the checkout's `amount`); a subscription
    plan (`billing` a Frequency) then charges `recurring_price_zar` every period until cancelled,
    and may also be offered yearly at `annual_price_zar`. `billing` None is a once-off purchase."""

    name: str
    display_name: str
    price_zar: Decimal
    limits: Limits
    billing: Frequency | None = Frequency.MONTHLY
    recurring_price_zar: Decimal = _SAME_AS_PRICE
    annual_price_zar: Decimal | None = None
    max_users: int = 1  # seats: the owner and every other member or pending invitation

    def __post_init__(self) -> None:
        if self.recurring_price_zar == _SAME_AS_PRICE:
            # Frozen: the one way to fill in a default that depends on another field.
            object.__setattr__(self, "recurring_price_zar", self.price_zar)

    @property
    def is_subscription(self) -> bool:
        return self.billing is not None

    @property
    def billing_name(self) -> str:
        """The billing as the catalogue writes it: "monthly", "annually"..., or "once"."""
        return ONCE_OFF if self.billing is None else self.billing.name.lower()

    def price_label(self) -> str:
        """The price as a buyer reads it: "R299.00 / month", "R299.00 once", or, when the first
        charge differs from the later ones, "R99.00, then R299.00 / month"."""
        if self.billing is None:
            return f"R{self.price_zar:.2f} once"
        recurring = f"R{self.recurring_price_zar:.2f} / {self.billing.period_word}"
        if self.recurring_price_zar == self.price_zar:
            return recurring
        return f"R{self.price_zar:.2f}, then {recurring}"


@dataclass(frozen=True, slots=True)
class PlanCatalogue:
    plans: tuple[Plan, ...]

    def get(self, name: str) -> Plan:
        for plan in self.plans:
            if plan.name == name:
                return plan
        known = ", ".join(plan.name for plan in self.plans)
        raise UnknownPlanError(f"unknown plan {name!r} (known plans: {known})")

    def names(self) -> tuple[str, ...]:
        return tuple(plan.name for plan in self.plans)


def load_catalogue(path: Path | None = None) -> PlanCatalogue:
    """Loads the catalogue from `path`, or the one shipped with the package."""
    if path is None:
        text = resources.files("tenancy").joinpath("plans.toml").read_text(encoding="utf-8")
        source = "the packaged plans.toml"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(f"cannot read plans file {path}: {error.strerror}") from None
        source = str(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{source} is not valid TOML: {error}") from None
    entries = document.get("plans")
    if not isinstance(entries, dict) or not entries:
        raise ConfigurationError(f"{source} defines no [plans.NAME] tables")
    return PlanCatalogue(tuple(_plan(name, entry, source) for name, entry in entries.items()))


def _plan(name: str, entry: Any, source: str) -> Plan:
    try:
        price = _price(entry["price_zar"], "price_zar", name, source)
        billing = _billing(entry.get("billing", "monthly"))
        recurring = entry.get("recurring_price_zar")
        annual = entry.get("annual_price_zar")
        if billing is None and (recurring is not None or annual is not None):
            # A recurring price on a plan sold once is a mistake in the file, not something to ignore.
            raise ConfigurationError(
                f"{source}: plan {name!r} is sold once (billing = {ONCE_OFF!r}) but sets a recurring or annual price"
            )
        return Plan(
            name=name,
            display_name=str(entry.get("display_name", name.title())),
            price_zar=price,
            limits=Limits(
                max_sites=int(entry["max_sites"]),
                max_generations_per_month=int(entry["max_generations_per_month"]),
                max_storage_mb=int(entry["max_storage_mb"]),
                custom_domain_allowed=bool(entry["custom_domain_allowed"]),
            ),
            billing=billing,
            recurring_price_zar=price if recurring is None else _price(recurring, "recurring_price_zar", name, source),
            annual_price_zar=None if annual is None else _price(annual, "annual_price_zar", name, source),
            max_users=_seats(entry.get("max_users", 1), name, source),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as error:
        raise ConfigurationError(f"{source}: plan {name!r} is incomplete or malformed ({error})") from None


def _seats(value: object, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{source}: plan {name!r} needs a whole number of seats, 1 or more, for max_users")
    return value


def _price(value: object, key: str, name: str, source: str) -> Decimal:
    """A price in rands and cents; a string ("299.00") or a TOML number. InvalidOperation (caught
    by the caller) for anything that is not a number."""
    if isinstance(value, bool):  # str(True) is no price, but say which key is wrong
        raise ConfigurationError(f"{source}: plan {name!r} needs a number for {key}, not {value!r}")
    price = Decimal(str(value))
    if not price > 0:
        raise ConfigurationError(f"{source}: plan {name!r} needs a positive {key}")
    return price.quantize(Decimal("0.01"))


def _billing(value: object) -> Frequency | None:
    """`billing = "monthly"` (or any Frequency's name), or "once" for a plan with no subscription."""
    if not isinstance(value, str):
        raise ValueError(f"billing must be a frequency's name or {ONCE_OFF!r}, not {value!r}")
    if value.strip().lower() == ONCE_OFF:
        return None
    return Frequency.named(value)
