"""PayFast ITN parsing, signatures and source addresses, against shared/spec/payfast-itn.md."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenancy.errors import InvalidInputError
from tenancy.payments import payfast
from tenancy.payments.simulator import build_itn, encode_form

SANDBOX_PASSPHRASE = "jt7NOE43FZPn"
PAYFAST_RANGES = (
    "197.97.145.144/28",
    "41.74.179.192/27",
    "102.216.36.0/28",
    "102.216.36.128/28",
    "144.126.193.139/32",
)

# Test vector A (PayFast PHP SDK NotificationTest, no passphrase), in the order PayFast sends it.
VECTOR_A: list[tuple[str, str]] = [
    ("m_payment_id", "000000020"),
    ("pf_payment_id", "1579137"),
    ("payment_status", "COMPLETE"),
    ("item_name", "Order #000000020"),
    ("item_description", ""),
    ("amount_gross", "15.00"),
    ("amount_fee", "-2.30"),
    ("amount_net", "12.70"),
    ("custom_str1", ""),
    ("custom_str2", ""),
    ("custom_str3", ""),
    ("custom_str4", ""),
    ("custom_str5", ""),
    ("custom_int1", ""),
    ("custom_int2", ""),
    ("custom_int3", ""),
    ("custom_int4", ""),
    ("custom_int5", ""),
    ("name_first", "Tom"),
    ("name_last", "Tom"),
    ("email_address", "lindley+user1@appinlet.com"),
    ("merchant_id", "10027938"),
    ("signature", "4078bca2c8987e0e0c4e7230f2f46323"),
]
VECTOR_A_SIGNATURE = "4078bca2c8987e0e0c4e7230f2f46323"
VECTOR_A_PARAMETER_STRING = (
    "m_payment_id=000000020&pf_payment_id=1579137&payment_status=COMPLETE&item_name=Order+%23000000020"
    "&item_description=&amount_gross=15.00&amount_fee=-2.30&amount_net=12.70&custom_str1=&custom_str2="
    "&custom_str3=&custom_str4=&custom_str5=&custom_int1=&custom_int2=&custom_int3=&custom_int4=&custom_int5="
    "&name_first=Tom&name_last=Tom&email_address=lindley%2Buser1%40appinlet.com&merchant_id=10027938"
)

# Test vector B (SDK test data, signed with the public sandbox passphrase).
VECTOR_B_UNSIGNED: list[tuple[str, str]] = [
    ("m_payment_id", "1234"),
    ("pf_payment_id", "1221576"),
    ("payment_status", "COMPLETE"),
    ("item_name", "Order#123"),
    ("item_description", ""),
    ("amount_gross", "10.00"),
    ("amount_fee", "-0.23"),
    ("amount_net", "9.77"),
    *[(f"custom_str{n}", "") for n in range(1, 6)],
    *[(f"custom_int{n}", "") for n in range(1, 6)],
    ("name_first", "First"),
    ("name_last", "Last"),
    ("email_address", "test@test.com"),
    ("merchant_id", "10000100"),
]
VECTOR_B_SIGNATURE = "ac4c3e993d31b5b9d525dc0087051437"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def php_urlencode(value: str) -> str:
    """A byte-by-byte reference of PHP's urlencode, independent of urllib."""
    keep = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
    out = []
    for byte in value.encode("utf-8"):
        if byte in keep:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def with_value(fields: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    assert name in dict(fields)
    return [(key, value if key == name else old) for key, old in fields]


# --- Test vectors -------------------------------------------------------------------------


def test_vector_a_parameter_string_is_exactly_what_payfast_signed() -> None:
    assert payfast.parameter_string(VECTOR_A) == VECTOR_A_PARAMETER_STRING


def test_vector_a_without_passphrase_gives_the_sdk_signature() -> None:
    assert payfast.itn_signature(VECTOR_A, None) == VECTOR_A_SIGNATURE
    assert md5_hex(VECTOR_A_PARAMETER_STRING) == VECTOR_A_SIGNATURE
    assert payfast.signature_matches(VECTOR_A, None) is True


def test_vector_a_does_not_match_when_a_passphrase_is_configured() -> None:
    assert payfast.signature_matches(VECTOR_A, SANDBOX_PASSPHRASE) is False


def test_vector_b_with_sandbox_passphrase_gives_the_sdk_signature() -> None:
    assert payfast.itn_signature(VECTOR_B_UNSIGNED, SANDBOX_PASSPHRASE) == VECTOR_B_SIGNATURE
    expected_base = payfast.parameter_string(VECTOR_B_UNSIGNED) + "&passphrase=" + SANDBOX_PASSPHRASE
    assert md5_hex(expected_base) == VECTOR_B_SIGNATURE
    signed = [*VECTOR_B_UNSIGNED, ("signature", VECTOR_B_SIGNATURE)]
    assert payfast.signature_matches(signed, SANDBOX_PASSPHRASE) is True


def test_vector_b_without_the_passphrase_gives_a_different_digest() -> None:
    without = payfast.itn_signature(VECTOR_B_UNSIGNED, None)
    assert without != VECTOR_B_SIGNATURE
    assert without == md5_hex(payfast.parameter_string(VECTOR_B_UNSIGNED))
    signed = [*VECTOR_B_UNSIGNED, ("signature", VECTOR_B_SIGNATURE)]
    assert payfast.signature_matches(signed, None) is False


def test_passphrase_is_urlencoded_before_it_is_appended() -> None:
    passphrase = "pass phrase+~"
    expected = md5_hex(payfast.parameter_string(VECTOR_B_UNSIGNED) + "&passphrase=pass+phrase%2B%7E")
    assert payfast.itn_signature(VECTOR_B_UNSIGNED, passphrase) == expected


# --- Parsing ------------------------------------------------------------------------------


def test_parse_itn_keeps_order_and_blank_values_of_vector_a() -> None:
    body = encode_form(VECTOR_A)
    fields = payfast.parse_itn(body)
    assert fields == VECTOR_A
    assert [key for key, _ in fields] == [key for key, _ in VECTOR_A]
    assert ("custom_str1", "") in fields
    assert payfast.itn_signature(fields, None) == VECTOR_A_SIGNATURE
    assert payfast.signature_matches(fields, None) is True


def test_parse_itn_reads_the_body_as_payfast_posts_it() -> None:
    body = (VECTOR_A_PARAMETER_STRING + "&signature=" + VECTOR_A_SIGNATURE).encode("ascii")
    fields = payfast.parse_itn(body)
    assert fields == VECTOR_A
    assert payfast.parameter_string(fields) == VECTOR_A_PARAMETER_STRING


def test_parse_itn_decodes_plus_and_percent_escapes() -> None:
    fields = payfast.parse_itn(b"item_name=Order+%23000000020&email_address=a%2Bb%40example.com&blank=")
    assert fields == [("item_name", "Order #000000020"), ("email_address", "a+b@example.com"), ("blank", "")]


def test_parse_itn_tolerates_unknown_extra_fields() -> None:
    fields = payfast.parse_itn(b"m_payment_id=1&something_new=x&signature=abc")
    assert fields == [("m_payment_id", "1"), ("something_new", "x"), ("signature", "abc")]


def test_parse_itn_rejects_a_body_that_is_not_utf8() -> None:
    with pytest.raises(InvalidInputError, match="UTF-8"):
        payfast.parse_itn(b"m_payment_id=1&name_first=\xff\xfe")


def test_parse_itn_rejects_percent_escapes_that_are_not_utf8() -> None:
    with pytest.raises(InvalidInputError):
        payfast.parse_itn(b"m_payment_id=1&name_first=%FF%FE")


def test_parse_itn_rejects_an_empty_body() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        payfast.parse_itn(b"")


def test_parse_itn_rejects_duplicate_keys() -> None:
    with pytest.raises(InvalidInputError, match="more than once"):
        payfast.parse_itn(b"m_payment_id=1&pf_payment_id=2&m_payment_id=3")


@pytest.mark.parametrize(
    "body",
    [b"m_payment_id", b"m_payment_id=1&&pf_payment_id=2", b"m_payment_id=1&", b"&", b"   ", b'{"json": true}'],
    ids=["no-equals", "empty-pair", "trailing-ampersand", "only-ampersand", "whitespace", "json"],
)
def test_parse_itn_rejects_malformed_input(body: bytes) -> None:
    with pytest.raises(InvalidInputError):
        payfast.parse_itn(body)


# --- PHP urlencode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a b", "a+b"),
        ("~", "%7E"),
        ("#", "%23"),
        ("+", "%2B"),
        ("@", "%40"),
        ("é", "%C3%A9"),
        ("€", "%E2%82%AC"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("/&=?*'", "%2F%26%3D%3F%2A%27"),
        ("Az09_.-", "Az09_.-"),
        ("", ""),
    ],
)
def test_encode_value_matches_php_urlencode(value: str, encoded: str) -> None:
    assert payfast.encode_value(value) == encoded
    assert php_urlencode(value) == encoded


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_encode_value_matches_php_urlencode_for_any_text(value: str) -> None:
    assert payfast.encode_value(value) == php_urlencode(value)


