"""Payment slips (納付書): one sheet per instalment, reissued under the same number."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base, ward_id_index, ward_key
from gateway.models.ledger import Assessment

SLIP_STATUSES = ("issued", "void", "paid", "closed")  # closed: its instalment was closed by the core system


class SlipNumberSeries(Base):
    """The next free serial for slip numbers, per municipality and fiscal year."""

    __tablename__ = "slip_number_series"
    __table_args__ = (PrimaryKeyConstraint("municipality_id", "fiscal_year"),)

    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    fiscal_year: Mapped[int] = mapped_column(Integer)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class IssueRun(Base):
    """One `kokin slips issue` run; the slips it created point back to it."""

    __tablename__ = "issue_runs"
    __table_args__ = (ward_id_index("issue_runs"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    fund_code: Mapped[str | None] = mapped_column(String(8))
    fiscal_year: Mapped[int | None] = mapped_column(Integer)
    slip_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Slip(Base):
    __tablename__ = "slips"
    __table_args__ = (
        UniqueConstraint("municipality_id", "number", "reissue"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("reissue BETWEEN 0 AND 9", name="reissue_range"),
        CheckConstraint("status IN ('issued', 'void', 'paid', 'closed')", name="status_known"),
        CheckConstraint("barcode IS NULL OR length(barcode) = 44", name="barcode_len"),
        # At most one live (not void) slip per instalment: a reissue must void the old one.
        Index(
            "uq_slips_live_assessment",
            "assessment_id",
            "municipality_id",
            unique=True,
            sqlite_where=text("status <> 'void'"),
            postgresql_where=text("status <> 'void'"),
        ),
        UniqueConstraint("pay_token", "municipality_id"),
        ward_key("slips", "issue_run_id", "issue_runs"),
        ward_key("slips", "assessment_id", "assessments"),
        ward_id_index("slips"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    assessment_id: Mapped[int] = mapped_column(Integer, index=True)
    number: Mapped[str] = mapped_column(String(16))
    reissue: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date] = mapped_column(Date)
    store_deadline: Mapped[date | None] = mapped_column(Date)
    barcode: Mapped[str | None] = mapped_column(String(44))  # None above the barcode limit
    pay_token: Mapped[str] = mapped_column(String(43))
    status: Mapped[str] = mapped_column(String(10), default="issued")
    issue_run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    void_reason: Mapped[str | None] = mapped_column(String(100))

    # "unnested": loaded through a payment's outer join, a chain of LEFT JOINs; nested, SQLite
    # materialised the inner join of every slip for each payment read (250 ms at 60,000 slips).
    assessment: Mapped[Assessment] = relationship(lazy="joined", innerjoin="unnested")  # type: ignore[arg-type]
