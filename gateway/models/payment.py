"""Payments (a resident paying one slip), their attempts at providers, refunds, idempotency."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base, ward_id_index, ward_key
from gateway.models.slip import Slip


class Payment(Base):
    """One payment of one slip. `applied` marks the one payment the instalment is booked to.

    At most one applied payment per instalment, enforced by a partial unique index: a
    second successful payment is kept with applied = false and overpaid = true, never lost.
    """

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("fee_amount >= 0", name="fee_not_negative"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount + fee_amount", name="refund_bounded"),
        CheckConstraint("NOT (applied AND overpaid)", name="applied_or_overpaid"),
        CheckConstraint("(slip_id IS NULL) <> (sale_id IS NULL) AND (slip_id IS NULL) = (assessment_id IS NULL)",
                        name="slip_or_sale"),
        # Paid once per instalment, whichever of its slips (reissues) was paid.
        Index("uq_payments_applied_assessment", "assessment_id", "municipality_id", unique=True,
              sqlite_where=text("applied"), postgresql_where=text("applied")),
        Index("ix_payments_accepted", "municipality_id", "accepted_at"),  # a business date's payments
        UniqueConstraint("sale_id", "municipality_id"),
        ward_key("payments", "slip_id", "slips"),
        ward_key("payments", "assessment_id", "assessments"),
        ward_key("payments", "sale_id", "sales"),
        ward_id_index("payments"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    slip_id: Mapped[int | None] = mapped_column(Integer, index=True)  # a slip paid, or
    assessment_id: Mapped[int | None] = mapped_column(Integer, index=True)
    sale_id: Mapped[int | None] = mapped_column(Integer)  # a counter sale
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # see gateway.payments.PAYMENT
    amount: Mapped[int] = mapped_column(BigInteger)  # public revenue: the slip's amount, yen
    fee_amount: Mapped[int] = mapped_column(BigInteger, default=0)  # system usage fee, not revenue
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
    overpaid: Mapped[bool] = mapped_column(Boolean, default=False)  # a double payment, queued for refund
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the provider accepted it
    remitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the money reached the ward
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    slip: Mapped[Slip | None] = relationship(lazy="joined")


class PaymentAttempt(Base):
    """One try at a provider. Written before the provider is called, settled after."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        # Looked up by the provider's notification, which names no ward: the ward last.
        UniqueConstraint("adapter", "provider_ref", "municipality_id"),
        UniqueConstraint("reference", "municipality_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        ward_key("payment_attempts", "payment_id", "payments"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))  # its ward, as its parent's
    payment_id: Mapped[int] = mapped_column(Integer, index=True)
    adapter: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str] = mapped_column(String(64))  # ours, sent to the provider
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))  # see gateway.payments.ATTEMPT
    amount: Mapped[int] = mapped_column(BigInteger)  # charged to the payer: payment amount + fee
    redirect_url: Mapped[str | None] = mapped_column(String(2000))
    qr_payload: Mapped[str | None] = mapped_column(String(2000))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    card_brand: Mapped[str | None] = mapped_column(String(40))  # or a terminal's payment type
    card_last4: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refund(Base):
    """A refund (還付) of all or part of a payment; a second person approves it."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("approved_by IS NULL OR approved_by <> requested_by", name="four_eyes"),
        ward_key("refunds", "payment_id", "payments"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))  # its ward, as its parent's
    payment_id: Mapped[int] = mapped_column(Integer, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # see gateway.payments.REFUND
    requested_by: Mapped[str] = mapped_column(String(100))
    approved_by: Mapped[str | None] = mapped_column(String(100))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """A client's Idempotency-Key: the first request's hash and, once done, its response."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("municipality_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)  # None while in progress
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class WebhookDelivery(Base):
    """A provider notification already handled: (adapter, event id, chain) dedupes redeliveries.

    `chain` is the ward the notification belongs to, as the audit record's (migration 0031): the
    municipality's id, named by our attempt reference it carries (or, for a reference made before
    references named their ward, its attempt's); 0, the service's own, when it names no attempt of
    ours (a malformed notification, one to ignore). A notification always gets the same chain, so
    the key dedupes it. No foreign key, for that 0. Distributed by `chain` (docs/scaling.md).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("adapter", "event_id", "chain"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain: Mapped[int] = mapped_column(Integer)
    adapter: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
