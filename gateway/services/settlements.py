"""Provider settlement reports that arrive as files (PayPay): validated in full, stored once.

Reconciliation reads them back for the payments whose settlement window has closed.
"""
from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.base import SettledPayment
from adapters.paypay.settlement import SettlementFileRejected, read_settlement
from domain.calendar import TOKYO
from gateway.db import transaction
from gateway.errors import GatewayError, SettlementFileInvalid
from gateway.models import ProviderSettlement, table
from gateway.observability.metrics import observed_import
from gateway.services.events import record_event
from gateway.services.reference import get_municipality

READERS = {"paypay": read_settlement}


@observed_import("settlement")
def import_settlement_file(session: Session, municipality_code: str, adapter: str, data: bytes, *,
                           filename: str, actor: str) -> tuple[int, int]:
    """Store every payment of the report not stored before; (new, known). Nothing is stored on any error."""
    reader = READERS.get(adapter)
    if reader is None:
        raise GatewayError(f"no settlement report reader for {adapter!r}; known: {', '.join(READERS)}",
                           code="unknown_adapter", status=422)
    try:
        payments = reader(data)
    except SettlementFileRejected as exc:
        raise SettlementFileInvalid(f"{filename}: {len(exc.errors)} error(s); nothing was stored",
                                    details={"errors": [str(e) for e in exc.errors]}) from exc
    municipality_id = get_municipality(session, municipality_code).id
    rows = table(ProviderSettlement)
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    with transaction(session):
        new = 0
        for start in range(0, len(payments), 1_000):
            chunk = [dict(municipality_id=municipality_id, adapter=adapter, provider_payment_id=p.provider_payment_id,
                          reference=p.reference, amount=p.amount, fee=p.fee, settled_on=p.settled_at.date())
                     for p in payments[start:start + 1_000]]
            new += len(session.scalars(dialect_insert(rows).values(chunk).on_conflict_do_nothing()
                                       .returning(rows.c.id)).all())
        record_event(session, "settlement.imported", "provider_settlement", filename[:40],
                     municipality_id=municipality_id, actor=actor,
                     data={"adapter": adapter, "payments": len(payments), "new": new})
    return new, len(payments) - new


def stored_settlements(session: Session, municipality_id: int, adapter: str, references: list[str],
                       day: date) -> list[SettledPayment]:
    """What the stored reports say of these references, and of any payment settled on `day`."""
    found = session.scalars(select(ProviderSettlement).where(
        ProviderSettlement.municipality_id == municipality_id, ProviderSettlement.adapter == adapter,
        ProviderSettlement.reference.in_(references) | (ProviderSettlement.settled_on == day))).all()
    return [SettledPayment(s.provider_payment_id, s.reference, int(s.amount), adapter,
                           datetime.combine(s.settled_on, time(0), tzinfo=TOKYO), fee=int(s.fee)) for s in found]
