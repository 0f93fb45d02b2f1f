"""The subscription API's signature against the three test vectors of payfast-subscriptions.md."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tenancy.payments.subscription_api import (
    api_signature,
    api_signature_matches,
    api_timestamp,
    signed_headers,
    signing_string,
)

HEADERS = {"merchant-id": "10000100", "version": "v1", "timestamp": "2026-12-06T13:45:00+0200"}
SANDBOX_PASSPHRASE = "jt7NOE43FZPn"

VECTORS = [
    pytest.param(
        HEADERS,
        SANDBOX_PASSPHRASE,
        "merchant-id=10000100&passphrase=jt7NOE43FZPn&timestamp=2026-12-06T13%3A45%3A00%2B0200&version=v1",
        "d538d2311a4a3d2a31c69296a65e2f85",
        id="headers-only",
    ),
    pytest.param(
        {**HEADERS, "amount": "29900", "frequency": "3", "run_date": "2027-01-06"},
        SANDBOX_PASSPHRASE,
        "amount=29900&frequency=3&merchant-id=10000100&passphrase=jt7NOE43FZPn&run_date=2027-01-06"
        "&timestamp=2026-12-06T13%3A45%3A00%2B0200&version=v1",
        "c6804a42b37c585978a1375c18f91a59",
        id="update-body",
    ),
    pytest.param(
        {**HEADERS, "amount": "9900", "item_name": "Site Builder Starter ~ adhoc"},
        "Correct horse~battery+staple&1",
        "amount=9900&item_name=Site+Builder+Starter+%7E+adhoc&merchant-id=10000100"
        "&passphrase=Correct+horse%7Ebattery%2Bstaple%261&timestamp=2026-12-06T13%3A45%3A00%2B0200&version=v1",
        "a51239fff126d6aa0afc8b64cfd2190a",
        id="adhoc-with-escapes",
    ),
]


@pytest.mark.parametrize(("data", "passphrase", "expected_string", "expected_signature"), VECTORS)
def test_spec_vector_signs_the_documented_string(
    data: dict[str, str], passphrase: str, expected_string: str, expected_signature: str
) -> None:
    assert signing_string(data, passphrase) == expected_string
    assert api_signature(data, passphrase) == expected_signature


@pytest.mark.parametrize(("data", "passphrase", "expected_string", "expected_signature"), VECTORS)
def test_signed_headers_carry_the_spec_vector_signature(
    data: dict[str, str], passphrase: str, expected_string: str, expected_signature: str
) -> None:
    body = {key: value for key, value in data.items() if key not in HEADERS}
    headers = signed_headers(
        merchant_id="10000100", passphrase=passphrase, timestamp="2026-12-06T13:45:00+0200", fields=body
    )
    assert headers == {**HEADERS, "signature": expected_signature}
    assert api_signature_matches(headers, body, passphrase)


def test_integer_amounts_are_signed_as_their_digits() -> None:
    as_integers = signed_headers(
        merchant_id="10000100",
        passphrase=SANDBOX_PASSPHRASE,
        timestamp="2026-12-06T13:45:00+0200",
        fields={"amount": 29900, "frequency": 3, "run_date": "2027-01-06"},
    )
    assert as_integers["signature"] == "c6804a42b37c585978a1375c18f91a59"


def test_testing_switch_and_signature_are_left_out_of_the_signed_string() -> None:
    with_extras = {**HEADERS, "testing": "true", "signature": "anything"}
    assert signing_string(with_extras, SANDBOX_PASSPHRASE) == signing_string(HEADERS, SANDBOX_PASSPHRASE)
    assert api_signature(with_extras, SANDBOX_PASSPHRASE) == "d538d2311a4a3d2a31c69296a65e2f85"


def test_no_passphrase_signs_without_one() -> None:
    assert "passphrase" not in signing_string(HEADERS, None)
    assert signing_string(HEADERS, None) == ("merchant-id=10000100&timestamp=2026-12-06T13%3A45%3A00%2B0200&version=v1")


def test_keys_sort_in_byte_order() -> None:
    # "-" (0x2D) sorts before "_" (0x5F) and capitals before lower case, as PHP's ksort does.
    data = {"b_x": "1", "b-x": "2", "B": "3"}
    assert signing_string(data, None) == "B=3&b-x=2&b_x=1"


def test_a_wrong_passphrase_or_a_changed_field_fails_the_check() -> None:
    body = {"cycles": 1}
    headers = signed_headers(
        merchant_id="10000100", passphrase=SANDBOX_PASSPHRASE, timestamp="2026-12-06T13:45:00+0200", fields=body
    )
    assert api_signature_matches(headers, body, SANDBOX_PASSPHRASE)
    assert not api_signature_matches(headers, body, "another passphrase")
    assert not api_signature_matches(headers, {"cycles": 2}, SANDBOX_PASSPHRASE)
    assert not api_signature_matches({**headers, "timestamp": "2026-12-06T13:46:00+0200"}, body, SANDBOX_PASSPHRASE)


def test_a_field_named_like_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        signed_headers(merchant_id="1", passphrase=None, timestamp="t", fields={"version": "v2"})


def test_timestamp_header_keeps_the_offset_without_a_colon() -> None:
    moment = datetime(2026, 12, 6, 13, 45, tzinfo=timezone(timedelta(hours=2)))
    assert api_timestamp(moment) == "2026-12-06T13:45:00+0200"
    with pytest.raises(ValueError, match="timezone-aware"):
        api_timestamp(datetime(2026, 12, 6, 13, 45))
