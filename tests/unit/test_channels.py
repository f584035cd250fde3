"""How a fund is paid online: the gateway's own checkouts, or eLTAX instead of them."""
from __future__ import annotations

from domain.channels import gateway_checkouts, online_channels, paid_through_eltax


def test_a_fund_with_eltax_is_paid_online_through_eltax_only() -> None:
    assert online_channels(["agency", "eltax"]) == ("eltax",)
    assert online_channels(["agency", "card", "paypay", "eltax"]) == ("eltax",)  # eLTAX replaces our checkouts
    assert gateway_checkouts(["agency", "card", "paypay", "eltax"]) == ()
    assert online_channels(["paypay", "agency", "card"]) == ("card", "paypay")
    assert online_channels(["emoney", "card"]) == ("card",) and online_channels(["agency"]) == ()
    assert paid_through_eltax(["agency", "eltax"]) and not paid_through_eltax(["agency", "card"])