# --- What the signature covers ------------------------------------------------------------


def test_fields_after_signature_are_excluded_from_the_signature_and_refuse_it() -> None:
    extended = [*VECTOR_A, ("added_by_someone", "x"), ("amount_gross", "1.00")]
    assert payfast.parameter_string(extended) == VECTOR_A_PARAMETER_STRING
    assert payfast.itn_signature(extended, None) == VECTOR_A_SIGNATURE
    assert payfast.unsigned_fields(extended) == ["added_by_someone", "amount_gross"]
    # The digest still matches what precedes the signature, but it does not cover the ITN.
    assert payfast.signature_matches(extended, None) is False


def test_unsigned_fields_is_empty_when_the_signature_is_last_or_missing() -> None:
    assert payfast.unsigned_fields(VECTOR_A) == []
    assert payfast.unsigned_fields(VECTOR_A[:-1]) == []
    assert payfast.unsigned_fields([("signature", "x"), ("m_payment_id", "1")]) == ["m_payment_id"]


def test_an_unknown_field_before_the_signature_is_signed_and_tolerated() -> None:
    fields = [*VECTOR_B_UNSIGNED[:-1], ("something_new", "x"), VECTOR_B_UNSIGNED[-1]]
    signed = [*fields, ("signature", payfast.itn_signature(fields, SANDBOX_PASSPHRASE))]
    assert payfast.unsigned_fields(signed) == []
    assert payfast.signature_matches(signed, SANDBOX_PASSPHRASE) is True


