"""System usage fees charged to the payer on top of the amount (not public revenue).

A schedule is data: the fee up to a first band, then a fixed step per further band,
like the national local-tax payment site's card fee (40 yen up to 10,000 yen, then a
step per further 10,000 yen). A channel without a schedule charges nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def system_fee(amount: int, schedule: Mapping[str, Any] | None) -> int:
    """Return the fee in yen for paying `amount` yen under `schedule` (None: no fee)."""
    if not schedule:
        return 0
    first_band, first_fee = int(schedule["first_band"]), int(schedule["first_fee"])
    band, step = int(schedule["band"]), int(schedule["step"])
    if amount <= first_band:
        return first_fee
    extra_bands = -(-(amount - first_band) // band)  # ceiling division, integers only
    return first_fee + extra_bands * step
