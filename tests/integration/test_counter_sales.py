"""Counter sales against the real database and the sandbox Square Terminal.

A sale is priced from the fee catalogue, sent to the counter's terminal, and settled by
webhook or by polling in either order; residents cancel or walk away; staff cancel, void
and close the day against Square's settlement report.
"""
from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.base import Outcome, PaymentStatus, SettledPayment
from adapters.square import SquareAdapter
from gateway.errors import GatewayError
from gateway.models import (
    Event,
    FeePrice,
    Payment,
    PaymentAttempt,
    ReceiptRecord,
    ReconException,
    Refund,
    Sale,
    SaleLine,
    StaffUser,
    WebhookDelivery,
)
from gateway.services import sales as sales_service
from gateway.services.counters import counter_terminals
from gateway.services.fee_items import fee_on, set_fee
from gateway.services.outcomes import settle_attempt
from gateway.services.sales import BRANDS, SaleLineRequest, cancel_sale, daily_close, follow_sale, start_sale, void_sale
from gateway.services.staff_accounts import create_user
from gateway.services.webhooks import receive_webhook
from tests.rows import by_id

BACKEND = os.environ.get("KOKIN_TEST_DATABASE", "sqlite")
CODE = "131075"
PASSWORD = "counter-pass-2026"  # noqa: S105 - throwaway test accounts
DEVICE = "sandbox-device-resident-1"
TOKYO = ZoneInfo("Asia/Tokyo")
TODAY = datetime.now(TOKYO).date()  # the business day the simulator's settlement report uses
ORDER = [SaleLineRequest("juminhyo", 2), SaleLineRequest("inkan", 1)]  # 2 x 300 + 1 x 300 yen today


