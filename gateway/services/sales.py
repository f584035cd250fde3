"""Sell certificates at a counter: one terminal payment per sale, no cash mixed in.

A sale and its payment are written and committed before the terminal checkout is
created; the terminal's outcome arrives by webhook or by polling and is recorded through
the same settlement as every other payment (gateway.services.payments), which moves the
sale to paid, cancelled, timed out or failed.
"""
from __future__ import annotations

import uuid
from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.base import (
    AdapterError,
    Capability,
    CheckoutRequest,
    PaymentAdapter,
    PermanentError,
    RetryableError,
    SettledPayment,
)
from domain.calendar import TOKYO
from domain.lifecycle import ATTEMPT, PAYMENT
from domain.matching import Booked, Settled, match
from gateway.db import transaction
from gateway.errors import Conflict, GatewayError, NotFound, ProviderRejected, ProviderUnavailable
from gateway.i18n import CODE_LABELS
from gateway.models import (
    Counter,
    FeeItem,
    FundType,
    Payment,
    PaymentAttempt,
    Refund,
    Sale,
    SaleLine,
    StaffUser,
    Terminal,
    on_ward,
)
from gateway.services.counters import counter_terminals
from gateway.services.events import record_event
from gateway.services.exceptions import raise_exceptions
from gateway.services.fee_items import catalogue
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import new_attempt_reference, other_wards_references, transition_attempt
from gateway.services.refunds import decide_refund, execute_refund, request_refund

# Payment types a counter terminal takes (Square Terminal API; providers.md), named as the code
# table names them (gateway.i18n), but for the short "QR" of the counter's buttons, day sheets and
# receipts (the usage report writes it out).
BRANDS = {**CODE_LABELS["tender"], "QR_CODE": _l("QR")}
# Brands whose payment can be voided the same day; transportation IC cannot be refunded at all.
SAME_DAY_VOIDABLE = frozenset({"FELICA_ID", "FELICA_QUICPAY", "QR_CODE", "CARD_PRESENT"})
MAX_QUANTITY = 20


@dataclass(frozen=True)
class SaleLineRequest:
    item_code: str
    quantity: int


def start_sale(session: Session, terminal_adapters: Mapping[str, PaymentAdapter], *, user: StaffUser,
               counter_code: str, terminal_id: int, lines: list[SaleLineRequest], brand: str,
               business_date: date) -> Sale:
    """Record the sale at today's fees and send its total to the counter's terminal.

    Raises ProviderUnavailable (the sale fails; start another) or ProviderRejected.
    """
    if brand not in BRANDS:
        raise GatewayError(f"unknown payment type {brand!r}", code="unknown_brand", status=422)
    chosen = [line for line in lines if line.quantity]
    if not chosen:
        raise GatewayError("choose at least one item", code="empty_sale", status=422)
    with transaction(session):
        counter, terminals = counter_terminals(session, user.municipality_id, counter_code)
        terminal = next((t for t in terminals if t.id == terminal_id), None)
        if terminal is None:
            raise NotFound(f"terminal {terminal_id} is not at counter {counter_code}", code="unknown_terminal")
        adapter = terminal_adapters.get(terminal.adapter)
        if adapter is None or not adapter.capabilities & Capability.TERMINAL:
            raise GatewayError(f"terminal adapter {terminal.adapter!r} is not configured", code="channel_unavailable",
                               status=503)
        prices = {e.code: e for e in catalogue(session, user.municipality_id, counter_code, business_date)}
        sale_lines = [_line(prices, line) for line in chosen]
        total = sum(line.amount for line in sale_lines)
        sale = Sale(municipality_id=user.municipality_id, counter_id=counter.id, terminal_id=terminal.id,
                    staff_user_id=user.id, brand=brand, total=total, status="waiting",
                    receipt_number=f"pending-{uuid.uuid4().hex}", business_date=business_date)
        session.add(sale)
        session.flush()
        sale.receipt_number = f"{counter.code.upper()}-{business_date:%Y%m%d}-{sale.id:06d}"
        for line in sale_lines:
            line.sale_id, line.municipality_id = sale.id, sale.municipality_id
        session.add_all(sale_lines)
        payment = Payment(municipality_id=user.municipality_id, sale_id=sale.id, channel="emoney",
                          status=PAYMENT.initial, amount=total, fee_amount=0)
        session.add(payment)
        session.flush()
        attempt = PaymentAttempt(payment_id=payment.id, municipality_id=user.municipality_id, adapter=adapter.name,
                                 status=ATTEMPT.initial,
                                 reference=new_attempt_reference(session, user.municipality_id), amount=total)
        session.add(attempt)
        session.flush()
        record_event(session, "sale.started", "sale", sale.id, municipality_id=user.municipality_id,
                     actor=user.username, data={"total": total, "brand": brand, "terminal": terminal.device_id,
                                                "items": {line.item_code: line.quantity for line in chosen}})
    _send_to_terminal(session, adapter, terminal, sale, attempt)
    return sale