def test_a_field_before_signature_is_included_in_the_signature() -> None:
    extended = [*VECTOR_A[:-1], ("extra", "x"), VECTOR_A[-1]]
    assert payfast.parameter_string(extended) == VECTOR_A_PARAMETER_STRING + "&extra=x"
    assert payfast.signature_matches(extended, None) is False


def test_values_are_not_trimmed_in_the_itn_signature() -> None:
    padded = with_value(VECTOR_A, "name_first", " Tom ")
    assert "name_first=+Tom+&" in payfast.parameter_string(padded)
    assert payfast.signature_matches(padded, None) is False


def test_signature_does_not_match_a_changed_value() -> None:
    changed = with_value(VECTOR_A, "amount_gross", "1500.00")
    assert payfast.signature_matches(changed, None) is False


def test_signature_does_not_match_a_reordered_field_list() -> None:
    reordered = [VECTOR_A[1], VECTOR_A[0], *VECTOR_A[2:]]
    assert sorted(reordered) == sorted(VECTOR_A)
    assert payfast.signature_matches(reordered, None) is False


def test_signature_does_not_match_a_blank_signature() -> None:
    blank = with_value(VECTOR_A, "signature", "")
    assert payfast.signature_matches(blank, None) is False


def test_signature_does_not_match_when_the_signature_field_is_missing() -> None:
    assert payfast.signature_matches(VECTOR_A[:-1], None) is False


def test_signature_does_not_match_an_uppercased_or_non_ascii_signature() -> None:
    assert payfast.signature_matches(with_value(VECTOR_A, "signature", VECTOR_A_SIGNATURE.upper()), None) is False
    assert payfast.signature_matches(with_value(VECTOR_A, "signature", "ü" * 32), None) is False


# --- Checkout form signature --------------------------------------------------------------


