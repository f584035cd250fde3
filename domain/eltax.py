"""eLTAX data an instalment carries: its eL番号, its eL-QR payload, and the additions within its amount.

The eL-QR's inner layout is given to the core system's vendor only (shared/domain): the
gateway never parses it. It stores the payload exactly as given and prints its UTF-8 bytes
as a QR code without an ECI header, so that the symbol decodes to exactly those bytes.

Payload rule (what a file may hand us):
- at most MAX_EL_QR_BYTES bytes in UTF-8 (the contract's limit; at level M that is a
  version 18 symbol at most, 33 mm square with its quiet zone at 0.339 mm a module);
- no control characters (C0, DEL, C1): a payload is one line of text, and a tab or line end
  would not survive the ward's CSV or fixed-width files anyway;
- no leading or trailing spaces: fixed-width files pad fields with spaces, so such spaces
  could not be told from padding;
- any other character, multibyte included (encoded as UTF-8).
"""
from __future__ import annotations

import re

MAX_EL_NUMBER_DIGITS = 32
MAX_EL_QR_BYTES = 512
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def el_number_problem(value: str) -> str | None:
    """Why `value` cannot be an eL番号 (digits as printed, up to 32), or None."""
    if not (value.isascii() and value.isdigit()):
        return f"must be digits only, got {value[:40]!r}"
    if len(value) > MAX_EL_NUMBER_DIGITS:
        return f"must be at most {MAX_EL_NUMBER_DIGITS} digits, got {len(value)}"
    return None


def el_qr_problem(payload: str) -> str | None:
    """Why `payload` cannot be printed as the eL-QR (see the module's rule), or None."""
    found = _CONTROL.search(payload)
    if found:
        return f"contains the control character U+{ord(found.group()):04X} at position {found.start() + 1}"
    if payload != payload.strip(" "):
        return "starts or ends with a space (fixed-width files could not keep it)"
    try:
        size = len(payload.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        return "is not valid Unicode text"
    if size > MAX_EL_QR_BYTES:
        return f"is {size} bytes in UTF-8, more than {MAX_EL_QR_BYTES}"
    return None


def additions_problem(amount: int, late_fee: int, dunning_fee: int) -> tuple[str, str] | None:
    """(field, why) when the additions (延滞金, 督促手数料) leave no principal within `amount`, or None."""
    if late_fee < 0 or dunning_fee < 0:
        return ("late_fee" if late_fee < 0 else "dunning_fee", "must not be negative")
    if late_fee + dunning_fee >= amount:
        field = "dunning_fee" if dunning_fee else "late_fee"
        return (field, f"late_fee {late_fee:,} + dunning_fee {dunning_fee:,} must be less than the amount "
                       f"{amount:,} (the principal would be {amount - late_fee - dunning_fee:,} yen)")
    return None


def principal(amount: int, late_fee: int, dunning_fee: int) -> int:
    """The principal (本税/本料) of a total `amount` that includes the additions."""
    return amount - late_fee - dunning_fee


def split_paid(amount: int, billed: int | None, late_fee: int, dunning_fee: int) -> tuple[int, int, int]:
    """(principal, late_fee, dunning_fee) of money `amount` recorded against an instalment billed `billed`.

    Money of exactly the billed amount (a receipt, or an overpayment or a reversal of that
    amount) splits as the instalment does; any other amount (part of one, unidentified money,
    a counter sale, an instalment since amended to another amount) is all principal, because
    which addition it would pay is not ours to decide. The three always add up to `amount`.
    """
    if billed is None or amount != billed or late_fee + dunning_fee >= amount:
        return amount, 0, 0
    return amount - late_fee - dunning_fee, late_fee, dunning_fee
