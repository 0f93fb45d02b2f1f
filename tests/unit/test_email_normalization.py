"""Issue 11: one spelling per account. `normalize_email` is the only way an email becomes an account
key, for sign-up (checkout, ITN), sign-in, password reset and every lookup; it refuses invisible
and non-ASCII characters rather than mapping them (see its docstring for why)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenancy.bootstrap import Services
from tenancy.domain.ids import normalize_email, normalized_email_or_none
from tenancy.domain.model import PaymentVerdict
from tenancy.errors import InvalidInputError
from tenancy.payments.checkout import parse_buyer

from helpers import pay

# --- what is accepted: ASCII, with case and surrounding whitespace as the only freedom -------------


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("kate@example.com", "kate@example.com"),
        ("KATE@EXAMPLE.COM", "kate@example.com"),
        ("Kate@Example.Com", "kate@example.com"),
        ("  kate@example.com  ", "kate@example.com"),
        ("\tkate@example.com\r\n", "kate@example.com"),
        # Whitespace around the address is not part of it, whichever space it is (a paste from a page).
        ("\u00a0kate@example.com\u3000", "kate@example.com"),
        ("Kate.O'Neil+Shop@Sub.Example.CO.ZA", "kate.o'neil+shop@sub.example.co.za"),
    ],
)
def test_case_and_surrounding_whitespace_name_the_same_account(typed: str, key: str) -> None:
    assert normalize_email(typed) == key


@pytest.mark.parametrize("blank", ["", "   ", "\n\t", "\u00a0"])
def test_a_blank_address_is_empty_for_the_caller_to_judge(blank: str) -> None:
    assert normalize_email(blank) == ""


# --- what is refused, and how it is said -------------------------------------------------------


def _refusal(typed: str) -> str:
    with pytest.raises(InvalidInputError) as caught:
        normalize_email(typed)
    return str(caught.value)


def test_the_kelvin_sign_is_refused_not_turned_into_a_k() -> None:
    # NFKC and str.lower() both make U+212A a plain k: mapping would sign "\u212aate@" in as kate@.
    message = _refusal("\u212aate@example.com")

    assert "U+212A KELVIN SIGN" in message
    assert "plain ASCII" in message
    assert "did you mean kate@example.com?" in message


def test_full_width_letters_are_refused_with_the_ascii_spelling_suggested() -> None:
    message = _refusal("\uff4b\uff41\uff54\uff45@example.com")

    assert "U+FF4B FULLWIDTH LATIN SMALL LETTER K" in message
    assert "did you mean kate@example.com?" in message


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        # Casefold leaves the dotless i alone: it would stay a second account beside tim@.
        ("t\u0131m@example.com", "LATIN SMALL LETTER DOTLESS I"),
        # Casefold makes the dotted capital I "i" plus a combining dot: not tim@ either.
        ("T\u0130M@example.com", "LATIN CAPITAL LETTER I WITH DOT ABOVE"),
        # Casefold makes it "ss": another mailbox's name, so nothing is suggested.
        ("stra\u00dfe@example.com", "LATIN SMALL LETTER SHARP S"),
        ("k\u0430te@example.com", "CYRILLIC SMALL LETTER A"),
        ("kate@\u0435xample.com", "CYRILLIC SMALL LETTER IE"),
        ("kate@ex\u00e4mple.com", "LATIN SMALL LETTER A WITH DIAERESIS"),
    ],
)
def test_other_non_ascii_letters_are_refused_without_a_suggestion(typed: str, name: str) -> None:
    message = _refusal(typed)

    assert name in message
    assert "plain ASCII" in message
    assert "did you mean" not in message


@pytest.mark.parametrize(
    ("typed", "described"),
    [
        ("k\u200bate@example.com", "U+200B ZERO WIDTH SPACE"),
        ("k\u200cate@example.com", "U+200C ZERO WIDTH NON-JOINER"),
        ("k\u200date@example.com", "U+200D ZERO WIDTH JOINER"),
        ("k\u2060ate@example.com", "U+2060 WORD JOINER"),
        ("\ufeffkate@example.com", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("ka\u00adte@example.com", "U+00AD SOFT HYPHEN"),
        ("kate\u180e@example.com", "U+180E MONGOLIAN VOWEL SEPARATOR"),
        ("kate@example.com\u3164", "U+3164 HANGUL FILLER"),
        ("ka\u034fte@example.com", "U+034F COMBINING GRAPHEME JOINER"),
        ("kate\ufe0f@example.com", "U+FE0F VARIATION SELECTOR-16"),
        ("kate@exa\u00a0mple.com", "U+00A0 NO-BREAK SPACE"),
        ("kate@exa\u2009mple.com", "U+2009 THIN SPACE"),
        ("ka\x00te@example.com", "U+0000"),
        ("kate@exa\tmple.com", "U+0009"),
        ("kate\x7f@example.com", "U+007F"),
    ],
    ids=ascii,
)
def test_zero_width_and_other_invisible_characters_are_refused(typed: str, described: str) -> None:
    message = _refusal(typed)

    assert "invisible character" in message
    assert described in message


@pytest.mark.parametrize(
    ("typed", "described"),
    [
        ("\u202ekate@example.com", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u202dkate@example.com", "U+202D LEFT-TO-RIGHT OVERRIDE"),
        ("kate\u200f@example.com", "U+200F RIGHT-TO-LEFT MARK"),
        ("kate\u200e@example.com", "U+200E LEFT-TO-RIGHT MARK"),
        ("kate@\u2067example.com\u2069", "U+2067 RIGHT-TO-LEFT ISOLATE"),
        ("kate\u061c@example.com", "U+061C ARABIC LETTER MARK"),
    ],
    ids=ascii,
)
def test_bidi_controls_are_refused(typed: str, described: str) -> None:
    message = _refusal(typed)

    assert "invisible character" in message
    assert described in message


def test_the_message_never_carries_the_invisible_character_itself() -> None:
    assert "\u202e" not in _refusal("\u202ekate@example.com")


# --- properties ----------------------------------------------------------------------------------


@given(st.text(max_size=40))
def test_an_accepted_address_is_its_ascii_spelling_lower_cased(typed: str) -> None:
    """Whatever is typed, either it is refused or its key is the typed string, trimmed and
    lower-cased: no two different spellings (case aside) can reach one account."""
    try:
        key = normalize_email(typed)
    except InvalidInputError:
        return
    assert key == typed.strip().lower()
    assert key.isascii()
    assert all(character == " " or character.isprintable() for character in key)
    assert normalize_email(key) == key


@pytest.mark.parametrize("value", [None, "", "  ", "\u212aate@example.com", "k\u200bate@example.com"])
def test_normalized_email_or_none_marks_a_blank_or_refused_address_unusable(value: str | None) -> None:
    assert normalized_email_or_none(value) is None


def test_normalized_email_or_none_is_normalize_email_otherwise() -> None:
    assert normalized_email_or_none(" Kate@Example.com ") == "kate@example.com"


# --- every way in uses it ------------------------------------------------------------------------


def test_the_checkout_refuses_a_zero_width_email_with_a_clear_message() -> None:
    with pytest.raises(InvalidInputError, match="invisible character \\(U\\+200B ZERO WIDTH SPACE\\)"):
        parse_buyer("Ada Lovelace", "ada\u200b@example.com")
    with pytest.raises(InvalidInputError, match="KELVIN SIGN"):
        parse_buyer("Kate Lovelace", "\u212aate@example.com")
    assert parse_buyer("Ada Lovelace", " ADA@Example.com ").email == "ada@example.com"


def test_an_itn_with_a_lookalike_email_is_rejected_and_kept(services: Services) -> None:
    transaction_id = pay(services, email="\u212aate@example.com")

    (kept,) = services.ledger.find(transaction_id=transaction_id)
    assert kept.verdict is PaymentVerdict.REJECTED
    assert any("email_address" in reason for reason in kept.reasons)
    assert kept.email is None
    # The address as PayFast sent it stays in the record, for an operator to see.
    assert ("email_address", "\u212aate@example.com") in kept.fields
    assert services.journal.get(transaction_id) is None


def test_an_operator_cannot_be_added_under_a_lookalike_email(services: Services) -> None:
    services.operators.add_operator("kate@example.com")

    with pytest.raises(InvalidInputError, match="KELVIN SIGN"):
        services.operators.add_operator("\u212aate@example.com")
    with pytest.raises(InvalidInputError, match="invisible character"):
        services.operators.add_operator("kate\u200d@example.com")
    assert [user.username for batch in services.identity.scan_users() for user in batch] == ["kate@example.com"]


def test_sign_in_and_reset_refuse_a_lookalike_before_touching_the_account(services: Services) -> None:
    services.operators.add_operator("kate@example.com")

    with pytest.raises(InvalidInputError, match="KELVIN SIGN"):
        services.accounts.login("\u212aate@example.com", "whatever-1A!")
    with pytest.raises(InvalidInputError, match="invisible character"):
        services.accounts.request_password_reset("kate\u200b@example.com")
    with pytest.raises(InvalidInputError, match="invisible character"):
        services.accounts.confirm_password_reset("kate\u200b@example.com", "12345678", "New-Passw0rd!")
