"""The plan catalogue: names, prices and limits, loaded from TOML (package data by default)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from tenancy.errors import ConfigurationError, UnknownPlanError

__all__ = ["Limits", "Plan", "PlanCatalogue", "load_catalogue"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_sites: int
    max_generations_per_month: int
    max_storage_mb: int
    custom_domain_allowed: bool


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    display_name: str
    price_zar: Decimal
    limits: Limits


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
        price = Decimal(str(entry["price_zar"]))
        if price <= 0:
            raise ConfigurationError(f"{source}: plan {name!r} needs a positive price_zar")
        return Plan(
            name=name,
            display_name=str(entry.get("display_name", name.title())),
            price_zar=price.quantize(Decimal("0.01")),
            limits=Limits(
                max_sites=int(entry["max_sites"]),
                max_generations_per_month=int(entry["max_generations_per_month"]),
                max_storage_mb=int(entry["max_storage_mb"]),
                custom_domain_allowed=bool(entry["custom_domain_allowed"]),
            ),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as error:
        raise ConfigurationError(f"{source}: plan {name!r} is incomplete or malformed ({error})") from None
