"""Matching is pure: records in, matches and exceptions out; the rules are data."""
from __future__ import annotations

from datetime import date

import pytest

from domain.matching import Booked, Settled, final_due_by, match, remittance_finding, rules

DAY = date(2026, 7, 1)


def _booked(pid: int, key: str, amount: int, channel: str = "card") -> Booked:
    return Booked(pid, channel, key, amount, DAY)


def test_matching_pairs_on_the_key_and_sorts_out_every_difference() -> None:
    found = match([_booked(1, "a", 1_000), _booked(2, "b", 2_000), _booked(3, "c", 3_000), _booked(4, "d", 4_000)],
                  [Settled("a", 1_000, DAY, "p-a"), Settled("b", 2_000, DAY, "p-b"), Settled("d", 3_990, DAY, "p-d"),
                   Settled("z", 500, DAY, "p-z")])

    assert [(b.key, s.ref) for b, s in found.matched] == [("a", "p-a"), ("b", "p-b")]
    assert [b.key for b, _ in found.amount_mismatch] == ["d"]
    assert [b.key for b in found.missing_in_settlement] == ["c"]
    assert [s.ref for s in found.missing_in_gateway] == ["p-z"]


def test_a_settlement_paid_net_of_a_fee_is_an_amount_mismatch_not_a_match() -> None:
    found = match([_booked(1, "a", 1_000)], [Settled("a", 950, DAY, "p")])
    assert found.matched == [] and len(found.amount_mismatch) == 1


@pytest.mark.parametrize(("expected", "received", "payments", "fee", "finding"), [
    (10_000, 10_000, 3, 60, None),
    (10_000, 9_820, 3, 60, "fee_netted"),
    (10_000, 9_000, 3, 60, "remittance_mismatch"),
    (10_000, 9_820, 3, None, "remittance_mismatch"),
    (10_000, 10_100, 3, 60, "remittance_mismatch"),  # more than expected is a difference too
])
def test_a_grouped_deposit_is_complete_net_of_fees_or_different(expected: int, received: int, payments: int,
                                                                 fee: int | None, finding: str | None) -> None:
    assert remittance_finding(expected, received, payments, fee) == finding


def test_every_channel_has_an_exact_amount_rule_and_a_settlement_window() -> None:
    table = rules()
    assert set(table) == {"agency", "eltax", "emoney", "card", "paypay"}
    assert all(rule.amount == "exact" and rule.settle_within_days >= 0 for rule in table.values())
    assert table["agency"].remittance == table["eltax"].remittance == "grouped"


@pytest.mark.parametrize(
    ("paid_on", "due_by"),
    [
        (date(2026, 7, 1), date(2026, 7, 15)),  # ten business days: two weekends in between
        (date(2026, 12, 25), date(2027, 1, 15)),  # the year-end closure and Coming of Age Day do not count
    ],
)
def test_a_store_payment_s_final_report_is_due_the_agency_rule_s_business_days_later(paid_on: date,
                                                                                      due_by: date) -> None:
    assert rules()["agency"].settle_within_days == 10
    assert final_due_by(paid_on) == due_by
