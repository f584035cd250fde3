"""Reconciliation exceptions: what a person at the ward must look at, each recorded once."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base, ward_id_index, ward_key

# The contract's kinds (CONTRACT.md); their meaning never changes.
EXCEPTION_KINDS = (
    "unknown_slip", "double_payment", "amount_mismatch", "paid_after_due_date", "paid_after_store_deadline",
    "preliminary_cancelled", "final_without_preliminary", "final_overdue", "remittance_mismatch",
    "missing_in_settlement", "missing_in_gateway", "fee_netted", "payment_on_void_slip",
)


class ReconException(Base):
    """One exception; (kind, subject) is unique, so detecting it again records nothing."""

    __tablename__ = "recon_exceptions"
    __table_args__ = (
        UniqueConstraint("municipality_id", "kind", "subject_key"),
        CheckConstraint("resolved_by IS NULL OR proposed_by IS NULL OR resolved_by <> proposed_by",
                        name="four_eyes"),
        ward_key("recon_exceptions", "agency_report_id", "agency_reports"),
        ward_key("recon_exceptions", "payment_id", "payments"),
        ward_id_index("recon_exceptions"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    kind: Mapped[str] = mapped_column(String(40))
    subject_key: Mapped[str] = mapped_column(String(120))  # e.g. agency_report:123, remittance:agency-csv:2026-07-23
    business_date: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[int | None] = mapped_column(BigInteger)  # yen at stake, where there is one
    slip_number: Mapped[str | None] = mapped_column(String(16))
    payment_id: Mapped[int | None] = mapped_column(Integer)
    agency_report_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)  # never personal data
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | pending_approval | resolved
    assigned_to: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(40))  # see RESOLUTIONS
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    proposed_by: Mapped[str | None] = mapped_column(String(100))  # who proposed a resolution that moves money
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# How an exception is resolved; those that move money need a second person to approve.
RESOLUTIONS = {
    "refund": True, "apply_to_other_instalment": True, "write_off": True,
    "handed_to_core_system": False,  # a double payment sent to the core system for 充当 or 還付
    "corrected_by_agency": False, "corrected_by_provider": False, "booked_correctly": False, "duplicate_report": False,
}


class ExceptionComment(Base):
    """A note on an exception by a member of staff (never personal data beyond the case)."""

    __tablename__ = "recon_exception_comments"
    __table_args__ = (ward_key("recon_exception_comments", "exception_id", "recon_exceptions"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))  # its ward, as its parent's
    exception_id: Mapped[int] = mapped_column(Integer, index=True)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProviderSettlement(Base):
    """A payment as a provider's settlement report lists it, imported from a file (PayPay)."""

    __tablename__ = "provider_settlements"
    __table_args__ = (UniqueConstraint("municipality_id", "adapter", "provider_payment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    adapter: Mapped[str] = mapped_column(String(40))
    provider_payment_id: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(64), index=True)  # our attempt's reference
    amount: Mapped[int] = mapped_column(BigInteger)  # yen, gross
    fee: Mapped[int] = mapped_column(BigInteger)  # yen the provider keeps out of its payout
    settled_on: Mapped[date] = mapped_column(Date, index=True)  # the payment's date (Asia/Tokyo)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExceptionPlaybook(Base):
    """A ward's own playbook for one kind of exception, over the defaults of domain/playbooks.toml.

    Keyed by (municipality_id, kind): a row per ward and kind, never more. `resolutions` is a
    list of {"code", "effect", "second_person"}; see gateway.services.playbooks.
    """

    __tablename__ = "exception_playbooks"

    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    meaning: Mapped[str] = mapped_column(String(2000))
    checks: Mapped[list[str]] = mapped_column(JSON)
    resolutions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
