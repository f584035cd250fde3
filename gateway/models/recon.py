"""Reconciliation exceptions: what a person at the ward must look at, each recorded once."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base

# The contract's kinds (CONTRACT.md); their meaning never changes.
EXCEPTION_KINDS = (
    "unknown_slip", "double_payment", "amount_mismatch", "paid_after_due_date", "paid_after_store_deadline",
    "preliminary_cancelled", "final_without_preliminary", "final_overdue", "remittance_mismatch",
    "missing_in_settlement", "missing_in_gateway", "fee_netted", "payment_on_void_slip",
)


class ReconException(Base):
    """One exception; (kind, subject) is unique, so detecting it again records nothing."""

    __tablename__ = "recon_exceptions"
    __table_args__ = (UniqueConstraint("municipality_id", "kind", "subject_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    kind: Mapped[str] = mapped_column(String(40))
    subject_key: Mapped[str] = mapped_column(String(120))  # e.g. agency_report:123, remittance:agency-csv:2026-07-23
    business_date: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[int | None] = mapped_column(BigInteger)  # yen at stake, where there is one
    slip_number: Mapped[str | None] = mapped_column(String(16))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    agency_report_id: Mapped[int | None] = mapped_column(ForeignKey("agency_reports.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)  # never personal data
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
