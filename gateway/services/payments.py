"""Pay a slip: open a payment and an attempt at a provider, and move attempts as they go.

Never holds a transaction across a provider call: the attempt is written and committed
first, the provider is called, and the outcome is recorded in a second transaction that
locks the attempt (SELECT ... FOR UPDATE). What the provider reports of the payment is
settled by `gateway.services.outcomes`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from adapters.base import CheckoutRequest, PaymentAdapter, PermanentError, RetryableError
from domain.calendar import business_date
from domain.channels import gateway_checkouts, paid_through_eltax
from domain.identifiers import make_attempt_reference, ward_code_of_reference
from domain.lifecycle import ATTEMPT, PAYMENT
from gateway.db import Statements, transaction, utcnow
from gateway.errors import (
    Conflict,
    GatewayError,
    NotFound,
    ProviderRejected,
    ProviderUnavailable,
    SlipExpired,
    SlipNotPayable,
)
from gateway.fees import system_fee
from gateway.models import Municipality, Payment, PaymentAttempt, Slip, table
from gateway.services.events import record_event

ONLINE_CHANNELS = ("card", "paypay")
_CLOSED_WORDS = {"paid_elsewhere": "paid through another channel", "cancelled": "cancelled"}


def adapters_by_channel(adapters: Mapping[str, PaymentAdapter],
                        channels: Mapping[str, str]) -> dict[str, PaymentAdapter]:
    """Map each online channel to the configured adapter that carries it (CHANNEL_ADAPTERS)."""
    return {channel: adapters[name] for channel, name in channels.items() if name in adapters}


@dataclass(frozen=True)
class StartedPayment:
    payment: Payment
    attempt: PaymentAttempt


def start_payment(session: Session, channel_adapters: Mapping[str, PaymentAdapter], *, municipality_id: int,
                  slip_number: str, channel: str, return_url: str, cancel_url: str,
                  fee_schedules: Mapping[str, Any], actor: str) -> StartedPayment:
    """Open a payment of the slip's latest issue through `channel` and a checkout at its provider.

    `channel_adapters` maps each online channel to the adapter that carries it.

    Raises ProviderUnavailable (retry later; the attempt is left `unknown` for the janitor)
    or ProviderRejected (permanent; the attempt failed, another may follow).
    """
    adapter = channel_adapters.get(channel)
    if channel not in ONLINE_CHANNELS or adapter is None:
        raise GatewayError(f"channel {channel!r} is not available online", code="channel_unavailable", status=422)
    with transaction(session):
        slip = _payable_slip(session, municipality_id, slip_number, channel)
        fee = system_fee(slip.amount, fee_schedules.get(channel))
        payment = Payment(municipality_id=municipality_id, slip_id=slip.id, assessment_id=slip.assessment_id,
                          channel=channel, status=PAYMENT.initial, amount=slip.amount, fee_amount=fee)
        session.add(payment)
        session.flush()
        attempt = PaymentAttempt(payment_id=payment.id, municipality_id=municipality_id, adapter=adapter.name,
                                 status=ATTEMPT.initial, reference=new_attempt_reference(session, municipality_id),
                                 amount=slip.amount + fee)
        session.add(attempt)
        session.flush()
        record_event(session, "payment.opened", "payment", payment.id, municipality_id=municipality_id,
                     data={"slip": slip.number, "channel": channel, "amount": slip.amount, "fee": fee}, actor=actor)
    request = CheckoutRequest(reference=attempt.reference, amount=attempt.amount,
                              description=f"納付書 {slip_number}", return_url=return_url,
                              cancel_url=cancel_url, idempotency_key=attempt.reference)
    try:
        checkout = adapter.create_checkout(request)
    except RetryableError as exc:
        transition_attempt(session, attempt.municipality_id, attempt.id, "lose_track", {"error": str(exc)[:200]})
        raise ProviderUnavailable(f"{channel} is not answering; try again shortly") from exc
    except PermanentError as exc:
        transition_attempt(session, attempt.municipality_id, attempt.id, "fail", {"error": str(exc)[:200]})
        raise ProviderRejected(f"{channel} refused the payment request") from exc
    transition_attempt(session, attempt.municipality_id, attempt.id, "open", {}, provider_ref=checkout.provider_ref,
                        redirect_url=checkout.redirect_url, qr_payload=checkout.qr_payload,
                        expires_at=checkout.expires_at)
    with transaction(session):  # read back, and end the read: no transaction is left open for the caller
        session.refresh(payment)
        session.refresh(attempt)
    return StartedPayment(payment, attempt)


def new_attempt_reference(session: Session, municipality_id: int) -> str:
    """A new reference for an attempt of the ward, naming the ward's code (domain.identifiers)."""
    municipality = session.get(Municipality, municipality_id)
    if municipality is None:
        raise NotFound(f"municipality {municipality_id} does not exist")
    return make_attempt_reference(municipality.code)


_municipalities = table(Municipality)
_WARD_OF_CODE = select(_municipalities.c.id).where(_municipalities.c.code == bindparam("p_code"))


