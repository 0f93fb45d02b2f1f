"""The password policy: Cognito's default (the user pool `tenancy aws bootstrap` creates has it,
and the embedded identity provider enforces it), so a form can name every rule a password breaks
before the provider is asked."""

from __future__ import annotations

__all__ = ["password_policy_failures"]

_MIN_LENGTH, _MAX_LENGTH = 8, 256
# Cognito's list of symbols.
_SYMBOLS = frozenset("^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ")


def password_policy_failures(password: str) -> list[str]:
    """What `password` lacks under Cognito's default policy; empty when it passes."""
    rules = (
        (len(password) >= _MIN_LENGTH, f"at least {_MIN_LENGTH} characters"),
        (len(password) <= _MAX_LENGTH, f"at most {_MAX_LENGTH} characters"),
        (any("A" <= c <= "Z" for c in password), "an uppercase letter"),
        (any("a" <= c <= "z" for c in password), "a lowercase letter"),
        (any("0" <= c <= "9" for c in password), "a number"),
        (any(c in _SYMBOLS for c in password), "a symbol"),
        (password == password.strip(" "), "no leading or trailing space"),
    )
    return [description for passed, description in rules if not passed]
