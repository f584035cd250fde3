"""The ward ledger: assessments (調定) imported from the core system, and their history."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import ENCRYPTED, Base, ward_id_index, ward_key
from gateway.models.reference import FundType


class LedgerImport(Base):
    """A ward's part of one imported file: a file carrying several wards has a row for each (migration 0028).

    Its SHA-256 makes a second import of the same bytes a no-op: the key is (sha256, ward), the
    digest first so that a file is found by its digest alone. `records` and `total_amount` are
    the ward's lines of the file, `created`, `amended` and `unchanged` what they did.
    """

    __tablename__ = "ledger_imports"
    __table_args__ = (UniqueConstraint("sha256", "municipality_id"), ward_id_index("ledger_imports"))

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    layout: Mapped[str] = mapped_column(String(40))
    records: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(Integer)
    amended: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Assessment(Base):
    """One instalment of one assessment: what the payer owes by when."""

    __tablename__ = "assessments"
    __table_args__ = (
        UniqueConstraint("municipality_id", "source_key", "installment"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("installment BETWEEN 1 AND 99", name="installment_range"),
        CheckConstraint("closed_reason IS NULL OR closed_reason IN ('paid_elsewhere', 'cancelled')",
                        name="closed_reason_known"),
        CheckConstraint("(closed_reason IS NULL) = (closed_on IS NULL)", name="closed_on_date"),
        CheckConstraint("late_fee >= 0 AND dunning_fee >= 0 AND late_fee + dunning_fee < amount",
                        name="additions_within_amount"),
        # eLTAX payment data is matched on the eL番号: one instalment each.
        Index("uq_assessments_el_number", "municipality_id", "el_number", unique=True,
              sqlite_where=text("el_number IS NOT NULL"), postgresql_where=text("el_number IS NOT NULL")),
        ward_key("assessments", "fund_type_id", "fund_types"),
        ward_key("assessments", "closed_import_id", "ledger_imports"),
        ward_id_index("assessments"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    source_key: Mapped[str] = mapped_column(String(32))  # the core system's own key
    fund_type_id: Mapped[int] = mapped_column(Integer, index=True)
    fiscal_year: Mapped[int] = mapped_column(Integer)
    installment: Mapped[int] = mapped_column(Integer)
    # The core system's payer reference as a keyed hash (DataCipher.payer_ref_hmac, 64 hex digits):
    # it is only compared (is this the same payer?), never shown nor sent back, so its text is not kept.
    payer_ref_hmac: Mapped[str] = mapped_column(String(64))
    payer_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary, info=ENCRYPTED)  # Fernet token
    amount: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date] = mapped_column(Date)
    # Of `amount`, the additions the core system computed (延滞金, 督促手数料); the rest is principal.
    late_fee: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    dunning_fee: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # eLTAX: the eL番号 as printed (digits) and the eL-QR payload exactly as the core system gave it.
    el_number: Mapped[str | None] = mapped_column(String(32))
    el_qr: Mapped[str | None] = mapped_column(String(512))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Closed by the core system's status feed: paid elsewhere or cancelled (domain.booking.CLOSED_REASONS).
    closed_reason: Mapped[str | None] = mapped_column(String(16))
    closed_on: Mapped[date | None] = mapped_column(Date)
    closed_channel: Mapped[str | None] = mapped_column(String(16))  # bank, cashier, ... when paid elsewhere
    closed_import_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # "unnested": loaded through a payment's outer join, a chain of LEFT JOINs; nested, SQLite
    # materialised the inner join of every slip for each payment read (250 ms at 60,000 slips).
    fund_type: Mapped[FundType] = relationship(lazy="joined", innerjoin="unnested")  # type: ignore[arg-type]


class AssessmentRevision(Base):
    """Every version of an assessment's amount and due date, with the file that brought it."""

    __tablename__ = "assessment_revisions"
    __table_args__ = (
        UniqueConstraint("assessment_id", "revision", "municipality_id"),
        ward_key("assessment_revisions", "assessment_id", "assessments"),
        ward_key("assessment_revisions", "ledger_import_id", "ledger_imports"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))  # its ward, as its parent's
    assessment_id: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date] = mapped_column(Date)
    ledger_import_id: Mapped[int] = mapped_column(Integer, index=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