def ward_of_reference(session: Session, reference: str | None) -> int | None:
    """The ward (municipality id) an attempt reference names, read in the caller's transaction; or None.

    A reference made before references named their ward (`kk-<hex>`), another party's, or one
    naming a code that is not a ward here, names none: its attempt is then found without its
    ward. The code is read from `municipalities` (a reference table, on every node) on every
    call, never from a copy kept in the process: a ward added is known at once.
    """
    code = None if reference is None else ward_code_of_reference(reference)
    if code is None:
        return None
    found = Statements(session).first(_WARD_OF_CODE, {"p_code": code})
    return None if found is None else int(found.id)


def other_wards_references(session: Session, municipality_id: int,
                           references: list[str]) -> tuple[set[str], list[str]]:
    """Split the references of a provider's report shared by wards: (those naming another ward of
    the service, those made before references named their ward). Neither is read from any ward's
    rows; only the second must be looked up, across wards (a report's few old references)."""
    codes: dict[str, int] = {code: id_ for code, id_ in session.execute(select(Municipality.code, Municipality.id))}
    others, unnamed = set(), []
    for reference in references:
        code = ward_code_of_reference(reference)
        if code is None:
            unnamed.append(reference)
        elif code in codes and codes[code] != municipality_id:
            others.add(reference)
    return others, unnamed


def _payable_slip(session: Session, municipality_id: int, number: str, channel: str) -> Slip:
    slip = session.scalar(select(Slip).where(Slip.municipality_id == municipality_id, Slip.number == number)
                          .order_by(Slip.reissue.desc()).limit(1))
    if slip is None:
        raise NotFound(f"slip {number} does not exist")
    closed = slip.assessment.closed_reason
    if slip.status == "closed" or closed is not None:  # the instalment's own state decides, whatever the sheet's
        why = _CLOSED_WORDS.get(closed or "", "closed")
        raise SlipNotPayable(f"slip {number} cannot be paid: its instalment was {why}",
                             details={"closed_reason": closed, "closed_on": _iso(slip.assessment.closed_on)})
    if slip.status != "issued":
        raise Conflict(f"slip {number} is {slip.status}", code=f"slip_{slip.status}")
    fund = slip.assessment.fund_type
    if paid_through_eltax(fund.channels):  # paid online at 地方税お支払サイト, never through our checkouts
        raise GatewayError(f"{fund.name} is paid online through eLTAX (地方税お支払サイト), not by {channel}",
                           code="channel_not_accepted", status=422, details={"pay_through": "eltax"})
    if is_expired(slip, business_today()):
        raise SlipExpired(f"slip {number} was payable until {slip.store_deadline}; ask the ward for a new slip",
                          details={"store_deadline": _iso(slip.store_deadline)})
    if channel not in gateway_checkouts(fund.channels):
        raise GatewayError(f"{fund.name} cannot be paid by {channel}", code="channel_not_accepted", status=422)
    return slip


def business_today() -> date:
    """Today's business date (Asia/Tokyo)."""
    return business_date(utcnow())


def is_expired(slip: Slip, today: date) -> bool:
    """Whether the slip is past its store deadline (支払期限) and so no longer payable online.

    The printed amount holds until that day inclusive (shared/domain, "Overdue slips"); after it
    延滞金 may have run, and only a new slip shows the right amount. A slip without a deadline
    (no barcode, or 999999) does not expire. A payment that arrives late anyway through an
    agency is still booked, and raised as late (domain.booking).
    """
    return slip.store_deadline is not None and today > slip.store_deadline


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def transition_attempt(session: Session, municipality_id: int, attempt_id: int, event: str, data: dict[str, Any],
                       **changes: Any) -> PaymentAttempt:
    """Apply one event to the ward's attempt in its own transaction (the attempt row locked)."""
    with transaction(session):
        attempt = _locked_attempt(session, (PaymentAttempt.municipality_id == municipality_id)
                                  & (PaymentAttempt.id == attempt_id))
        _apply_attempt_event(session, attempt, event, data, **changes)
    return attempt


def _locked_attempt(session: Session, condition: Any) -> PaymentAttempt:
    attempt = session.scalar(select(PaymentAttempt).where(condition).with_for_update())
    if attempt is None:
        raise NotFound("no such payment attempt")
    return attempt


def _apply_attempt_event(session: Session, attempt: PaymentAttempt, event: str, data: dict[str, Any],
                         **changes: Any) -> None:
    attempt.status = ATTEMPT.next(attempt.status, event)
    for name, value in changes.items():
        setattr(attempt, name, value)
    attempt.updated_at = utcnow()
    payment = session.get(Payment, (attempt.payment_id, attempt.municipality_id), with_for_update={"of": Payment},
                          populate_existing=True)
    assert payment is not None
    record_event(session, f"attempt.{event}", "payment_attempt", attempt.id, municipality_id=payment.municipality_id,
                 data={"adapter": attempt.adapter, "status": attempt.status, **data})
