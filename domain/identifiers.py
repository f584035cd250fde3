"""Check digits and the identifiers built on them: municipality codes, slip numbers, attempt references.

Pure functions, no database: used by the ledger import, slip issuing, the agency imports that
decode a scanned barcode, the payments whose provider notifications name their ward, and the
pay links that name theirs.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable


def mod10_weight31(digits: str) -> int:
    """Return the JAN/EAN check digit of `digits` (weights 3, 1 from the right)."""
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"check digit needs digits only, got {digits!r}")
    weighted_3 = digits[-1::-2].encode("ascii")  # rightmost digit and every second one to its left
    weighted_1 = digits[-2::-2].encode("ascii")
    # Summing the ASCII codes and taking off "0" (48) per digit is several times faster
    # than int() per digit; slip issuing computes two check digits per slip.
    total = 3 * sum(weighted_3) + sum(weighted_1) - 48 * (3 * len(weighted_3) + len(weighted_1))
    return (10 - total % 10) % 10


def municipality_check_digit(code5: str) -> int:
    """Return the check digit of a 5-digit local government code (weights 6..2, mod 11)."""
    if len(code5) != 5 or not code5.isascii() or not code5.isdigit():
        raise ValueError(f"local government code needs 5 digits, got {code5!r}")
    total = sum(int(c) * w for c, w in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


def is_valid_municipality_code(code: str) -> bool:
    """Tell whether `code` is a 6-digit local government code with a correct check digit."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return False
    return municipality_check_digit(code[:5]) == int(code[5])


SLIP_NUMBER_LENGTH = 16


def make_slip_number(fiscal_year: int, serial: int) -> str:
    """Return the 16-digit slip number: fiscal year (2) + serial (13) + check digit.

    The serial is unique per municipality and fiscal year; the database enforces it.
    """
    if not 0 <= serial < 10**13:
        raise ValueError(f"slip serial out of range: {serial}")
    body = f"{fiscal_year % 100:02d}{serial:013d}"
    return body + str(mod10_weight31(body))


def is_valid_slip_number(number: str) -> bool:
    """Tell whether `number` has 16 digits ending in its own check digit."""
    if len(number) != SLIP_NUMBER_LENGTH or not number.isascii() or not number.isdigit():
        return False
    return mod10_weight31(number[:-1]) == int(number[-1])


# Our reference of a payment attempt, sent to its provider: "kk-<municipality code>-<30 hex digits>",
# so that a provider's notification names the ward it belongs to (docs/scaling.md). 40 characters
# of [0-9a-z-], 120 random bits: within every provider's limits (domain/providers.md and each
# adapter): Square's reference_id takes at most 40, PayPay's merchantPaymentId at most 64 of
# A-Z a-z 0-9 - _, Stripe's client_reference_id 200, and each idempotency key (Stripe 255,
# Square 64, PayPay 64) at least 40. References made before named no ward: "kk-<32 hex digits>".
ATTEMPT_REFERENCE_LENGTH = 40
_RANDOM_BYTES = 15
_ATTEMPT_REFERENCE = re.compile(r"kk-([0-9]{6})-[0-9a-f]{30}")


def make_attempt_reference(municipality_code: str) -> str:
    """Return a new attempt reference naming the ward `municipality_code` (6 digits, its check digit valid)."""
    if not is_valid_municipality_code(municipality_code):
        raise ValueError(f"not a local government code: {municipality_code!r}")
    return f"kk-{municipality_code}-{secrets.token_hex(_RANDOM_BYTES)}"


def ward_code_of_reference(reference: str) -> str | None:
    """Return the municipality code an attempt reference names, or None (made before, or not ours)."""
    found = _ATTEMPT_REFERENCE.fullmatch(reference)
    if found is None or not is_valid_municipality_code(found[1]):
        return None
    return found[1]


# A slip's pay token, the last part of the pay link its QR code carries (/pay/<token>):
# "<municipality code>-<22 URL-safe characters>", 128 random bits, so that the pay page finds the
# slip on its ward's node without asking every node (docs/scaling.md). 29 characters. Tokens made
# before named no ward: the 22 characters alone, and links printed with them stay valid.
_PAY_TOKEN = re.compile(r"([0-9]{6})-[A-Za-z0-9_-]{22}")
_WARDLESS_PAY_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")
_PAY_TOKEN_BYTES = 16


def pay_token_maker(municipality_code: str) -> Callable[[], str]:
    """Return a maker of new pay tokens of the ward, its code checked once (slip issuing makes thousands)."""
    if not is_valid_municipality_code(municipality_code):
        raise ValueError(f"not a local government code: {municipality_code!r}")
    prefix = f"{municipality_code}-"
    return lambda: prefix + secrets.token_urlsafe(_PAY_TOKEN_BYTES)


def ward_code_of_pay_token(token: str) -> str | None:
    """Return the municipality code a pay token names, or None (made before, or not a token of ours)."""
    found = _PAY_TOKEN.fullmatch(token)
    if found is None or not is_valid_municipality_code(found[1]):
        return None
    return found[1]


def is_wardless_pay_token(token: str) -> bool:
    """Tell whether `token` has the shape of a pay token made before tokens named their ward."""
    return _WARDLESS_PAY_TOKEN.fullmatch(token) is not None