def _line(prices: Mapping[str, Any], line: SaleLineRequest) -> SaleLine:
    entry = prices.get(line.item_code)
    if entry is None:
        raise GatewayError(f"{line.item_code!r} is not sold at this counter", code="unknown_item", status=422)
    if not 0 < line.quantity <= MAX_QUANTITY:
        raise GatewayError(f"quantity of {entry.name} must be 1 to {MAX_QUANTITY}", code="invalid_quantity",
                           status=422)
    return SaleLine(item_id=entry.item_id, fund_type_id=entry.fund_type_id, quantity=line.quantity,
                    unit_fee=entry.fee, amount=entry.fee * line.quantity)


def _send_to_terminal(session: Session, adapter: PaymentAdapter, terminal: Terminal, sale: Sale,
                      attempt: PaymentAttempt) -> None:
    request = CheckoutRequest(reference=attempt.reference, amount=sale.total,
                              description=f"証明書等手数料 {sale.receipt_number}", return_url="", cancel_url="",
                              idempotency_key=attempt.reference,
                              device_id=terminal.device_id, payment_type=sale.brand)
    try:
        checkout = adapter.create_checkout(request)
    except RetryableError as exc:
        transition_attempt(session, attempt.municipality_id, attempt.id, "lose_track", {"error": str(exc)[:200]})
        _mark(session, sale.municipality_id, sale.id, "failed")
        raise ProviderUnavailable("the terminal service is not answering; start the sale again") from exc
    except PermanentError as exc:
        transition_attempt(session, attempt.municipality_id, attempt.id, "fail", {"error": str(exc)[:200]})
        _mark(session, sale.municipality_id, sale.id, "failed")
        raise ProviderRejected(f"the terminal refused the payment: {exc}") from exc
    transition_attempt(session, attempt.municipality_id, attempt.id, "open", {}, provider_ref=checkout.provider_ref,
                       expires_at=checkout.expires_at)


def _mark(session: Session, municipality_id: int, sale_id: int, status: str) -> None:
    with transaction(session):
        sale = session.get(Sale, (sale_id, municipality_id), with_for_update=True, populate_existing=True)
        assert sale is not None
        sale.status = status


def sale_attempt(session: Session, municipality_id: int, sale_id: int) -> PaymentAttempt | None:
    """The sale's newest attempt at the terminal."""
    return session.scalar(select(PaymentAttempt).join(Payment, on_ward(PaymentAttempt, "payment_id", Payment))
                          .where(PaymentAttempt.municipality_id == municipality_id, Payment.sale_id == sale_id)
                          .order_by(PaymentAttempt.id.desc()).limit(1))


def follow_sale(session: Session, adapters: Mapping[str, PaymentAdapter], municipality_id: int, sale_id: int) -> Sale:
    """The ward's sale as it stands; while it waits, ask the terminal (the polling fallback to webhooks)."""
    waiting, adapter_name, provider_ref = _terminal_state(session, municipality_id, sale_id)
    if waiting and provider_ref:
        adapter = adapters.get(adapter_name or "")
        if adapter is not None:
            try:
                status = adapter.fetch_status(provider_ref)
            except AdapterError:
                return get_sale(session, municipality_id, sale_id)  # the screen asks again shortly
            settle_attempt(session, adapter.name, status, actor="counter:poll", municipality_id=municipality_id)
    return get_sale(session, municipality_id, sale_id)


def _terminal_state(session: Session, municipality_id: int, sale_id: int) -> tuple[bool, str | None, str | None]:
    """Whether the sale waits, and its attempt's adapter and provider ref; the read transaction ended
    (plain values: nothing reloads lazily, so no transaction is open while the terminal is asked)."""
    sale = get_sale(session, municipality_id, sale_id)
    attempt = sale_attempt(session, municipality_id, sale_id)
    state = (sale.status == "waiting", attempt.adapter if attempt else None, attempt.provider_ref if attempt else None)
    session.rollback()
    return state


