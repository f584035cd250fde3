"""The booking decision as a table: what money received for an instalment books, with no database."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.booking import Booking, Instalment, decide

DUE = date(2026, 6, 30)
DEADLINE = date(2026, 7, 10)
OPEN = Instalment(billed=12_300, due_date=DUE, store_deadline=DEADLINE)


def _with(**changes: object) -> Instalment:
    return Instalment(**{**OPEN.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(("amount", "paid_on", "instalment", "applied", "overpaid", "refund", "kept_as", "kinds"), [
    # paid as billed, on time: applied, nothing to see
    (12_300, DUE, OPEN, True, False, False, None, []),
    # late: booked all the same, raised once (the store deadline wins over the due date)
    (12_300, date(2026, 7, 1), OPEN, True, False, False, None, ["paid_after_due_date"]),
    (12_300, date(2026, 7, 11), OPEN, True, False, False, None, ["paid_after_store_deadline"]),
    # a second payment of a booked instalment: kept, its refund requested
    (12_300, DUE, _with(booked=True), False, True, True, "double_payment", ["double_payment"]),
    # ... whatever its amount: all of it is more than was asked
    (10_000, DUE, _with(booked=True), False, True, True, "double_payment", ["double_payment", "amount_mismatch"]),
    # an amount that differs from what the instalment asks now: kept for a person, no refund
    (12_000, DUE, OPEN, False, False, False, "amount_mismatch", ["amount_mismatch"]),
    (12_300, DUE, _with(billed=10_000), False, False, False, "amount_mismatch", ["amount_mismatch"]),
    # through a slip voided since (reissued): the instalment is booked, and a person is told
    (12_300, DUE, _with(slip_void=True), True, False, False, None, ["payment_on_void_slip"]),
    (12_300, DUE, _with(slip_void=True, booked=True), False, True, True, "double_payment",
     ["payment_on_void_slip", "double_payment"]),
    (9_000, date(2026, 7, 2), _with(slip_void=True), False, False, False, "amount_mismatch",
     ["payment_on_void_slip", "amount_mismatch", "paid_after_due_date"]),
    # closed by the core system: kept for it to apply (充当) or refund, never refunded here
    (12_300, DUE, _with(closed="paid_elsewhere"), False, False, False, "closed_slip", ["double_payment"]),
    (12_300, DUE, _with(closed="cancelled"), False, False, False, "closed_slip", ["payment_on_void_slip"]),
    (12_300, date(2026, 7, 11), _with(closed="cancelled", booked=True), False, False, False, "closed_slip",
     ["payment_on_void_slip", "paid_after_store_deadline"]),
    # no instalment to book to: unidentified money
    (12_300, DUE, None, False, False, False, "unidentified", ["unknown_slip"]),
    # a counter sale: what it asks, never late
    (300, date(2027, 1, 1), Instalment(billed=300), True, False, False, None, []),
])
def test_the_decision_table(amount: int, paid_on: date, instalment: Instalment | None, applied: bool, overpaid: bool,
                            refund: bool, kept_as: str | None, kinds: list[str]) -> None:
    booking = decide(amount, paid_on, instalment)
    assert (booking.applied, booking.overpaid, booking.refund, booking.kept_as, booking.kinds()) == (
        applied, overpaid, refund, kept_as, kinds)


def test_what_a_person_sees_says_by_how_much_and_how_late() -> None:
    mismatch = decide(12_000, date(2026, 7, 3), OPEN)
    assert [f.details for f in mismatch.flags] == [{"billed": 12_300, "paid": 12_000, "difference": -300},
                                                   {"due_date": "2026-06-30", "days_late": 3}]
    assert decide(1, DUE, None, unknown_reason="no slip 1 issue 0").flags[0].details == {
        "reason": "no slip 1 issue 0"}


@pytest.mark.parametrize("amount", [0, -1, True, 1.0, "100"])
def test_an_amount_that_is_not_a_positive_whole_number_of_yen_is_refused(amount: object) -> None:
    with pytest.raises(ValueError, match="positive whole number of yen"):
        decide(amount, DUE, OPEN)  # type: ignore[arg-type]


def test_an_unknown_reason_for_a_closed_instalment_is_refused() -> None:
    with pytest.raises(ValueError, match="closed"):
        decide(12_300, DUE, _with(closed="forgotten"))


@given(amount=st.integers(min_value=1, max_value=10**9), billed=st.integers(min_value=1, max_value=10**9),
       booked=st.booleans(), void=st.booleans(), closed=st.sampled_from([None, "paid_elsewhere", "cancelled"]),
       day=st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)))
def test_money_is_applied_or_kept_never_both_and_a_refund_only_for_a_double_payment(
        amount: int, billed: int, booked: bool, void: bool, closed: str | None, day: date) -> None:
    booking: Booking = decide(amount, day, _with(billed=billed, booked=booked, slip_void=void, closed=closed))
    assert booking.applied == (booking.kept_as is None)
    assert not (booking.applied and booking.overpaid)
    assert booking.refund == booking.overpaid == (booking.kept_as == "double_payment")
    assert booking.applied == (closed is None and amount == billed and not booked)
    assert len(booking.kinds()) == len(set(booking.kinds()))  # each kind at most once
