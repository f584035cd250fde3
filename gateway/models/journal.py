"""The outbound journal: every yen the gateway saw, as records for the core system, and the files sent."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base, ward_id_index, ward_key

RECORD_KINDS = ("receipt", "overpayment", "unidentified", "reversal")
FEEDS = ("receipts", "counter_revenue")


class OutboundFile(Base):
    """A file sent to another system, kept byte for byte (zlib) so that it can be resent unchanged.

    `sequence` runs per municipality and feed from 1 without gaps: the receiving side sees a
    gap. The database refuses a second file of the same number (two exports at once).
    """

    __tablename__ = "outbound_files"
    __table_args__ = (UniqueConstraint("municipality_id", "feed", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    feed: Mapped[str] = mapped_column(String(20))  # see FEEDS
    sequence: Mapped[int] = mapped_column(Integer)
    layout: Mapped[str] = mapped_column(String(100))
    record_count: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger)  # yen, records less reversals
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)  # zlib of the file's bytes
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceiptRecord(Base):
    """One record of the receipts feed, written in the transaction of the money event that causes it.

    `receipt`: money applied to an instalment (or a counter sale, which is its own claim);
    `overpayment`: money for a known instalment kept, not applied (`reason` says why);
    `unidentified`: money no slip could be found for; `reversal`: undoes `reverses`, same
    amount. A record is never changed once written; it is reversed at most once (unique
    `reverses_id`). The database queues every record it stores (`ReceiptQueue`, by trigger).
    """

    __tablename__ = "receipt_records"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("(kind = 'reversal') = (reverses_id IS NOT NULL)", name="reversal_reverses"),
        CheckConstraint("kind IN ('receipt', 'overpayment', 'unidentified', 'reversal')", name="kind_known"),
        Index("uq_receipt_records_reverses", "reverses_id", "municipality_id", unique=True,
              sqlite_where=text("reverses_id IS NOT NULL"), postgresql_where=text("reverses_id IS NOT NULL")),
        Index("ix_receipt_records_day", "municipality_id", "business_date"),
        ward_key("receipt_records", "agency_report_id", "agency_reports"),
        ward_key("receipt_records", "assessment_id", "assessments"),
        ward_key("receipt_records", "fund_type_id", "fund_types"),
        ward_key("receipt_records", "payment_id", "payments"),
        ward_key("receipt_records", "reverses_id", "receipt_records"),
        ward_id_index("receipt_records"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    kind: Mapped[str] = mapped_column(String(20))  # see RECORD_KINDS
    reason: Mapped[str | None] = mapped_column(String(40))
    reverses_id: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)  # yen, public revenue only
    channel: Mapped[str] = mapped_column(String(40))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the money was accepted
    business_date: Mapped[date] = mapped_column(Date)  # Asia/Tokyo date of the event (payment, cancel, refund)
    payment_id: Mapped[int | None] = mapped_column(Integer, index=True)
    assessment_id: Mapped[int | None] = mapped_column(Integer)
    agency_report_id: Mapped[int | None] = mapped_column(Integer, index=True)
    fund_type_id: Mapped[int | None] = mapped_column(Integer)  # a counter sale's fund
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceiptQueue(Base):
    """The records not sent yet: a trigger on `receipt_records` queues each record as it is stored.

    The next file takes (deletes) the municipality's queue: a narrow table, so that sending a
    million records deletes a million small rows instead of rewriting the records themselves.
    """

    __tablename__ = "receipt_records_unsent"

    # No foreign key: only the trigger writes here, with the ids it was given (a check per row
    # would cost a million lookups when an agency file books a million payments).
    record_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    municipality_id: Mapped[int] = mapped_column(Integer, index=True)


# The ids one export took from the queue, for the length of its transaction only: written after
# the queue is emptied, read joined to the records, deleted before the commit. A table rather
# than a temporary table because PostgreSQL's parallel workers can read it (they cannot read a
# session's temporary tables), unlogged on PostgreSQL (nothing in it outlives its transaction,
# so nothing needs the write-ahead log) and without a key: each id comes once from the queue's
# DELETE. Used on PostgreSQL only.
receipt_claims = Table(
    "receipt_claims", Base.metadata,
    Column("municipality_id", Integer, nullable=False),
    Column("outbound_file_id", Integer, nullable=False),
    Column("record_id", Integer, nullable=False),
)
