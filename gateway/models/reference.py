"""Reference data staff configure: municipalities and the fund types they collect."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base, ward_id_index

# Payment channels a fund type may accept. `agency` = the slip barcode paid at a
# convenience store or in a bill-payment app, reported by a collection agency.
CHANNELS = ("agency", "card", "paypay", "emoney", "eltax")
OVERPAYMENT_POLICIES = ("core_system", "provider_refund")


class Municipality(Base):
    __tablename__ = "municipalities"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(6), unique=True)  # with its check digit
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(40))  # half-width kana, for agency files
    company_code: Mapped[str] = mapped_column(String(6))  # barcode 請求書発行企業コード
    client_code: Mapped[str] = mapped_column(String(5))  # agency 利用企業コード
    store_deadline_offset_days: Mapped[int] = mapped_column(Integer)
    pay_base_url: Mapped[str] = mapped_column(String(200))
    # The ward's data cut-off for the previous fiscal year ("MM-DD", by default 出納閉鎖 05-31).
    closing_cutoff: Mapped[str] = mapped_column(String(5), default="05-31", server_default="05-31")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FundType(Base):
    __tablename__ = "fund_types"
    __table_args__ = (
        UniqueConstraint("municipality_id", "code"),
        CheckConstraint("company_code IS NULL OR length(company_code) = 6", name="company_code_len"),
        CheckConstraint("overpayment_policy IN ('core_system', 'provider_refund')", name="overpayment_policy_known"),
        ward_id_index("fund_types"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    code: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    channels: Mapped[list[str]] = mapped_column(JSON)
    account: Mapped[str] = mapped_column(String(100))  # 会計 (general, NHI special account, ...)
    revenue_item: Mapped[str] = mapped_column(String(100))  # 款・項・目
    # Agencies often hold a separate barcode company code for local taxes and for fees.
    company_code: Mapped[str | None] = mapped_column(String(6))
    # The bank account the fund's money is paid into (BBBB-SSS-T-NNNNNNN, domain.bank_statements):
    # agencies remit per account, and bank statements are checked per account.
    bank_account: Mapped[str | None] = mapped_column(String(24))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A double payment: reported to the core system for 充当 or 還付 (`core_system`, Local Tax
    # Act art. 17-2), or refunded through the provider with four-eyes approval (`provider_refund`).
    overpayment_policy: Mapped[str] = mapped_column(String(20), default="core_system", server_default="core_system")
