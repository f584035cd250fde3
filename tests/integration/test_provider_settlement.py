"""Card payments against Stripe's settlement of the day: missing either side, fees kept out of the payout."""
from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from adapters.base import CheckoutRequest, SettledPayment
from gateway.errors import SettlementFileInvalid
from gateway.models import Payment, ProviderSettlement, ReconException, Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import start_payment
from gateway.services.settlements import import_settlement_file
from gateway.services.slips import issue_slips
from reconciliation.reports import remittances
from reconciliation.run import reconcile_day
from tests.card import pay_by_card

TODAY = datetime.now(ZoneInfo("Asia/Tokyo")).date()


class Dropping:
    """The Stripe adapter with some charges left out of its report (the provider lost them)."""

    def __init__(self, adapter: Any, drop: set[str]) -> None:
        self._adapter, self._drop = adapter, drop
        self.name, self.capabilities = adapter.name, adapter.capabilities

    def settlement_report(self, day: date) -> list[SettledPayment]:
        return [p for p in self._adapter.settlement_report(day) if p.reference not in self._drop]


def _card_payment(app, session, slip: Slip):  # type: ignore[no-untyped-def]
    return pay_by_card(app, session, slip).attempt


def test_card_payments_are_matched_with_stripes_settlement_and_its_fees_are_reported_as_netted(  # type: ignore[no-untyped-def]
        app, session, cipher) -> None:
    rows = list(itertools.islice(ward_rows("131075", 2026, 10), 20))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="l.csv")
    issue_slips(session, "131075")
    slips = session.scalars(select(Slip).where(Slip.barcode.is_not(None), Slip.due_date > TODAY)
                            .order_by(Slip.id).limit(3)).all()
    kept, lost = _card_payment(app, session, slips[0]), _card_payment(app, session, slips[1])
    stripe = app.extensions["kokin.adapters"]["stripe"]
    stray = stripe.create_checkout(CheckoutRequest("stray-checkout-1", 2_000, "?", "https://w/r", "https://w/c",
                                                   "stray-checkout-1"))
    stripe.simulator.simulate_payment(stray.provider_ref, "paid")  # taken by Stripe, never by the gateway
    fees = sum(p.fee for p in stripe.settlement_report(TODAY) if p.reference == kept.reference)

    summary = reconcile_day(session, "131075", TODAY, adapters={"stripe": Dropping(stripe, {lost.reference})})

    found = {(e.kind, e.subject_key, e.amount) for e in session.scalars(select(ReconException))}
    assert {(kind, amount) for kind, _, amount in found} == {
        ("missing_in_settlement", lost.amount), ("missing_in_gateway", 2_000), ("fee_netted", fees)}
    assert fees > 0 and summary.raised == Counter(missing_in_settlement=1, missing_in_gateway=1, fee_netted=1)
    assert summary.settlement["stripe"].startswith("the provider's settlement")
    again = reconcile_day(session, "131075", TODAY, adapters={"stripe": Dropping(stripe, {lost.reference})})
    assert again.raised == Counter()
    figures = again.providers["stripe"]
    assert (figures["payments"], figures["recorded"]) == (2, kept.amount + lost.amount)
    assert (figures["settled"], figures["fees"]) == (kept.amount + 2_000, figures["settled"] - figures["payout"])
    stripe_name = "Stripe（クレジットカード）"  # the provider by its name on the report
    rows = [r for r in remittances(session, "131075").rows if r[0] == stripe_name]
    assert rows == [(stripe_name, "", TODAY.isoformat(), 2, kept.amount + lost.amount, figures["payout"],
                     figures["payout"] - kept.amount - lost.amount)]


REPORT_HEADER = "merchant_payment_id,payment_id,paid_on,paid_time,amount,fee\n"


