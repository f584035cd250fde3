"""The demo's residents paying: card and PayPay through the sandbox simulators and webhooks."""
from __future__ import annotations

from typing import Any

import click
from flask import current_app
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.models import Payment, Refund, Slip, on_ward
from gateway.services.payments import ONLINE_CHANNELS, adapters_by_channel, business_today, start_payment
from gateway.services.refunds import decide_refund, execute_refund
from gateway.services.webhooks import receive_webhook

RETURN_URL = "http://127.0.0.1:5000/pay/done"


def pay_some_slips(session: Session, municipality_id: int) -> None:
    """Pay a few slips by card and PayPay, one of them twice, and refund the double payment."""
    ours = Payment.municipality_id == municipality_id
    if session.scalar(select(Payment.id).where(ours, Payment.channel.in_(ONLINE_CHANNELS)).limit(1)) is not None:
        click.echo("online payments were made by an earlier run; nothing changed")
        return
    adapters = current_app.extensions["kokin.adapters"]
    channels = adapters_by_channel(adapters, current_app.config["CHANNEL_ADAPTERS"])
    payable = or_(Slip.store_deadline.is_(None), Slip.store_deadline >= business_today())  # not past 支払期限
    slips = list(session.scalars(select(Slip.number).where(Slip.municipality_id == municipality_id,
                                                           Slip.status == "issued", Slip.barcode.is_not(None), payable)
                                 .order_by(Slip.id.desc()).limit(3)))
    session.rollback()
    if len(slips) < 3 or set(channels) != {"card", "paypay"}:
        click.echo("no unpaid slips or no sandbox adapters: payments skipped")
        return
    card, paypay, twice = slips
    _pay(session, channels, municipality_id, card, "card")
    _pay(session, channels, municipality_id, paypay, "paypay")
    opened = [_open(session, channels, municipality_id, twice, channel) for channel in ("card", "paypay")]
    for channel, attempt in opened:  # two family members paid the same slip
        _complete(session, channels[channel], attempt)
    _refund_double_payments(session, adapters, municipality_id)
    _summary(session, municipality_id)


def _open(session: Session, channels: dict[str, Any], municipality_id: int, number: str, channel: str) -> Any:
    started = start_payment(session, channels, municipality_id=municipality_id, slip_number=number,
                            channel=channel, return_url=RETURN_URL, cancel_url=RETURN_URL,
                            fee_schedules=current_app.config["FEE_SCHEDULES"], actor="demo")
    click.echo(f"slip {number}: {channel} checkout opened "
               f"({started.payment.amount:,} yen + fee {started.payment.fee_amount:,} yen)")
    return channel, started.attempt


def _pay(session: Session, channels: dict[str, Any], municipality_id: int, number: str, channel: str) -> None:
    _, attempt = _open(session, channels, municipality_id, number, channel)
    _complete(session, channels[channel], attempt)


def _complete(session: Session, adapter: Any, attempt: Any) -> None:
    """The resident pays on the provider's page; its notification reaches /webhooks/<adapter>."""
    simulator = adapter.simulator
    if adapter.name == "stripe":
        simulator.simulate_payment(attempt.provider_ref, "paid")
        deliveries = simulator.events_for(attempt.provider_ref, utcnow())
    else:
        simulator.simulate_payment(attempt.provider_ref, "COMPLETED")
        delivery = simulator.notification(attempt.provider_ref, sent_at=utcnow())
        deliveries = [(delivery.headers, delivery.body)]
    for headers, body in deliveries:
        outcome = receive_webhook(session, adapter, dict(headers), body, utcnow())
        click.echo(f"  {adapter.name} notification: {outcome}")


def _refund_double_payments(session: Session, adapters: Any, municipality_id: int) -> None:
    online = select(Refund.id).join(Payment, on_ward(Refund, "payment_id", Payment)).where(
        Refund.municipality_id == municipality_id, Refund.status == "requested",
        Payment.channel.in_(ONLINE_CHANNELS))  # agencies cannot refund: the ward does
    for refund_id in list(session.scalars(online)):
        decide_refund(session, municipality_id, refund_id, approve=True, decided_by="demo-accounting-2")
        refund = execute_refund(session, adapters, municipality_id, refund_id, actor="demo-accounting-2")
        click.echo(f"double payment refunded: {refund.amount:,} yen ({refund.status}, approved by a second person)")


def _summary(session: Session, municipality_id: int) -> None:
    ours = Payment.municipality_id == municipality_id
    applied = session.scalar(select(func.count()).where(ours, Payment.applied)) or 0
    overpaid = session.scalar(select(func.count()).where(ours, Payment.overpaid)) or 0
    revenue = session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(ours, Payment.applied)) or 0
    fees = session.scalar(select(func.coalesce(func.sum(Payment.fee_amount), 0)).where(ours)) or 0
    click.echo(f"payments: {applied} applied ({revenue:,} yen revenue), {overpaid} double payment(s); "
               f"system usage fees kept apart: {fees:,} yen")