@pytest.fixture
def adapters(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return app.extensions["kokin.adapters"]  # type: ignore[no-any-return]


@pytest.fixture
def square(adapters: dict[str, Any]) -> SquareAdapter:
    adapter = adapters["square"]
    assert adapter.simulator is not None, "the test app runs Square in sandbox mode"
    return adapter  # type: ignore[no-any-return]


@pytest.fixture
def clerk(session: Session) -> StaffUser:
    return create_user(session, CODE, "clerk", "counter_staff", PASSWORD, counter_code="resident", actor="test")


@pytest.fixture
def supervisor(session: Session) -> StaffUser:
    return create_user(session, CODE, "super", "counter_supervisor", PASSWORD, counter_code="resident", actor="test")


def _terminal_id(session: Session, user: StaffUser, counter: str = "resident") -> int:
    _, terminals = counter_terminals(session, user.municipality_id, counter)
    session.rollback()
    return terminals[0].id


def _sell(session: Session, adapters: dict[str, Any], user: StaffUser, *, brand: str = "FELICA_ID",
          lines: list[SaleLineRequest] | None = None, business_date: date = TODAY) -> Sale:
    return start_sale(session, adapters, user=user, counter_code="resident", terminal_id=_terminal_id(session, user),
                      lines=lines or ORDER, brand=brand, business_date=business_date)


def _attempt(session: Session, sale_id: int) -> PaymentAttempt:
    attempt = session.scalar(select(PaymentAttempt).join(Payment, Payment.id == PaymentAttempt.payment_id)
                             .where(Payment.sale_id == sale_id).order_by(PaymentAttempt.id.desc()).limit(1))
    assert attempt is not None and attempt.provider_ref
    session.rollback()
    return attempt


def _pay_at_device(square: SquareAdapter, checkout_id: str) -> None:
    assert square.simulator is not None
    square.simulator.simulate_device(checkout_id, "start")
    assert square.simulator.simulate_device(checkout_id, "complete") == "COMPLETED"


def _completed_delivery(square: SquareAdapter, checkout_id: str) -> tuple[dict[str, str], bytes]:
    assert square.simulator is not None
    headers, body = square.simulator.events_for(checkout_id, datetime.now(UTC))[-1]
    assert b'"status":"COMPLETED"' in body
    return headers, body


def _events(session: Session, kind: str, sale_id: int) -> int:
    count = session.scalar(select(func.count()).select_from(Event)
                           .where(Event.kind == kind, Event.subject_type == "sale",
                                  Event.subject_id == str(sale_id)))
    session.rollback()
    return int(count or 0)


def _payment(session: Session, sale_id: int) -> Payment:
    payment = session.scalar(select(Payment).where(Payment.sale_id == sale_id).execution_options(
        populate_existing=True))
    assert payment is not None
    return payment


def _paid_sale(session: Session, adapters: dict[str, Any], square: SquareAdapter, user: StaffUser, *,
               by_webhook: bool = False, **kwargs: Any) -> Sale:
    sale = _sell(session, adapters, user, **kwargs)
    checkout_id = _attempt(session, sale.id).provider_ref or ""
    _pay_at_device(square, checkout_id)
    if by_webhook:
        headers, body = _completed_delivery(square, checkout_id)
        assert receive_webhook(session, square, headers, body, datetime.now(UTC)) == "applied"
    sale = follow_sale(session, adapters, sale.municipality_id, sale.id)
    assert sale.status == "paid"
    return sale


# -- starting a sale ----------------------------------------------------------------------------


def test_a_sale_is_priced_at_todays_fees_and_sent_to_the_counters_terminal(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)

    assert sale.total == 900 and sale.status == "waiting" and sale.brand == "FELICA_ID"
    lines = session.scalars(select(SaleLine).where(SaleLine.sale_id == sale.id).order_by(SaleLine.id)).all()
    assert [(line.quantity, line.unit_fee, line.amount) for line in lines] == [(2, 300, 600), (1, 300, 300)]
    attempt = _attempt(session, sale.id)
    assert attempt.status == "pending" and attempt.amount == 900 and attempt.adapter == "square"
    assert square.simulator is not None
    checkout = square.simulator.checkout(attempt.provider_ref or "")
    assert checkout["amount_money"] == {"amount": 900, "currency": "JPY"}
    assert checkout["device_options"]["device_id"] == DEVICE
    assert checkout["payment_type"] == "FELICA_ID" and checkout["reference_id"] == attempt.reference
    assert checkout["status"] == "PENDING"
    assert follow_sale(session, adapters, sale.municipality_id, sale.id).status == "waiting"  # nobody at the device yet


# -- webhook and polling, in either order ---------------------------------------------------------


def test_a_webhook_before_any_poll_pays_the_sale_and_a_redelivery_is_a_duplicate(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)
    checkout_id = _attempt(session, sale.id).provider_ref or ""
    _pay_at_device(square, checkout_id)
    headers, body = _completed_delivery(square, checkout_id)

    assert receive_webhook(session, square, headers, body, datetime.now(UTC)) == "applied"
    assert sales_service.get_sale(session, sale.municipality_id, sale.id).status == "paid"
    payment = _payment(session, sale.id)
    assert payment.status == "succeeded" and payment.applied and payment.amount == 900
    assert _attempt(session, sale.id).status == "succeeded"

    assert follow_sale(session, adapters, sale.municipality_id,
                       sale.id).status == "paid"  # the later poll changes nothing
    assert receive_webhook(session, square, headers, body, datetime.now(UTC)) == "duplicate"
    assert _events(session, "sale.paid", sale.id) == 1
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


def test_a_poll_before_the_webhook_pays_the_sale_once(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)
    checkout_id = _attempt(session, sale.id).provider_ref or ""
    _pay_at_device(square, checkout_id)

    assert follow_sale(session, adapters, sale.municipality_id, sale.id).status == "paid"
    headers, body = _completed_delivery(square, checkout_id)
    assert receive_webhook(session, square, headers, body, datetime.now(UTC)) in ("unchanged", "duplicate")
    assert receive_webhook(session, square, headers, body, datetime.now(UTC)) == "duplicate"

    assert sales_service.get_sale(session, sale.municipality_id, sale.id).status == "paid"
    payment = _payment(session, sale.id)
    assert payment.status == "succeeded" and payment.applied
    assert _events(session, "sale.paid", sale.id) == 1


def test_the_webhook_endpoint_pays_a_sale(app, client, session: Session, adapters: dict[str, Any],  # type: ignore[no-untyped-def]
                                          square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)
    checkout_id = _attempt(session, sale.id).provider_ref or ""
    _pay_at_device(square, checkout_id)
    headers, body = _completed_delivery(square, checkout_id)

    response = client.post("/webhooks/square", data=body, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"received": "applied"}
    assert sales_service.get_sale(session, sale.municipality_id, sale.id).status == "paid"
    tampered = client.post("/webhooks/square", data=body.replace(b"900", b"100"), headers=headers)
    assert tampered.status_code == 400


# -- the resident at the device -----------------------------------------------------------------


def test_the_resident_cancelling_on_the_device_cancels_the_sale(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)
    assert square.simulator is not None
    square.simulator.simulate_device(_attempt(session, sale.id).provider_ref or "", "cancel")
    assert follow_sale(session, adapters, sale.municipality_id, sale.id).status == "cancelled"
    assert _payment(session, sale.id).applied is False


def test_a_terminal_time_out_times_the_sale_out_and_a_late_success_still_pays_it(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)
    checkout_id = _attempt(session, sale.id).provider_ref or ""
    assert square.simulator is not None
    square.simulator.simulate_device(checkout_id, "timeout")
    assert follow_sale(session, adapters, sale.municipality_id, sale.id).status == "timed_out"
    assert _attempt(session, sale.id).status == "expired"

    # The simulator cannot complete a checkout it timed out; Square's late report is played here.
    late = PaymentStatus(checkout_id, Outcome.SUCCEEDED, amount=900, paid_at=datetime.now(UTC),
                         raw_status="COMPLETED")
    settle_attempt(session, "square", late, actor="test:late")

    assert sales_service.get_sale(session, sale.municipality_id, sale.id).status == "paid"  # money taken is never lost
    payment = _payment(session, sale.id)
    assert payment.status == "succeeded" and payment.applied
    assert _events(session, "sale.paid", sale.id) == 1


@pytest.mark.parametrize("brand", sorted(BRANDS))
def test_a_sale_of_every_brand_is_paid_by_polling(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser, brand: str) -> None:
    sale = _paid_sale(session, adapters, square, clerk, brand=brand)
    attempt = _attempt(session, sale.id)
    assert attempt.status == "succeeded" and attempt.card_brand == brand
    assert _payment(session, sale.id).status == "succeeded"


# -- staff cancel ---------------------------------------------------------------------------------


def test_cancelling_a_waiting_sale_cancels_the_checkout_at_square(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)
    checkout_id = _attempt(session, sale.id).provider_ref or ""

    assert cancel_sale(session, adapters, sale.municipality_id, sale.id, actor="clerk").status == "cancelled"
    assert square.simulator is not None
    checkout = square.simulator.checkout(checkout_id)
    assert (checkout["status"], checkout["cancel_reason"]) == ("CANCELED", "SELLER_CANCELED")
    with pytest.raises(GatewayError) as again:
        cancel_sale(session, adapters, sale.municipality_id, sale.id, actor="clerk")
    assert again.value.code == "sale_not_waiting"


def test_cancelling_while_the_resident_is_at_the_device_is_refused(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    sale = _sell(session, adapters, clerk)
    checkout_id = _attempt(session, sale.id).provider_ref or ""
    assert square.simulator is not None
    square.simulator.simulate_device(checkout_id, "start")

    with pytest.raises(GatewayError) as refused:
        cancel_sale(session, adapters, sale.municipality_id, sale.id, actor="clerk")
    assert refused.value.code == "terminal_busy"
    assert sales_service.get_sale(session, sale.municipality_id, sale.id).status == "waiting"
    assert square.simulator.checkout(checkout_id)["status"] == "IN_PROGRESS"


# -- fees -----------------------------------------------------------------------------------------


def test_a_new_fee_applies_from_its_date_and_never_to_the_past(
        session: Session, adapters: dict[str, Any], clerk: StaffUser) -> None:
    tomorrow = TODAY + timedelta(days=1)
    set_fee(session, clerk.municipality_id, "juminhyo", 400, tomorrow, actor="admin", today=TODAY)

    today_sale = _sell(session, adapters, clerk)
    assert today_sale.total == 900
    tomorrow_sale = _sell(session, adapters, clerk, business_date=tomorrow)
    assert tomorrow_sale.total == 2 * 400 + 300

    with pytest.raises(GatewayError) as past:
        set_fee(session, clerk.municipality_id, "juminhyo", 500, TODAY - timedelta(days=1), actor="admin",
                today=TODAY)
    assert past.value.code == "fee_in_the_past"

    item_id = session.scalar(select(SaleLine.item_id).where(SaleLine.sale_id == today_sale.id).order_by(SaleLine.id))
    assert item_id is not None
    ward = clerk.municipality_id
    assert fee_on(session, ward, item_id, TODAY) == 300 and fee_on(session, ward, item_id, tomorrow) == 400
    session.rollback()


def test_a_second_fee_from_the_same_date_is_refused_as_fee_exists(session: Session, clerk: StaffUser) -> None:
    tomorrow = TODAY + timedelta(days=1)
    set_fee(session, clerk.municipality_id, "juminhyo", 400, tomorrow, actor="admin", today=TODAY)
    with pytest.raises(GatewayError) as twice:
        set_fee(session, clerk.municipality_id, "juminhyo", 450, tomorrow, actor="admin", today=TODAY)
    assert twice.value.code == "fee_exists"
    session.rollback()
    item_id = session.scalar(select(FeePrice.item_id).where(FeePrice.valid_from == tomorrow))
    assert item_id is not None and fee_on(session, clerk.municipality_id, item_id,
                                          tomorrow) == 400  # the first one stands


# -- voids ----------------------------------------------------------------------------------------


def test_a_same_day_void_of_id_is_refunded_through_square(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser,
        supervisor: StaffUser) -> None:
    sale = _paid_sale(session, adapters, square, clerk)

    voided = void_sale(session, adapters, sale.municipality_id, sale.id, supervisor=supervisor, today=TODAY)

    assert voided.status == "voided" and voided.voided_by == "super"
    payment = _payment(session, sale.id)
    refund = session.scalar(select(Refund).where(Refund.payment_id == payment.id))
    assert refund is not None
    assert refund.status == "succeeded" and refund.amount == 900
    assert refund.requested_by == "clerk" and refund.approved_by == "super" and refund.provider_ref
    assert payment.status == "refunded" and payment.refunded_amount == 900
    assert square.simulator is not None
    assert any(method == "POST" and path == "/v2/refunds" for method, path, _ in square.simulator.calls)
    # The receipts feed: the sale's receipt per fund, then its reversal for the void.
    records = session.execute(select(ReceiptRecord.kind, ReceiptRecord.reason, ReceiptRecord.amount,
                                     ReceiptRecord.channel, ReceiptRecord.reverses_id, ReceiptRecord.id)
                              .where(ReceiptRecord.payment_id == payment.id).order_by(ReceiptRecord.id)).all()
    assert [r[:4] for r in records] == [("receipt", None, 900, payment.channel), ("reversal", "voided", 900,
                                                                                  payment.channel)]
    assert records[1].reverses_id == records[0].id


def test_transportation_ic_is_never_voided_at_once_but_sent_to_accounting(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser,
        supervisor: StaffUser) -> None:
    sale = _paid_sale(session, adapters, square, clerk, brand="FELICA_TRANSPORTATION_GROUP")

    result = void_sale(session, adapters, sale.municipality_id, sale.id, supervisor=supervisor, today=TODAY)

    assert result.status == "refund_requested"
    payment = _payment(session, sale.id)
    refund = session.scalar(select(Refund).where(Refund.payment_id == payment.id))
    assert refund is not None and refund.status == "requested" and refund.approved_by is None
    assert payment.status == "succeeded" and payment.refunded_amount == 0
    assert square.simulator is not None
    assert not any(path.startswith("/v2/refunds") for _, path, _ in square.simulator.calls)


def test_a_seller_cannot_void_their_own_sale_at_once(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, supervisor: StaffUser) -> None:
    sale = _paid_sale(session, adapters, square,
                      supervisor)
    assert void_sale(session, adapters, sale.municipality_id, sale.id, supervisor=supervisor,
                     today=TODAY).status == "refund_requested"


# -- the daily close ------------------------------------------------------------------------------


def _report(square: SquareAdapter) -> list[SettledPayment]:
    return square.settlement_report(TODAY)


def _exceptions(session: Session) -> list[tuple[str, str]]:
    rows = [(e.kind, e.subject_key) for e in session.scalars(select(ReconException).order_by(ReconException.id))]
    session.rollback()
    return rows


def test_the_daily_close_sums_paid_sales_and_matches_the_settlement_report(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    _paid_sale(session, adapters, square, clerk)  # 2 juminhyo + 1 inkan, iD: 900
    _paid_sale(session, adapters, square, clerk, brand="QR_CODE", lines=[SaleLineRequest("koseki-zenbu", 1)])
    _paid_sale(session, adapters, square, clerk, lines=[SaleLineRequest("juminhyo", 1)])  # iD: 300
    cancelled = _sell(session, adapters, clerk, lines=[SaleLineRequest("joseki", 3)])
    cancel_sale(session, adapters, cancelled.municipality_id, cancelled.id, actor="clerk")
    _sell(session, adapters, clerk, lines=[SaleLineRequest("kazei", 1)])  # still waiting

    close = daily_close(session, clerk.municipality_id, TODAY, {"square": _report(square)})

    rows = {(r["item"], r["brand"]): (r["sales"], r["quantity"], r["amount"], r["fund"]) for r in close.rows}
    assert rows == {
        ("住民票の写し", "FELICA_ID"): (2, 3, 900, "証明書交付手数料"),
        ("印鑑登録証明書", "FELICA_ID"): (1, 1, 300, "証明書交付手数料"),
        ("戸籍全部事項証明", "QR_CODE"): (1, 1, 450, "証明書交付手数料"),
    }
    assert close.by_terminal == {DEVICE: {"sales": 3, "amount": 1650, "settled": 3, "settled_amount": 1650}}
    assert close.differences == [] and _exceptions(session) == []
    assert close.refunds == 0


def test_the_daily_close_raises_each_difference_with_the_report_once(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser) -> None:
    kept = _paid_sale(session, adapters, square, clerk)
    dropped = _paid_sale(session, adapters, square, clerk, lines=[SaleLineRequest("inkan", 1)])
    dropped_ref = _attempt(session, dropped.id).reference
    report = [p for p in _report(square) if p.reference != dropped_ref]
    assert len(report) == 1 and report[0].reference == _attempt(session, kept.id).reference
    stranger = SettledPayment(provider_payment_id="sq-payment-unknown", reference=None, amount=750,
                              payment_type="FELICA_QUICPAY", settled_at=datetime.now(UTC))

    close = daily_close(session, clerk.municipality_id, TODAY, {"square": [*report, stranger]})

    assert sorted(d["kind"] for d in close.differences) == ["missing_in_gateway", "missing_in_settlement"]
    first = _exceptions(session)
    assert sorted(first) == [("missing_in_gateway", "settlement:sq-payment-unknown"),
                             ("missing_in_settlement", f"sale:{dropped.id}")]
    missing = session.scalar(select(ReconException).where(ReconException.kind == "missing_in_settlement"))
    assert missing is not None and missing.amount == 300 and missing.business_date == TODAY
    session.rollback()

    daily_close(session, clerk.municipality_id, TODAY, {"square": [*report, stranger]})
    assert _exceptions(session) == first  # nothing new the second time


def test_a_void_during_a_square_outage_stands_and_the_janitor_refunds_it_later(
        session: Session, adapters: dict[str, Any], square: SquareAdapter, clerk: StaffUser,
        supervisor: StaffUser) -> None:
    from gateway.services.refunds import resume_refunds

    sale = _paid_sale(session, adapters, square, clerk, brand="FELICA_ID")
    assert square.simulator is not None
    square.simulator.simulate_outage(1, "connection")  # the refund's first call

    result = void_sale(session, adapters, sale.municipality_id, sale.id, supervisor=supervisor, today=TODAY)

    assert result.status == "voided"
    refund = session.scalar(select(Refund).where(Refund.payment_id == _payment(session, sale.id).id))
    assert refund is not None and refund.status == "processing"
    later = datetime.now(UTC) + timedelta(hours=1)
    assert resume_refunds(session, adapters, now=later) == {"refund succeeded": 1}
    session.expire_all()
    assert by_id(session, Refund, refund.id).status == "succeeded"
    assert _payment(session, sale.id).status == "refunded"
