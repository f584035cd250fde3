"""The 44-digit GS1-128 (AI 91) slip barcode and the check digits it is built on."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.barcode import BarcodeError, SlipBarcode, decode, encode, is_valid, problem
from domain.identifiers import (
    is_valid_municipality_code,
    is_valid_slip_number,
    make_slip_number,
    mod10_weight31,
)

# From shared/domain/payment-slip-barcode.md, each verified independently there.
SHARED_VECTORS = [
    ("9191234501234567890123456789010103310123000", 3),
    ("9194238617895391785393569273010307311031290", 3),
    ("9191234500000000000000452087500401310029500", 4),
    ("9192902321942000000000003755439999999999999", 9),
]

SLIP_NUMBER = "2600000000000015"  # fiscal year 26, serial 1; check digit worked by hand


def a_barcode(**changes: object) -> SlipBarcode:
    fields: dict[str, object] = {
        "company_code": "912345",
        "client_code": "01234",
        "slip_number": SLIP_NUMBER,
        "reissue": 0,
        "store_deadline": date(2026, 7, 31),
        "amount": 12_300,
    }
    fields.update(changes)
    return SlipBarcode(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("body", "check"), SHARED_VECTORS)
def test_shared_vectors_get_their_published_check_digit(body: str, check: int) -> None:
    assert mod10_weight31(body) == check
    assert is_valid(body + str(check))
    assert not is_valid(body + str((check + 1) % 10))


def test_encoding_places_every_field_where_the_guideline_puts_it() -> None:
    digits = encode(a_barcode())
    assert len(digits) == 44
    assert digits[0:2] == "91"
    assert digits[2:8] == "912345"
    assert digits[8:13] == "01234"
    assert digits[13:29] == SLIP_NUMBER
    assert digits[29] == "0"
    assert digits[30:36] == "260731"
    assert digits[36] == "0"
    assert digits[37:43] == "012300"
    assert digits[43] == str(mod10_weight31(digits[:43]))


@pytest.mark.parametrize(
    "barcode",
    [
        a_barcode(),
        a_barcode(reissue=9, store_deadline=None, amount=300_000),
        a_barcode(company_code="000001", client_code="99999", amount=1, store_deadline=date(2099, 12, 31)),
    ],
)
def test_decoding_an_encoded_barcode_gives_back_every_field(barcode: SlipBarcode) -> None:
    assert decode(encode(barcode)) == barcode


def test_no_store_deadline_is_written_as_six_nines() -> None:
    assert encode(a_barcode(store_deadline=None))[30:36] == "999999"


@st.composite
def valid_barcodes(draw: st.DrawFn) -> str:
    slip_number = make_slip_number(
        draw(st.integers(2000, 2099)), draw(st.integers(0, 10**13 - 1))
    )
    barcode = SlipBarcode(
        company_code=draw(st.from_regex(r"\A[0-9]{6}\Z")),
        client_code=draw(st.from_regex(r"\A[0-9]{5}\Z")),
        slip_number=slip_number,
        reissue=draw(st.integers(0, 9)),
        store_deadline=draw(st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31))),
        amount=draw(st.integers(1, 300_000)),
    )
    return encode(barcode)


@given(digits=valid_barcodes(), position=st.integers(1, 44))
def test_every_single_digit_substitution_is_caught(digits: str, position: int) -> None:
    assert is_valid(digits)
    index = position - 1
    for other in "0123456789".replace(digits[index], ""):
        mistyped = digits[:index] + other + digits[index + 1 :]
        assert not is_valid(mistyped), f"{mistyped} passed with position {position} changed"


@pytest.mark.parametrize("amount", [300_001, 999_999, 0, -1])
def test_amounts_a_store_may_not_collect_are_refused(amount: int) -> None:
    with pytest.raises(BarcodeError):
        encode(a_barcode(amount=amount))


def test_the_limit_itself_may_carry_a_barcode() -> None:
    assert encode(a_barcode(amount=300_000))[37:43] == "300000"


@pytest.mark.parametrize("reissue", [10, -1])
def test_reissue_counts_beyond_one_digit_are_refused(reissue: int) -> None:
    with pytest.raises(BarcodeError):
        encode(a_barcode(reissue=reissue))


def test_a_slip_number_with_a_wrong_check_digit_is_refused() -> None:
    with pytest.raises(BarcodeError):
        encode(a_barcode(slip_number="2600000000000016"))


@pytest.mark.parametrize(
    ("digits", "reason"),
    [
        ("9" * 44, "AI 91"),
        ("919123450123456789012345678901010331012300", "44 digits"),
        ("919123450123456789012345678901010331012300a3", "44 digits"),
        ("91912345012345678901234567890101033101230004", "check digit"),
    ],
)
def test_decoding_rejects_malformed_digits(digits: str, reason: str) -> None:
    with pytest.raises(BarcodeError, match=reason):
        decode(digits)


@pytest.mark.parametrize(
    ("digits", "reason"),
    [
        ("919123450123456789012345678901010331012300", "must be 44 digits, got 42"),
        ("919123450123456789012345678901010331012300a3", "must be 44 digits, got 44"),
        ("9" * 44, "application identifier must be 91, got 99"),
        ("91912345012345678901234567890101033101230004", "check digit is 4, expected 3"),
        ("91912345012345678901234567890101033101230003", None),
    ],
)
def test_a_scanned_barcode_s_problem_is_named_for_a_person(digits: str, reason: str | None) -> None:
    assert problem(digits) == reason


def test_decoding_rejects_a_slip_number_with_a_bad_check_digit() -> None:
    # The whole barcode's check digit is right; only the inner slip number's is wrong.
    body = "91" + "912345" + "01234" + "2600000000000016" + "0" + "260731" + "0" + "012300"
    with pytest.raises(BarcodeError, match="slip number"):
        decode(body + str(mod10_weight31(body)))


@pytest.mark.parametrize("code", ["131075", "130001", "011002"])
def test_real_local_government_codes_have_valid_check_digits(code: str) -> None:
    assert is_valid_municipality_code(code)


@pytest.mark.parametrize("code", ["131076", "13107", "1310750", "13107a"])
def test_wrong_local_government_codes_are_rejected(code: str) -> None:
    assert not is_valid_municipality_code(code)


def test_a_slip_number_is_fiscal_year_serial_and_check_digit() -> None:
    assert make_slip_number(2026, 1) == SLIP_NUMBER
    assert is_valid_slip_number(SLIP_NUMBER)


@pytest.mark.parametrize("number", ["2600000000000016", "260000000000001", "26000000000000150"])
def test_slip_numbers_with_a_wrong_check_digit_or_length_are_rejected(number: str) -> None:
    assert not is_valid_slip_number(number)


def test_a_slip_serial_beyond_thirteen_digits_is_refused() -> None:
    with pytest.raises(ValueError):
        make_slip_number(2026, 10**13)
