"""The certificate counter: fee catalogue with history, counters, terminals, staff, sales."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import ENCRYPTED, Base, ward_id_index, ward_key

ROLES = ("counter_staff", "counter_supervisor", "accounting", "approver", "administrator", "auditor")
SALE_STATUSES = ("waiting", "paid", "cancelled", "timed_out", "voided", "refund_requested", "failed")


class StaffUser(Base):
    """A member of staff who signs in to the staff screens; one role each, one home ward.

    An administrator may hold other wards besides (StaffWard): (id, role) is unique so that a
    grant can name the role it was given to, and a grant's role must be administrator.
    """

    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint("role IN ('" + "','".join(ROLES) + "')", name="known_role"),
                      Index("uq_staff_users_id_role", "id", "role", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    username: Mapped[str] = mapped_column(String(60), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(30))
    counter_code: Mapped[str | None] = mapped_column(String(20))  # the counter they usually work at
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Sign-in (migration 0018): failures in a row since the last full sign-in; a lock set by
    # them (locked_until None while locked_at is set: until an administrator unlocks).
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # TOTP: the secret encrypted with the app's DataCipher; the last time step a code was used for.
    mfa_secret: Mapped[bytes | None] = mapped_column(LargeBinary, info=ENCRYPTED)  # the TOTP secret, Fernet
    mfa_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger)

    # What Flask-Login asks of a user (kept here so models need no Flask import).
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return str(self.id)


class Counter(Base):
    """A counter (窓口) where certificates are sold."""

    __tablename__ = "counters"
    __table_args__ = (UniqueConstraint("municipality_id", "code"), ward_id_index("counters"))

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))


class Terminal(Base):
    """A payment terminal paired with the provider, standing at one counter."""

    __tablename__ = "terminals"
    __table_args__ = (
        UniqueConstraint("adapter", "device_id", "municipality_id"),
        ward_key("terminals", "counter_id", "counters"),
        ward_id_index("terminals"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))  # its ward, as its parent's
    counter_id: Mapped[int] = mapped_column(Integer)
    adapter: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))


class FeeItem(Base):
    """A certificate or other fee sold at counters; its fee lives in FeePrice, with history."""

    __tablename__ = "fee_items"
    __table_args__ = (
        UniqueConstraint("municipality_id", "code"),
        ward_key("fee_items", "fund_type_id", "fund_types"),
        ward_id_index("fee_items"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    fund_type_id: Mapped[int] = mapped_column(Integer)
    counters: Mapped[list[str]] = mapped_column(JSON)  # codes of the counters that sell it
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class FeePrice(Base):
    """The fee of an item from a date on; the newest row not after the sale's date applies."""

    __tablename__ = "fee_prices"
    __table_args__ = (
        UniqueConstraint("item_id", "valid_from", "municipality_id"),
        CheckConstraint("fee > 0", name="fee_positive"),
        ward_key("fee_prices", "item_id", "fee_items"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))  # its ward, as its parent's
    item_id: Mapped[int] = mapped_column(Integer)
    fee: Mapped[int] = mapped_column(BigInteger)  # yen
    valid_from: Mapped[date] = mapped_column(Date)
    set_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sale(Base):
    """One sale at a counter, paid by one terminal payment (no cash mixed in)."""

    __tablename__ = "sales"
    __table_args__ = (
        CheckConstraint("total > 0", name="total_positive"),
        CheckConstraint("status IN ('" + "','".join(SALE_STATUSES) + "')", name="known_status"),
        UniqueConstraint("receipt_number", "municipality_id"),
        ward_key("sales", "counter_id", "counters"),
        ward_key("sales", "terminal_id", "terminals"),
        ward_id_index("sales"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    counter_id: Mapped[int] = mapped_column(Integer)
    terminal_id: Mapped[int] = mapped_column(Integer)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    brand: Mapped[str] = mapped_column(String(40))  # the terminal payment type (FELICA_ID, QR_CODE, ...)
    total: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    receipt_number: Mapped[str] = mapped_column(String(40))
    business_date: Mapped[date] = mapped_column(Date, index=True)  # Asia/Tokyo
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_by: Mapped[str | None] = mapped_column(String(100))


class SaleLine(Base):
    """An item of a sale with its fee as it was on the day."""

    __tablename__ = "sale_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        ward_key("sale_lines", "fund_type_id", "fund_types"),
        ward_key("sale_lines", "item_id", "fee_items"),
        ward_key("sale_lines", "sale_id", "sales"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))  # its ward, as its parent's
    sale_id: Mapped[int] = mapped_column(Integer, index=True)
    item_id: Mapped[int] = mapped_column(Integer)
    fund_type_id: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_fee: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
