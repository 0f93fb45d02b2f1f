"""Counted nouns for every text a person reads (console, CLI, alerts, emails): `1 job`, `2 jobs`,
never `1 jobs` or `job(s)`. The templates use the same two functions as Jinja filters."""

from __future__ import annotations

__all__ = ["plural", "plural_noun"]


def plural_noun(count: int, noun: str, nouns: str | None = None) -> str:
    """`noun` for exactly one, else `nouns` (by default `noun` + "s"), zero included. Irregular
    words name their plural: `plural_noun(2, "entry", "entries")`."""
    return noun if count == 1 else nouns or f"{noun}s"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """The count and its noun: `1 repair`, `2 repairs`, `0 repairs`."""
    return f"{count} {plural_noun(count, noun, nouns)}"
