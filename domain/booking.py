"""What money received for an instalment books: the one rule every channel follows.

A card or PayPay notification, a collection agency's 速報 or 確報, a counter sale, and
(next) the core system's status feed and eLTAX payment data all ask the same question
when money arrives: is it applied to the instalment, or kept apart, and what must a
person see? `decide` answers it over plain values, with no database: the callers read
the instalment under its lock, call `decide`, and record what it says.

The rules (contract: the exception kinds; ward-interchange: every yen is kept):
- Money for no known instalment is kept as unidentified (`unknown_slip`).
- An instalment closed by the core system (paid elsewhere, cancelled) takes no more
  money: it is kept, not applied (`double_payment` when it was paid elsewhere,
  `payment_on_void_slip` when the claim was cancelled); the core system decides 充当 or
  還付, so no refund is started here.
- An instalment already booked: the money, whatever its amount, is an overpayment
  (`double_payment`, and `amount_mismatch` too when it differs), kept, and its refund is
  requested (a second person approves it).
- An amount that differs from what the instalment asks now is kept, not applied
  (`amount_mismatch`): a person decides.
- Otherwise the money is applied, whichever of the instalment's slips it came through;
  through a slip voided since (reissued) it is applied and raised (`payment_on_void_slip`).
- Paid after the slip's store deadline (支払期限) or, failing that, after its due date
  (納期限) is raised as late (`paid_after_store_deadline` / `paid_after_due_date`) but
  booked all the same: the payment date is recorded faithfully, interest is not computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

CLOSED_REASONS = ("paid_elsewhere", "cancelled")


@dataclass(frozen=True)
class Instalment:
    """What is known of an instalment when money arrives for it (read under its lock).

    `billed`: what the instalment asks now, in yen. `due_date` / `store_deadline`: of the
    slip the money came through (None: nothing can be late, as for a counter sale).
    `slip_void`: that slip has been voided since it was issued (reissued). `closed`: why
    the core system closed the instalment (one of CLOSED_REASONS), None while it is open.
    `booked`: a payment is already applied to it.
    """

    billed: int
    due_date: date | None = None
    store_deadline: date | None = None
    slip_void: bool = False
    closed: str | None = None
    booked: bool = False


@dataclass(frozen=True)
class Flag:
    """An exception for a person: its contract kind and what it should show."""

    kind: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Booking:
    """What a payment books.

    `applied`: the instalment is paid by it. `overpaid`: it is a second payment of a booked
    instalment, its refund requested (`refund`). `kept_as`: why money that is not applied
    is kept (`double_payment`, `amount_mismatch`, `payment_on_void_slip`, `closed_slip`,
    `unidentified`), None when applied. `flags`: what a person must see.
    """

    applied: bool
    overpaid: bool = False
    refund: bool = False
    kept_as: str | None = None
    flags: tuple[Flag, ...] = ()

    def kinds(self) -> list[str]:
        return [flag.kind for flag in self.flags]


def decide(amount: int, paid_on: date, instalment: Instalment | None, *, unknown_reason: str = "") -> Booking:
    """Book `amount` yen paid on `paid_on` (Asia/Tokyo) against `instalment` (None: not found)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amount must be a positive whole number of yen, not {amount!r}")
    if instalment is None:
        return Booking(applied=False, kept_as="unidentified",
                       flags=(Flag("unknown_slip", {"reason": unknown_reason or "no such slip"}),))
    late = _lateness(paid_on, instalment)
    if instalment.closed is not None:
        return Booking(applied=False, kept_as="closed_slip", flags=(_closed_flag(instalment.closed), *late))
    void = (Flag("payment_on_void_slip", {"reason": "paid with a slip that was reissued or voided",
                                          "slip_status": "void"}),) if instalment.slip_void else ()
    difference = amount - instalment.billed
    mismatch = (Flag("amount_mismatch", {"billed": instalment.billed, "paid": amount,
                                         "difference": difference}),) if difference else ()
    if instalment.booked:  # all of it is more than was asked, whatever its amount
        return Booking(applied=False, overpaid=True, refund=True, kept_as="double_payment", flags=(*void, Flag(
            "double_payment", {"reason": "the instalment was already paid; a refund is requested"}), *mismatch, *late))
    if mismatch:
        return Booking(applied=False, kept_as="amount_mismatch", flags=(*void, *mismatch, *late))
    return Booking(applied=True, flags=(*void, *late))


def _lateness(paid_on: date, instalment: Instalment) -> tuple[Flag, ...]:
    deadline, due = instalment.store_deadline, instalment.due_date
    if deadline is not None and paid_on > deadline:
        return (Flag("paid_after_store_deadline", {"store_deadline": deadline.isoformat()}),)
    if due is not None and paid_on > due:
        return (Flag("paid_after_due_date", {"due_date": due.isoformat(), "days_late": (paid_on - due).days}),)
    return ()


def _closed_flag(reason: str) -> Flag:
    if reason not in CLOSED_REASONS:
        raise ValueError(f"unknown reason an instalment is closed: {reason!r}")
    if reason == "paid_elsewhere":
        return Flag("double_payment", {"reason": "the instalment was paid through another channel; the money is "
                                                 "kept for the core system to apply or refund"})
    return Flag("payment_on_void_slip", {"reason": "the claim was cancelled; the money is kept for the core "
                                                   "system to apply or refund", "slip_status": "closed"})