def test_checkout_signature_drops_empty_values_and_trims() -> None:
    fields = [
        ("merchant_id", "10000100"),
        ("merchant_key", "46f0cd694581a"),
        ("name_first", "  Jane "),
        ("name_last", ""),
        ("email_address", " jane@example.com"),
        ("cell_number", "   "),
        ("amount", "99.00"),
        ("item_name", "Site Builder starter"),
    ]
    expected_base = (
        "merchant_id=10000100&merchant_key=46f0cd694581a&name_first=Jane&email_address=jane%40example.com"
        "&amount=99.00&item_name=Site+Builder+starter&passphrase=jt7NOE43FZPn"
    )
    assert payfast.checkout_signature(fields, SANDBOX_PASSPHRASE) == md5_hex(expected_base)
    without_blanks = [(key, value.strip()) for key, value in fields if value.strip()]
    assert payfast.checkout_signature(without_blanks, SANDBOX_PASSPHRASE) == md5_hex(expected_base)


def test_checkout_signature_without_passphrase_has_no_passphrase_suffix() -> None:
    fields = [("merchant_id", "10000100"), ("amount", "99.00")]
    assert payfast.checkout_signature(fields, None) == md5_hex("merchant_id=10000100&amount=99.00")
    assert payfast.checkout_signature(fields, SANDBOX_PASSPHRASE) != payfast.checkout_signature(fields, None)


def test_checkout_and_itn_signatures_differ_when_a_value_is_empty() -> None:
    assert payfast.checkout_signature(VECTOR_B_UNSIGNED, SANDBOX_PASSPHRASE) != VECTOR_B_SIGNATURE


CHECKOUT_FORM = [
    ("merchant_id", "10000100"),
    ("merchant_key", "46f0cd694581a"),
    ("notify_url", "https://shop.example/payments/payfast/itn"),
    ("email_address", "eve@example.com"),
    ("m_payment_id", "TXN-1"),
    ("amount", "299.00"),
    ("custom_str1", "professional"),
]


def test_a_checkout_signature_is_a_valid_itn_signature_of_the_same_fields_when_none_is_blank() -> None:
    # Why an ITN must be refused when anything follows its signature: the checkout page hands every
    # buyer a signature that the ITN rule accepts for the fields before it.
    signature = payfast.checkout_signature(CHECKOUT_FORM, SANDBOX_PASSPHRASE)
    assert payfast.itn_signature(CHECKOUT_FORM, SANDBOX_PASSPHRASE) == signature
    form = [*CHECKOUT_FORM, ("signature", signature)]
    assert payfast.signature_matches(form, SANDBOX_PASSPHRASE) is True


def test_a_checkout_form_with_payment_fields_appended_does_not_match() -> None:
    form = [*CHECKOUT_FORM, ("signature", payfast.checkout_signature(CHECKOUT_FORM, SANDBOX_PASSPHRASE))]
    forged = [*form, ("pf_payment_id", "1"), ("payment_status", "COMPLETE"), ("amount_gross", "299.00")]
    assert payfast.unsigned_fields(forged) == ["pf_payment_id", "payment_status", "amount_gross"]
    assert payfast.signature_matches(forged, SANDBOX_PASSPHRASE) is False


# --- Source address -----------------------------------------------------------------------


def test_client_address_is_the_peer_when_no_forwarded_header() -> None:
    assert payfast.client_address("197.97.145.150", None, ("10.0.0.0/8",)) == "197.97.145.150"


def test_client_address_ignores_forwarded_for_from_an_untrusted_peer() -> None:
    assert payfast.client_address("8.8.8.8", "197.97.145.150", ("10.0.0.0/8",)) == "8.8.8.8"
    assert payfast.client_address("8.8.8.8", "197.97.145.150", ()) == "8.8.8.8"


def test_client_address_reads_forwarded_for_when_the_peer_is_a_trusted_proxy() -> None:
    assert payfast.client_address("10.0.0.5", "197.97.145.150", ("10.0.0.0/8",)) == "197.97.145.150"


def test_client_address_reads_forwarded_for_right_to_left_past_trusted_proxies() -> None:
    forwarded = "1.2.3.4, 197.97.145.150, 10.0.0.7, 10.0.0.6"
    assert payfast.client_address("10.0.0.5", forwarded, ("10.0.0.0/8",)) == "197.97.145.150"


def test_client_address_does_not_trust_a_spoofed_leftmost_forwarded_entry() -> None:
    # The client sent "X-Forwarded-For: 197.97.145.150"; our proxy appended the real sender.
    forwarded = "197.97.145.150, 8.8.8.8"
    assert payfast.client_address("10.0.0.5", forwarded, ("10.0.0.0/8",)) == "8.8.8.8"