def cancel_sale(session: Session, adapters: Mapping[str, PaymentAdapter], municipality_id: int, sale_id: int, *,
                actor: str) -> Sale:
    """Cancel the ward's sale still waiting at the terminal (refused once the buyer is at the device)."""
    waiting, adapter_name, provider_ref = _terminal_state(session, municipality_id, sale_id)
    if not waiting or not adapter_name or not provider_ref:
        sale = get_sale(session, municipality_id, sale_id)
        raise Conflict(f"sale {sale.receipt_number} is {sale.status}", code="sale_not_waiting")
    try:
        adapters[adapter_name].cancel(provider_ref)
    except PermanentError as exc:
        raise Conflict("the payment is under way on the terminal; let the resident finish or cancel there",
                       code="terminal_busy") from exc
    return follow_sale(session, adapters, municipality_id, sale_id)


def void_sale(session: Session, adapters: Mapping[str, PaymentAdapter], municipality_id: int, sale_id: int, *,
              supervisor: StaffUser, today: date) -> Sale:
    """Void a paid sale: the same day and where the brand allows it at once, else as a refund request.

    A same-day void is a full refund through the terminal provider, requested by the
    supervisor and carried out at once (the supervisor's decision is the second person's:
    the sale's own staff member asked for it). Otherwise accounting approves the request.
    """
    ward = municipality_id
    sale = get_sale(session, ward, sale_id)
    if sale.status != "paid":
        raise Conflict(f"sale {sale.receipt_number} is {sale.status}; only a paid sale is voided",
                       code="sale_not_paid")
    payment = session.scalar(select(Payment).where(Payment.municipality_id == ward, Payment.sale_id == sale_id))
    assert payment is not None
    seller = session.get(StaffUser, sale.staff_user_id)
    assert seller is not None
    refund = request_refund(session, ward, payment.id, payment.amount, reason=f"void of sale {sale.receipt_number}",
                            requested_by=seller.username)
    at_once = sale.business_date == today and sale.brand in SAME_DAY_VOIDABLE and seller.id != supervisor.id
    if at_once:
        decide_refund(session, ward, refund.id, approve=True, decided_by=supervisor.username)
    status = "voided" if at_once else "refund_requested"
    with transaction(session):  # decided: the sale says so before the provider is called
        locked = session.get(Sale, (sale_id, ward), with_for_update=True, populate_existing=True)
        assert locked is not None
        locked.status, locked.voided_by = status, supervisor.username
        record_event(session, f"sale.{status}", "sale", sale_id, municipality_id=sale.municipality_id,
                     actor=supervisor.username, data={"refund_id": refund.id, "amount": payment.amount})
    if at_once:
        try:
            execute_refund(session, adapters, ward, refund.id, actor=supervisor.username)
        except ProviderUnavailable:
            pass  # the refund stays processing; `kokin payments janitor` carries it out once Square answers
    return get_sale(session, ward, sale_id)


def get_sale(session: Session, municipality_id: int, sale_id: int) -> Sale:
    """The ward's sale; NotFound for another ward's."""
    sale = session.get(Sale, (sale_id, municipality_id), populate_existing=True)
    if sale is None:
        raise NotFound(f"sale {sale_id} does not exist", code="unknown_sale")
    return sale


def sale_lines(session: Session, municipality_id: int, sale_id: int) -> list[tuple[SaleLine, str]]:
    return [(line, name) for line, name in session.execute(
        select(SaleLine, FeeItem.name).join(FeeItem, on_ward(SaleLine, "item_id", FeeItem))
        .where(SaleLine.municipality_id == municipality_id, SaleLine.sale_id == sale_id).order_by(SaleLine.id))]


@dataclass
class DailyClose:
    """日計表: one business day's paid sales, by counter, terminal, item, fund type and brand."""

    business_date: date
    rows: list[dict[str, Any]]  # counter, terminal, item, fund, brand, count, quantity, amount
    by_terminal: dict[str, dict[str, int]]  # device id -> {sales, amount, settled_amount, settled}
    differences: list[dict[str, Any]]
    refunds: int  # yen voided or refund-requested that day
    raised: Tally[str]  # exceptions of those differences not recorded before, by kind