def _paypay_payment(app, session, slip: Slip):  # type: ignore[no-untyped-def]
    paypay = app.extensions["kokin.adapters"]["paypay"]
    started = start_payment(session, {"paypay": paypay}, municipality_id=slip.municipality_id,
                            slip_number=slip.number, channel="paypay", return_url="https://ward.test/r",
                            cancel_url="https://ward.test/c", fee_schedules={}, actor="resident")
    paypay.simulator.simulate_payment(started.attempt.provider_ref, "COMPLETED")
    settle_attempt(session, "paypay", paypay.fetch_status(started.attempt.provider_ref), actor="test")
    return started.attempt


def test_a_paypay_settlement_report_is_stored_once_and_a_bad_one_not_at_all(app, session) -> None:  # type: ignore[no-untyped-def]
    good = (REPORT_HEADER + "kk-a,PP-1,2026-07-01,10:15:00,3000,30\nkk-b,PP-2,2026-07-01,11:00:00,5000,50\n").encode()
    assert import_settlement_file(session, "131075", "paypay", good, filename="r.csv", actor="t") == (2, 0)
    assert import_settlement_file(session, "131075", "paypay", good, filename="r.csv", actor="t") == (0, 2)
    bad = (REPORT_HEADER + "kk-c,PP-3,2026-07-01,10:15:00,3000,3001\nkk-d,PP-3,2026-02-30,10:15:00,100,0\n").encode()
    with pytest.raises(SettlementFileInvalid) as rejected:
        import_settlement_file(session, "131075", "paypay", bad, filename="bad.csv", actor="t")
    errors = rejected.value.details["errors"]
    assert any(e.startswith("line 2, field fee") for e in errors)
    assert any(e.startswith("line 3, field paid_on") for e in errors)
    assert session.scalar(select(func.count()).select_from(ProviderSettlement)) == 2


def test_paypay_payments_are_matched_with_the_imported_report_once_their_window_closed(  # type: ignore[no-untyped-def]
        app, session, cipher) -> None:
    rows = list(itertools.islice(ward_rows("131075", 2026, 10), 20))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="l.csv")
    issue_slips(session, "131075")
    slips = session.scalars(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id).limit(2)).all()
    settled, lost = _paypay_payment(app, session, slips[0]), _paypay_payment(app, session, slips[1])
    paid_on = date(2026, 7, 1)  # a week before the run: PayPay's window (domain/matching.toml) has closed
    session.execute(update(Payment).where(Payment.id.in_([settled.payment_id, lost.payment_id]))
                    .values(accepted_at=datetime(2026, 7, 1, 3, 0, tzinfo=UTC)))
    session.commit()
    adapters = {"paypay": app.extensions["kokin.adapters"]["paypay"]}
    run_on = paid_on + timedelta(days=7)

    before = reconcile_day(session, "131075", run_on, adapters=adapters)
    report = (REPORT_HEADER + f"{settled.reference},PP-10,2026-07-01,12:00:00,{settled.amount},45\n"
              "kk-not-ours,PP-11,2026-07-01,12:30:00,2500,25\n").encode()
    import_settlement_file(session, "131075", "paypay", report, filename="paypay-0701.csv", actor="t")
    after = reconcile_day(session, "131075", run_on, adapters=adapters)

    assert before.raised == Counter() and before.settlement["paypay"].startswith("no settlement report imported")
    assert after.raised == Counter(missing_in_settlement=1, missing_in_gateway=1, fee_netted=1)
    # The slips fell due before the payments were made: their lateness was raised when they were booked.
    late = select(ReconException).where(ReconException.kind.like("paid_after_%"))
    assert {e.payment_id for e in session.scalars(late)} == {settled.payment_id, lost.payment_id}
    found = {(e.kind, e.amount, e.business_date) for e in session.scalars(select(ReconException))
             if not e.kind.startswith("paid_after_")}
    assert found == {("missing_in_settlement", lost.amount, paid_on), ("missing_in_gateway", 2_500, paid_on),
                     ("fee_netted", 45, paid_on)}
    assert reconcile_day(session, "131075", run_on, adapters=adapters).raised == Counter()
