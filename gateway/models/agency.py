"""Collection-agency data: imported files, the store payments they report, deposits."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base, ward_id_index, ward_key


class AgencyImport(Base):
    """One agency file applied (速報/確報/取消 records); the same bytes twice are one import."""

    __tablename__ = "agency_imports"
    __table_args__ = (UniqueConstraint("municipality_id", "adapter", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    adapter: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))  # cli | api | pull | demo
    created_on: Mapped[date | None] = mapped_column(Date)  # the agency's creation date
    records: Mapped[int] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    new_records: Mapped[int] = mapped_column(Integer)  # records not applied by an earlier file
    imported_by: Mapped[str] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgencyReport(Base):
    """One store or app payment as the agency reports it: its 速報, 確報 and 取消 in one row (or an eLTAX payment).

    `match_key` identifies the store payment (barcode, store date and time, store), so a
    record an agency sends again in a later file finds its row and is never applied twice.
    """

    __tablename__ = "agency_reports"
    # The 確報 of a payment updates its row once (final_import_id, remittance_on). Neither column
    # is indexed and pages keep half their room free, so every row's one update stays on its page
    # (HOT) and touches no index: a million-record 確報 is one cheap UPDATE. (With 30% free, two
    # rows in three moved page and were indexed again: twice the time, four WAL records a row.)
    # The three import ids name the file that brought each record; they are written only by the
    # import, in the transaction that inserts that file's row, and carry no foreign key: its
    # per-row check cost as much as the update itself (migration 0007).
    __table_args__ = (
        UniqueConstraint("municipality_id", "adapter", "match_key"),
        ward_key("agency_reports", "payment_id", "payments"),
        ward_id_index("agency_reports"),
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    adapter: Mapped[str] = mapped_column(String(40))
    match_key: Mapped[str] = mapped_column(String(32))
    barcode: Mapped[str] = mapped_column(String(44))
    slip_number: Mapped[str] = mapped_column(String(16), index=True)
    reissue: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the store's date and time
    paid_on: Mapped[date] = mapped_column(Date)  # the store's date (Asia/Tokyo)
    store_code: Mapped[str] = mapped_column(String(10))
    chain_code: Mapped[str] = mapped_column(String(6))
    channel: Mapped[str] = mapped_column(String(40))  # the chain or app, from the chain table
    preliminary_import_id: Mapped[int | None] = mapped_column(Integer)
    final_import_id: Mapped[int | None] = mapped_column(Integer)
    cancel_import_id: Mapped[int | None] = mapped_column(Integer)
    remittance_on: Mapped[date | None] = mapped_column(Date)  # 振込予定日, from the 確報
    payment_id: Mapped[int | None] = mapped_column(Integer, index=True)  # None: unknown slip
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # eLTAX payment data (adapters.eltax): its rows carry these and have no barcode, store or chain
    # (empty text); `channel` is "eltax", `slip_number` the newest slip of the instalment its
    # eL番号 names ("" when none). None in an agency's rows.
    record_id: Mapped[str | None] = mapped_column(String(40))  # eLTAX's id of the payment
    el_number: Mapped[str | None] = mapped_column(String(32))  # eL番号 as paid
    method: Mapped[str | None] = mapped_column(String(20))  # card | netbank | app | bank_counter


# The records a report's row gathers, each from its own file: an agency's 速報, 確報 and 取消, or
# one eLTAX payment record.
LINE_KINDS = ("preliminary", "final", "cancel", "eltax")


class AgencyReportLine(Base):
    """One record of a report as received: its line decoded from the file's encoding, without the line end.

    Insert-only: the import that receives a record writes its line, in the transaction that
    applies it, and nothing changes it after. A report has at most one line of each kind (the
    first of the file that applied it); rows imported before migration 0029 (an agency's) or
    0030 (eLTAX's) have none. The lines live apart from `agency_reports` so that the 確報's
    UPDATE of a million rows writes none of them and its rows stay on their pages (migration
    0030, bench/README.md).
    """

    __tablename__ = "agency_report_lines"
    # The ward is the report's: the foreign key says so, and no key of its own to municipalities
    # adds a check per line to an import of a million.
    __table_args__ = (
        CheckConstraint("kind IN ('" + "','".join(LINE_KINDS) + "')", name="known_kind"),
        ward_key("agency_report_lines", "agency_report_id", "agency_reports"),
    )

    agency_report_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    municipality_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    line: Mapped[str] = mapped_column(Text)


class AgencyDeposit(Base):
    """Money an agency paid into the ward's account (振込), as the bank statement shows it.

    A deposit read from a bank statement file carries the account (its header's) and a
    reference made of the transaction's fields, unique per account; its adapter is None when
    the remitter's name matches no agency (recorded, and raised). One entered by hand, or
    from a kokin-deposits file, has no account.
    """

    __tablename__ = "agency_deposits"
    __table_args__ = (UniqueConstraint("municipality_id", "adapter", "deposited_on", "reference"),
                      UniqueConstraint("municipality_id", "account", "reference"))

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    adapter: Mapped[str | None] = mapped_column(String(40))
    account: Mapped[str | None] = mapped_column(String(24))  # BBBB-SSS-T-NNNNNNN; None: entered without one
    deposited_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(64))  # the statement line's reference
    entered_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