def test_client_address_keeps_the_peer_when_a_trusted_proxy_sends_an_empty_header() -> None:
    assert payfast.client_address("10.0.0.5", "", ("10.0.0.0/8",)) == "10.0.0.5"


@pytest.mark.parametrize(
    "address",
    ["197.97.145.144", "197.97.145.150", "197.97.145.159", "41.74.179.192", "41.74.179.223", "102.216.36.5",
     "102.216.36.130", "144.126.193.139"],
)  # fmt: skip
def test_in_ranges_accepts_payfast_addresses(address: str) -> None:
    assert payfast.in_ranges(address, PAYFAST_RANGES) is True


@pytest.mark.parametrize(
    "address",
    ["197.97.145.143", "197.97.145.160", "41.74.179.224", "102.216.36.16", "144.126.193.140", "8.8.8.8",
     "127.0.0.1"],
)  # fmt: skip
def test_in_ranges_rejects_addresses_outside_payfast_ranges(address: str) -> None:
    assert payfast.in_ranges(address, PAYFAST_RANGES) is False


def test_in_ranges_handles_ipv6() -> None:
    assert payfast.in_ranges("::1", PAYFAST_RANGES) is False
    assert payfast.in_ranges("2001:db8::1", PAYFAST_RANGES) is False
    assert payfast.in_ranges("2001:db8::1", ("2001:db8::/32",)) is True
    assert payfast.in_ranges("2001:db9::1", ("2001:db8::/32",)) is False


@pytest.mark.parametrize("address", ["", "not-an-ip", "197.97.145", "197.97.145.150.1", "999.1.1.1", "1.2.3.4/32"])
def test_in_ranges_is_false_for_garbage(address: str) -> None:
    assert payfast.in_ranges(address, PAYFAST_RANGES) is False


# --- Properties ---------------------------------------------------------------------------

unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)


@given(
    transaction_id=unicode_text,
    email=unicode_text,
    plan=unicode_text,
    amount=amounts,
    name_first=unicode_text,
    name_last=unicode_text,
    merchant_id=unicode_text,
    passphrase=st.none() | unicode_text,
)
def test_property_a_built_itn_signature_matches_also_after_the_wire(
    transaction_id: str,
    email: str,
    plan: str,
    amount: Decimal,
    name_first: str,
    name_last: str,
    merchant_id: str,
    passphrase: str | None,
) -> None:
    fields = build_itn(
        transaction_id=transaction_id,
        email=email,
        plan=plan,
        amount=amount,
        merchant_id=merchant_id,
        passphrase=passphrase,
        pf_payment_id="1579137",
        name_first=name_first,
        name_last=name_last,
    )
    assert payfast.signature_matches(fields, passphrase) is True
    received = payfast.parse_itn(encode_form(fields))
    assert received == fields
    assert payfast.signature_matches(received, passphrase) is True


@given(data=st.data(), passphrase=st.none() | unicode_text)
def test_property_b_changing_any_one_value_without_resigning_breaks_the_signature(
    data: st.DataObject, passphrase: str | None
) -> None:
    fields = build_itn(
        transaction_id="TXN-ABC123",
        email="buyer@example.com",
        plan="starter",
        amount="99.00",
        merchant_id="10000100",
        passphrase=passphrase,
        pf_payment_id="1221576",
    )
    assert payfast.signature_matches(fields, passphrase) is True
    signed_part = len(fields) - 1  # every field before `signature`
    index = data.draw(st.integers(min_value=0, max_value=signed_part - 1), label="index")
    key, old = fields[index]
    new = data.draw(unicode_text.filter(lambda value: value != old), label="new value")
    tampered = [*fields[:index], (key, new), *fields[index + 1 :]]
    assert payfast.signature_matches(tampered, passphrase) is False


def test_parse_itn_rejects_a_field_without_a_name() -> None:
    with pytest.raises(InvalidInputError, match="no name"):
        payfast.parse_itn(b"m_payment_id=TXN-1&=orphan")


def test_an_ipv4_peer_reported_by_a_dual_stack_listener_is_in_payfast_ranges() -> None:
    assert payfast.in_ranges("::ffff:197.97.145.150", ["197.97.145.144/28"])
    assert not payfast.in_ranges("::ffff:8.8.8.8", ["197.97.145.144/28"])
