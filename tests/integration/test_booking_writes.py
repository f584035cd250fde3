"""The one booking writer over many payments: staged (COPY) on PostgreSQL, executemany on SQLite, same writes."""
from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from sqlalchemy import func, select

from domain.booking import Booking, Flag
from gateway.db import utcnow
from gateway.models import Municipality, ReceiptRecord, ReconException, Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.booking import Booked, record_bookings
from gateway.services.exceptions import BULK_EXCEPTIONS
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips

MUNICIPALITY = "131075"


def test_many_bookings_pay_every_issued_slip_of_their_instalments_and_raise_each_flag_once(  # type: ignore[no-untyped-def]
        session, cipher) -> None:
    rows = list(itertools.islice(ward_rows(MUNICIPALITY, 2026, 40), 60))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, MUNICIPALITY)
    municipality_id = session.scalar(select(Municipality.id).where(Municipality.code == MUNICIPALITY))
    assessments = sorted(set(session.scalars(select(Slip.assessment_id).where(Slip.status == "issued"))))[:50]
    paid_at = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    applied = [Booked(Booking(applied=True), None, a, 1_000, date(2026, 5, 1), None, f"test:applied:{a}",
                      channel="card", paid_at=paid_at) for a in assessments]
    unknown = Booking(applied=False, kept_as="unidentified", flags=(Flag("unknown_slip", {"reason": "no such slip"}),))
    kept = [Booked(unknown, None, None, 500, date(2026, 5, 1), None, f"test:unknown:{n}", channel="agency",
                   paid_at=paid_at, also=(Flag("preliminary_cancelled", {"reason": "voided"}),) if n % 2 else ())
            for n in range(BULK_EXCEPTIONS)]
    booked = applied + kept  # more than BULK_EXCEPTIONS: PostgreSQL takes the staged path

    first = record_bookings(session, municipality_id, booked, now=utcnow())
    record = ReceiptRecord
    journal = session.execute(select(record.kind, record.channel, func.count(), func.sum(record.amount))
                              .group_by(record.kind, record.channel).order_by(record.kind)).all()
    assert [tuple(row) for row in journal] == [("receipt", "card", len(assessments), 1_000 * len(assessments)),
                                               ("unidentified", "agency", BULK_EXCEPTIONS, 500 * BULK_EXCEPTIONS)]
    again = record_bookings(session, municipality_id, booked, now=utcnow())

    assert first == {"unknown_slip": BULK_EXCEPTIONS, "preliminary_cancelled": BULK_EXCEPTIONS // 2}
    assert again == {}
    statuses = session.execute(select(Slip.status, func.count()).where(Slip.assessment_id.in_(assessments))
                               .group_by(Slip.status)).all()
    assert dict(statuses) == {"paid": len(assessments)}
    assert session.scalar(select(func.count()).select_from(ReconException)
                          .where(ReconException.subject_key.like("test:%"))) == BULK_EXCEPTIONS * 3 // 2
