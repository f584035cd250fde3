"""How a fund is paid online: through the gateway's own checkouts, or through eLTAX.

A fund whose channels include `eltax` is paid online at 地方税お支払サイト with the eL-QR or
eL番号 printed on its slip (CONTRACT: "eLTAX (eL-QR) and overdue claims"); the gateway
then offers no card or PayPay checkout of its own for it, so that the resident meets one
way to pay online and the ward one stream of online receipts per fund. The pay page, the
payments API and the printed slip all ask this module.
"""
from __future__ import annotations

from collections.abc import Iterable

ELTAX = "eltax"
GATEWAY_CHECKOUTS = ("card", "paypay")  # the online channels the gateway itself opens a checkout for


def online_channels(fund_channels: Iterable[str]) -> tuple[str, ...]:
    """Return how a fund with `fund_channels` is paid online: ("eltax",), or the gateway checkouts it accepts."""
    channels = tuple(fund_channels)
    if ELTAX in channels:
        return (ELTAX,)
    return tuple(c for c in GATEWAY_CHECKOUTS if c in channels)


def gateway_checkouts(fund_channels: Iterable[str]) -> tuple[str, ...]:
    """Return the gateway's own checkouts (card, paypay) a fund offers: none for a fund paid through eLTAX."""
    return tuple(c for c in online_channels(fund_channels) if c in GATEWAY_CHECKOUTS)


def paid_through_eltax(fund_channels: Iterable[str]) -> bool:
    """Whether a fund is paid online through 地方税お支払サイト rather than the gateway."""
    return online_channels(fund_channels) == (ELTAX,)
