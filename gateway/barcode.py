"""The GS1-128 (AI 91) payment-slip barcode: build and parse the 44 digits.

Layout and check digit: shared/domain/payment-slip-barcode.md (GS1 Japan's guideline for
standard bill-payment barcodes). Pure functions; rendering lives in gateway.rendering.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from gateway.identifiers import is_valid_slip_number, mod10_weight31

APPLICATION_IDENTIFIER = "91"
BARCODE_LENGTH = 44
MAX_BARCODE_AMOUNT = 300_000  # stores and apps refuse slips above this
NO_DEADLINE = "999999"


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
    _require_digits(barcode.company_code, 6, "company code")
    _require_digits(barcode.client_code, 5, "client code")
    if not is_valid_slip_number(barcode.slip_number):
        raise BarcodeError(f"slip number {barcode.slip_number!r} has no valid check digit")
    if not 0 <= barcode.reissue <= 9:
        raise BarcodeError(f"reissue count must be 0-9, got {barcode.reissue}")
    if not 0 < barcode.amount <= MAX_BARCODE_AMOUNT:
        raise BarcodeError(
            f"amount {barcode.amount} yen cannot carry a barcode (limit {MAX_BARCODE_AMOUNT:,})"
        )
    if barcode.stamp_flag not in (0, 1):
        raise BarcodeError(f"stamp flag must be 0 or 1, got {barcode.stamp_flag}")
    deadline = (
        barcode.store_deadline.strftime("%y%m%d") if barcode.store_deadline else NO_DEADLINE
    )
    body = (
        APPLICATION_IDENTIFIER
        + barcode.company_code
        + barcode.client_code
        + barcode.slip_number
        + str(barcode.reissue)
        + deadline
        + str(barcode.stamp_flag)
        + f"{barcode.amount:06d}"
    )
    return body + str(mod10_weight31(body))


def is_valid(digits: str) -> bool:
    """Tell whether `digits` is 44 digits starting with AI 91 and ending in its check digit."""
    return (
        len(digits) == BARCODE_LENGTH
        and digits.isascii()
        and digits.isdigit()
        and digits.startswith(APPLICATION_IDENTIFIER)
        and mod10_weight31(digits[:-1]) == int(digits[-1])
    )


def decode(digits: str) -> SlipBarcode:
    """Parse 44 scanned digits; raise BarcodeError naming what is wrong.

    The deadline's century is taken as 20YY (slips are short-lived).
    """
    _require_digits(digits, BARCODE_LENGTH, "barcode")
    if not digits.startswith(APPLICATION_IDENTIFIER):
        raise BarcodeError(f"barcode must start with AI 91, got {digits[:2]!r}")
    if mod10_weight31(digits[:-1]) != int(digits[-1]):
        raise BarcodeError("barcode check digit does not match")
    slip_number = digits[13:29]
    if not is_valid_slip_number(slip_number):
        raise BarcodeError(f"slip number {slip_number} in the barcode has a bad check digit")
    raw_deadline = digits[30:36]
    deadline = None
    if raw_deadline != NO_DEADLINE:
        try:
            deadline = date(2000 + int(raw_deadline[:2]), int(raw_deadline[2:4]), int(raw_deadline[4:]))
        except ValueError as exc:
            raise BarcodeError(f"store deadline {raw_deadline} is not a date") from exc
    return SlipBarcode(
        company_code=digits[2:8],
        client_code=digits[8:13],
        slip_number=slip_number,
        reissue=int(digits[29]),
        store_deadline=deadline,
        stamp_flag=int(digits[36]),
        amount=int(digits[37:43]),
    )
