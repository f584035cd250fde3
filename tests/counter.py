"""A certificate sale paid at the counter's simulated terminal, through the real services."""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from gateway.models import StaffUser
from gateway.services.counters import counter_terminals
from gateway.services.sales import SaleLineRequest, follow_sale, sale_attempt, start_sale


def paid_sale(app: Any, session: Session, seller: StaffUser, lines: list[SaleLineRequest], *, brand: str,
              business_date: date, counter_code: str = "resident") -> int:
    """Ring up `lines`, tap the card on the counter's first terminal; the sale's id, paid."""
    adapters = app.extensions["kokin.adapters"]
    _, terminals = counter_terminals(session, seller.municipality_id, counter_code)
    session.rollback()
    sale = start_sale(session, adapters, user=seller, counter_code=counter_code, terminal_id=terminals[0].id,
                      lines=lines, brand=brand, business_date=business_date)
    attempt = sale_attempt(session, sale.municipality_id, sale.id)
    assert attempt is not None and attempt.provider_ref
    session.rollback()
    adapters["square"].simulator.simulate_device(attempt.provider_ref, "start")
    adapters["square"].simulator.simulate_device(attempt.provider_ref, "complete")
    assert follow_sale(session, adapters, sale.municipality_id, sale.id).status == "paid"
    return sale.id
