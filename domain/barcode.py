"""The GS1-128 (AI 91) payment-slip barcode: build and parse the 44 digits.

Layout and check digit: shared/domain/payment-slip-barcode.md (GS1 Japan's guideline for
standard bill-payment barcodes). Pure functions; rendering lives in gateway.rendering.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from domain.identifiers import is_valid_slip_number, mod10_weight31

APPLICATION_IDENTIFIER = "91"
BARCODE_LENGTH = 44
MAX_BARCODE_AMOUNT = 300_000  # stores and apps refuse slips above this
NO_DEADLINE = "999999"
# Where each field sits in the 44 digits (the guideline's layout), for readers that need one
# field of many barcodes without decoding them all.
COMPANY_CODE_FIELD = slice(2, 8)
CLIENT_CODE_FIELD = slice(8, 13)
SLIP_NUMBER_FIELD = slice(13, 29)
REISSUE_FIELD = 29
STORE_DEADLINE_FIELD = slice(30, 36)
STAMP_FLAG_FIELD = 36
AMOUNT_FIELD = slice(37, 43)


class BarcodeError(ValueError):
    """The 44 digits are malformed: wrong length, check digit or field."""


@dataclass(frozen=True)
class SlipBarcode:
    company_code: str  # 6 digits
    client_code: str  # 5 digits
    slip_number: str  # 16 digits, with its own check digit
    reissue: int  # 0-9
    store_deadline: date | None  # None = 999999
    amount: int  # yen
    stamp_flag: int = 0  # always 0 for public funds

    def digits(self) -> str:
        """Return the 44 digits, check digit included."""
        return encode(self)


def _require_digits(value: str, length: int, field: str) -> None:
    if len(value) != length or not value.isascii() or not value.isdigit():
        raise BarcodeError(f"{field} must be {length} digits, got {value!r}")


def encode(barcode: SlipBarcode) -> str:
    """Return the 44 digits for `barcode`; raise BarcodeError for values it cannot carry."""
    prefix = issuer_prefix(barcode.company_code, barcode.client_code)
    if not is_valid_slip_number(barcode.slip_number):
        raise BarcodeError(f"slip number {barcode.slip_number!r} has no valid check digit")
    return compose(prefix, barcode.slip_number, barcode.reissue, barcode.store_deadline, barcode.amount,
                   barcode.stamp_flag)


def issuer_prefix(company_code: str, client_code: str) -> str:
    """Return the first 13 digits shared by all of an issuer's barcodes: AI, company and client code.

    Raises BarcodeError if either code is malformed.
    """
    _require_digits(company_code, 6, "company code")
    _require_digits(client_code, 5, "client code")
    return APPLICATION_IDENTIFIER + company_code + client_code


def compose(prefix: str, slip_number: str, reissue: int, store_deadline: date | None, amount: int,
            stamp_flag: int = 0) -> str:
    """Return the 44 digits from an issuer_prefix() and a slip number already known to be valid.

    The bulk path of slip issuing, which made the slip number itself: checking its check
    digit again for every slip cost more than building the barcode. The other fields are
    still checked (cheaply); a caller holding unchecked values uses encode().
    """
    if not 0 <= reissue <= 9:
        raise BarcodeError(f"reissue count must be 0-9, got {reissue}")
    if not 0 < amount <= MAX_BARCODE_AMOUNT:
        raise BarcodeError(f"amount {amount} yen cannot carry a barcode (limit {MAX_BARCODE_AMOUNT:,})")
    if stamp_flag not in (0, 1):
        raise BarcodeError(f"stamp flag must be 0 or 1, got {stamp_flag}")
    body = f"{prefix}{slip_number}{reissue}{_deadline_digits(store_deadline)}{stamp_flag}{amount:06d}"
    return body + str(mod10_weight31(body))


@lru_cache(maxsize=1024)
def _deadline_digits(store_deadline: date | None) -> str:
    # Cached: a year's slips share a few dozen deadlines, and strftime is slow.
    return store_deadline.strftime("%y%m%d") if store_deadline else NO_DEADLINE


def is_valid(digits: str) -> bool:
    """Tell whether `digits` is 44 digits starting with AI 91 and ending in its check digit."""
    return problem(digits) is None


def problem(digits: str) -> str | None:
    """Say what is wrong with 44 scanned digits (length, AI 91, check digit), or None if nothing."""
    if len(digits) != BARCODE_LENGTH or not digits.isascii() or not digits.isdigit():
        return f"must be {BARCODE_LENGTH} digits, got {len(digits)}"
    if not digits.startswith(APPLICATION_IDENTIFIER):
        return f"application identifier must be {APPLICATION_IDENTIFIER}, got {digits[:2]}"
    expected = mod10_weight31(digits[:-1])
    if int(digits[-1]) != expected:
        return f"check digit is {digits[-1]}, expected {expected}"
    return None


def decode(digits: str) -> SlipBarcode:
    """Parse 44 scanned digits; raise BarcodeError naming what is wrong.

    The deadline's century is taken as 20YY (slips are short-lived).
    """
    _require_digits(digits, BARCODE_LENGTH, "barcode")
    if not digits.startswith(APPLICATION_IDENTIFIER):
        raise BarcodeError(f"barcode must start with AI 91, got {digits[:2]!r}")
    if mod10_weight31(digits[:-1]) != int(digits[-1]):
        raise BarcodeError("barcode check digit does not match")
    slip_number = digits[SLIP_NUMBER_FIELD]
    if not is_valid_slip_number(slip_number):
        raise BarcodeError(f"slip number {slip_number} in the barcode has a bad check digit")
    raw_deadline = digits[STORE_DEADLINE_FIELD]
    deadline = None
    if raw_deadline != NO_DEADLINE:
        try:
            deadline = date(2000 + int(raw_deadline[:2]), int(raw_deadline[2:4]), int(raw_deadline[4:]))
        except ValueError as exc:
            raise BarcodeError(f"store deadline {raw_deadline} is not a date") from exc
    return SlipBarcode(
        company_code=digits[COMPANY_CODE_FIELD],
        client_code=digits[CLIENT_CODE_FIELD],
        slip_number=slip_number,
        reissue=int(digits[REISSUE_FIELD]),
        store_deadline=deadline,
        stamp_flag=int(digits[STAMP_FLAG_FIELD]),
        amount=int(digits[AMOUNT_FIELD]),
    )
