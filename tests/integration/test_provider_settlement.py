"""Card payments against Stripe's settlement of the day: missing either side, fees kept out of the payout."""
from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from adapters.base import CheckoutRequest, SettledPayment
from gateway.models import ReconException, Slip
from gateway.services.ledger_import import import_ledger
from gateway.services.payments import settle_attempt, start_payment
from gateway.services.slips import issue_slips
from gateway.services.synthetic import ledger_file_bytes, ward_rows
from reconciliation.reports import remittances
from reconciliation.run import reconcile_day

TODAY = datetime.now(ZoneInfo("Asia/Tokyo")).date()


class Dropping:
    """The Stripe adapter with some charges left out of its report (the provider lost them)."""

    def __init__(self, adapter: Any, drop: set[str]) -> None:
        self._adapter, self._drop = adapter, drop
        self.name, self.capabilities = adapter.name, adapter.capabilities

    def settlement_report(self, day: date) -> list[SettledPayment]:
        return [p for p in self._adapter.settlement_report(day) if p.reference not in self._drop]


def _card_payment(app, session, slip: Slip):  # type: ignore[no-untyped-def]
    stripe = app.extensions["kokin.adapters"]["stripe"]
    started = start_payment(session, {"card": stripe}, municipality_id=slip.municipality_id, slip_number=slip.number,
                            channel="card", return_url="https://ward.test/r", cancel_url="https://ward.test/c",
                            fee_schedules=app.config["FEE_SCHEDULES"], actor="resident")
    stripe.simulator.simulate_payment(started.attempt.provider_ref, "paid")
    settle_attempt(session, "stripe", stripe.fetch_status(started.attempt.provider_ref), actor="test")
    return started.attempt


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
    rows = [r for r in remittances(session, "131075").rows if r[0] == "stripe"]
    assert rows == [("stripe", TODAY.isoformat(), 2, kept.amount + lost.amount, figures["payout"],
                     figures["payout"] - kept.amount - lost.amount)]