def daily_close(session: Session, municipality_id: int, business_date: date,
                settlements: Mapping[str, list[SettledPayment]], *, record: bool = True) -> DailyClose:
    """Sum the day's paid sales and compare them, terminal by terminal, with the provider's settlement report.

    `settlements` maps each terminal adapter's name to its settlement report for the day.
    Differences are raised as exceptions, once.
    """
    paid = ("paid", "voided", "refund_requested")
    rows = [dict(counter=c, terminal=t, item=i, fund=f, brand=b, sales=n, quantity=int(q), amount=int(a))
            for c, t, i, f, b, n, q, a in session.execute(
                select(Counter.name, Terminal.device_id, FeeItem.name, FundType.name, Sale.brand,
                       func.count(func.distinct(Sale.id)), func.sum(SaleLine.quantity), func.sum(SaleLine.amount))
                .join(SaleLine, on_ward(SaleLine, "sale_id", Sale)).join(FeeItem, on_ward(SaleLine, "item_id", FeeItem))
                .join(FundType, on_ward(SaleLine, "fund_type_id", FundType))
                .join(Counter, on_ward(Sale, "counter_id", Counter))
                .join(Terminal, on_ward(Sale, "terminal_id", Terminal))
                .where(Sale.municipality_id == municipality_id, Sale.business_date == business_date,
                       Sale.status.in_(paid))
                .group_by(Counter.name, Terminal.device_id, FeeItem.name, FundType.name, Sale.brand)
                .order_by(Counter.name, Terminal.device_id, FeeItem.name, Sale.brand))]
    ours = {a.reference: (s, a, t) for s, a, t in session.execute(
        select(Sale, PaymentAttempt, Terminal.device_id).join(Payment, on_ward(Payment, "sale_id", Sale))
        .join(PaymentAttempt, on_ward(PaymentAttempt, "payment_id", Payment) & (PaymentAttempt.status == "succeeded"))
        .join(Terminal, on_ward(Sale, "terminal_id", Terminal))
        .where(Sale.municipality_id == municipality_id, Sale.business_date == business_date))}
    by_terminal: dict[str, dict[str, int]] = {}
    for sale, _attempt, device in ours.values():
        figures = by_terminal.setdefault(device, Tally())
        figures["sales"] += 1
        figures["amount"] += sale.total
    # One provider account may serve several municipalities: leave out what another one's attempts made.
    # A reference names its ward; only those made before are looked up, across wards.
    others, unnamed = other_wards_references(session, municipality_id, [p.reference for r in settlements.values()
                                                                        for p in r if p.reference])
    if unnamed:
        others |= set(session.scalars(select(PaymentAttempt.reference)
                                      .join(Payment, on_ward(PaymentAttempt, "payment_id", Payment))
                                      .where(Payment.municipality_id != municipality_id, Payment.sale_id.is_not(None),
                                             PaymentAttempt.reference.in_(unnamed))))
    settled = {p.reference or p.provider_payment_id: p for report in settlements.values() for p in report
               if p.reference not in others}
    found = match([Booked(sale.id, "emoney", reference, sale.total, business_date)
                   for reference, (sale, _attempt, _device) in ours.items()],
                  [Settled(key, p.amount, p.settled_at.astimezone(TOKYO).date(), p.provider_payment_id)
                   for key, p in settled.items()])
    for booked, entry in found.matched + found.amount_mismatch:
        device = ours[booked.key][2]
        by_terminal[device]["settled"] += 1
        by_terminal[device]["settled_amount"] += entry.amount
    sale_and_device = {key: (sale, device) for key, (sale, _attempt, device) in ours.items()}
    differences = [_difference("missing_in_settlement", *sale_and_device[b.key], None)
                   for b in found.missing_in_settlement]
    differences += [_difference("amount_mismatch", *sale_and_device[b.key], s.amount) for b, s in found.amount_mismatch]
    differences += [dict(kind="missing_in_gateway", subject_key=f"settlement:{s.ref}", business_date=business_date,
                         amount=s.amount, details={"reference": s.key, "provider_payment_id": s.ref,
                                                   "payment_type": settled[s.key].payment_type})
                    for s in found.missing_in_gateway]
    raised: Tally[str] = Tally()
    if record:  # the nightly reconciliation records them; the screen only shows them (the day may go on)
        with transaction(session):
            raised = raise_exceptions(session, municipality_id, differences)
    refunded = session.scalar(select(func.coalesce(func.sum(Refund.amount), 0))
                              .join(Payment, on_ward(Refund, "payment_id", Payment))
                              .join(Sale, on_ward(Payment, "sale_id", Sale))
                              .where(Sale.municipality_id == municipality_id, Sale.business_date == business_date))
    return DailyClose(business_date, rows, {k: dict(v) for k, v in by_terminal.items()}, differences,
                      int(refunded or 0), raised)


def _difference(kind: str, sale: Sale, device: str, theirs: int | None) -> dict[str, Any]:
    ours = sale.total
    return dict(kind=kind, subject_key=f"sale:{sale.id}", business_date=sale.business_date, amount=ours,
                payment_id=None, details={"receipt_number": sale.receipt_number, "terminal": device,
                                          "recorded": ours, "settled": theirs, "brand": sale.brand})


def sales_of_day(session: Session, municipality_id: int, business_date: date) -> list[Sale]:
    return list(session.scalars(select(Sale).where(Sale.municipality_id == municipality_id,
                                                   Sale.business_date == business_date).order_by(Sale.id)))

