"""A slip's whole story, and the evidence behind an exception, as one timeline for accounting staff.

Everything the gateway knows of a slip number and its money, from the tables that hold it,
newest last: the instalment as the core system sent it and each revision; each sheet issued,
reissued and voided; each payment with its channel, provider or agency, store and chain, when
it was paid and when the money arrived; the agency's records (速報, 確報, 取消) and the files
they came in; the deposit that carried the money; the records sent to the core system for it;
refunds; the exceptions raised on it and what staff did with them (the audit record).

The entries carry no personal data (no payer names or references): a clerk deciding an
exception needs the money's path, not the payer. One query per kind of fact, whatever the
number of entries. Titles and labels are Japanese messages of the catalogue (gateway.i18n).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from gateway.i18n import label
from gateway.models import (
    AgencyDeposit,
    AgencyImport,
    AgencyReport,
    AgencyReportLine,
    Assessment,
    AssessmentRevision,
    Event,
    LedgerImport,
    Payment,
    PaymentAttempt,
    ReceiptRecord,
    ReconException,
    Refund,
    Slip,
)
from gateway.models.base import on_ward
from gateway.models.journal import ReceiptQueue

TOKYO = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Link:
    """Where an entry's object has a page of its own: a staff endpoint and its arguments."""

    endpoint: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Received:
    """A record as the ward received it: its line (None: not kept, imported before migration `kept_since`)."""

    id: str  # unique on the page: what its label is found by
    label: str
    line: str | None
    kept_since: str = "0029"  # an agency's records are kept since 0029, eLTAX's since 0030


@dataclass(frozen=True)
class Entry:
    """One thing that happened, at `at` (UTC); `facts` are (label, value) pairs to show as they are."""

    at: datetime
    source: str  # assessment | slip | payment | agency | deposit | record | refund | exception | action
    title: str
    amount: int | None = None
    facts: tuple[tuple[str, str], ...] = ()
    link: Link | None = None
    received: Received | None = None  # an agency record's line as received, beside the fields read from it

    @property
    def local(self) -> datetime:
        return self.at.astimezone(TOKYO)


@dataclass
class Story:
    """A slip number's sheets, its instalment and everything that happened to them, oldest first."""

    number: str
    slips: list[Slip]
    assessment: Assessment | None
    entries: list[Entry] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)


def _yen(amount: int | None) -> str:
    return "" if amount is None else _("%(amount)s円", amount=f"{amount:,}")


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def _moment(value: datetime | None) -> str:
    return value.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _at_day(value: date) -> datetime:
    """A date-only fact placed at the start of its day in Tokyo (it sorts before that day's times)."""
    return datetime.combine(value, time(0), TOKYO).astimezone(UTC)


def slip_story(session: Session, municipality_id: int, number: str) -> Story | None:
    """Everything about slip `number` of the ward, or None for a number the ward never issued or saw."""
    slips = list(session.scalars(select(Slip).where(Slip.municipality_id == municipality_id, Slip.number == number)
                                 .order_by(Slip.reissue)))
    reports = list(session.scalars(select(AgencyReport).where(AgencyReport.municipality_id == municipality_id,
                                                              AgencyReport.slip_number == number)
                                   .order_by(AgencyReport.id)))
    if not slips and not reports:
        return None
    assessment = slips[0].assessment if slips else None
    story = Story(number, slips, assessment)
    payment_where: list[ColumnElement[bool]] = [Payment.slip_id.in_([s.id for s in slips])] if slips else []
    if assessment is not None:
        payment_where.append(Payment.assessment_id == assessment.id)
    report_payments = [r.payment_id for r in reports if r.payment_id is not None]
    if report_payments:
        payment_where.append(Payment.id.in_(report_payments))
    if payment_where:
        story.payments = list(session.scalars(select(Payment).where(Payment.municipality_id == municipality_id,
                                                                    or_(*payment_where)).order_by(Payment.id)))
    entries = story.entries
    if assessment is not None:
        entries += _assessment_entries(session, assessment)
    entries += [entry for s in slips for entry in _slip_entries(s)]
    entries += _payment_entries(session, story.payments, reports)
    entries += _agency_entries(session, municipality_id, reports)
    entries += _record_entries(session, municipality_id, [p.id for p in story.payments],
                               [r.id for r in reports])
    exceptions = list(session.scalars(select(ReconException).where(
        ReconException.municipality_id == municipality_id,
        or_(ReconException.slip_number == number,
            ReconException.payment_id.in_([p.id for p in story.payments]))).order_by(ReconException.id)))
    entries += _exception_entries(session, exceptions)
    entries.sort(key=lambda e: e.at)
    return story


def exception_evidence(session: Session, item: ReconException) -> tuple[Story | None, list[Entry]]:
    """The exception's slip story (when it names a slip), and the evidence that belongs to it alone.

    An unknown slip, a remittance short or a fee netted has no slip: its evidence is the agency
    record as received, the remittance the agency's records promised against the deposits that
    arrived, or the provider's fees, each as it is stored.
    """
    story = slip_story(session, item.municipality_id, item.slip_number) if item.slip_number else None
    own: list[Entry] = []
    if story is None and item.agency_report_id is not None:
        report = session.get(AgencyReport, (item.agency_report_id, item.municipality_id))
        if report is not None:
            own += _agency_entries(session, item.municipality_id, [report])
    remittance = _REMITTANCE.fullmatch(item.subject_key)
    if remittance:
        own += _remittance_entries(session, item, remittance["adapter"], remittance["account"],
                                   date.fromisoformat(remittance["day"]))
    if story is None:
        own += _exception_entries(session, [item])
    own.sort(key=lambda e: e.at)
    return story, own


_REMITTANCE = re.compile(r"remittance:(?P<adapter>[\w-]+):(?:(?P<account>[\d-]+):)?(?P<day>\d{4}-\d{2}-\d{2})")


def _assessment_entries(session: Session, assessment: Assessment) -> list[Entry]:
    revisions = session.execute(
        select(AssessmentRevision, LedgerImport.filename)
        .join(LedgerImport, on_ward(AssessmentRevision, "ledger_import_id", LedgerImport))
        .where(AssessmentRevision.municipality_id == assessment.municipality_id,
               AssessmentRevision.assessment_id == assessment.id).order_by(AssessmentRevision.revision)).all()
    entries = []
    for revision, filename in revisions:
        title = (_("賦課を基幹システムから受信") if revision.revision == 1
                 else _("賦課の更正（第%(n)s版）", n=revision.revision))
        entries.append(Entry(revision.recorded_at, "assessment", title, revision.amount, (
            (_("期別"), _("%(year)s年度 第%(n)s期", year=assessment.fiscal_year, n=assessment.installment)),
            (_("会計区分"), assessment.fund_type.name),
            (_("納期限"), _day(revision.due_date)),
            (_("賦課番号"), assessment.source_key),
            (_("取込ファイル"), filename))))
    if assessment.closed_on is not None:
        closed = session.scalar(select(LedgerImport.imported_at).where(LedgerImport.id == assessment.closed_import_id))
        entries.append(Entry(closed or _at_day(assessment.closed_on), "assessment",
                             _("基幹システムが期別を消込（%(reason)s）",
                               reason=label(assessment.closed_reason, "closed_reason")), None, (
                                 (_("消込日"), _day(assessment.closed_on)),
                                 (_("納付経路"), label(assessment.closed_channel, "channel")))))
    return entries


def _slip_entries(slip: Slip) -> list[Entry]:
    facts = ((_("納付書番号"), f"{slip.number}-{slip.reissue}"), (_("納期限"), _day(slip.due_date)),
             (_("コンビニ取扱期限"), _day(slip.store_deadline)))
    title = _("納付書を発行") if slip.reissue == 0 else _("納付書を再発行（第%(n)s回）", n=slip.reissue)
    entries = [Entry(slip.issued_at, "slip", title, slip.amount, facts)]
    if slip.voided_at is not None:
        entries.append(Entry(slip.voided_at, "slip", _("納付書を無効化"), None, (
            (_("納付書番号"), f"{slip.number}-{slip.reissue}"), (_("理由"), void_reason(slip.void_reason)))))
    return entries


def _payment_entries(session: Session, payments: Sequence[Payment], reports: Sequence[AgencyReport]) -> list[Entry]:
    if not payments:
        return []
    attempts: dict[int, list[PaymentAttempt]] = {}
    ward = payments[0].municipality_id  # a slip's payments are its ward's
    for attempt in session.scalars(select(PaymentAttempt).where(PaymentAttempt.municipality_id == ward,
                                                                PaymentAttempt.payment_id.in_([p.id for p in payments]))
                                   .order_by(PaymentAttempt.id)):
        attempts.setdefault(attempt.payment_id, []).append(attempt)
    by_payment = {r.payment_id: r for r in reports if r.payment_id is not None}
    refunds = session.scalars(select(Refund).where(Refund.municipality_id == ward,
                                                   Refund.payment_id.in_([p.id for p in payments])).order_by(Refund.id))
    entries = []
    for payment in payments:
        report = by_payment.get(payment.id)
        facts: list[tuple[str, str]] = [(_("経路"), label(payment.channel, "channel")),
                                        (_("状態"), label(payment.status, "payment_status"))]
        if report is not None:
            facts += [(_("店舗・アプリ"), report.channel), (_("チェーンコード"), report.chain_code),
                      (_("店舗コード"), report.store_code), (_("支払日時（店舗）"), _moment(report.paid_at))]
        for attempt in attempts.get(payment.id, []):
            facts += [(_("決済事業者"), label(attempt.adapter, "adapter")),
                      (_("決済の状態"), label(attempt.status, "attempt_status"))]
            if attempt.card_brand:
                facts.append((_("支払方法"), label(attempt.card_brand, "tender")))
        if payment.fee_amount:
            facts.append((_("システム利用料"), _yen(payment.fee_amount)))
        facts.append((_("入金日時"), _moment(payment.remitted_at) or _("未入金")))
        at = payment.accepted_at or (report.paid_at if report is not None else None) or payment.created_at
        entries.append(Entry(at, "payment", _("納付を受付（%(channel)s）", channel=label(payment.channel, "channel")),
                             payment.amount, tuple(facts)))
        if payment.remitted_at is not None:
            entries.append(Entry(payment.remitted_at, "deposit", _("区の口座に入金"), payment.amount,
                                 ((_("経路"), label(payment.channel, "channel")),)))
    for refund in refunds:
        entries.append(Entry(refund.created_at, "refund", _("返金を申請"), refund.amount, (
            (_("状態"), label(refund.status, "refund_status")), (_("申請者"), refund.requested_by),
            (_("承認者"), refund.approved_by or ""))))
    return entries


def _agency_entries(session: Session, municipality_id: int, reports: Sequence[AgencyReport]) -> list[Entry]:
    """Each agency record as it was received: one entry per file it came in (速報, 確報, 取消), with its line.

    eLTAX payment data shares the rows (its file is both their 速報 and their 確報): its one
    record shows on the 確報's entry.
    """
    ids = {i for r in reports for i in (r.preliminary_import_id, r.final_import_id, r.cancel_import_id) if i}
    imports = {i.id: i for i in session.scalars(select(AgencyImport).where(AgencyImport.id.in_(ids)))} if ids else {}
    lines = _lines_of(session, municipality_id, [r.id for r in reports])
    entries = []
    for report in reports:
        fields = ((_("収納代行業者"), report.adapter), (_("納付書番号"), f"{report.slip_number}-{report.reissue}"),
                  (_("バーコード"), report.barcode), (_("店舗・アプリ"), report.channel),
                  (_("チェーンコード"), report.chain_code), (_("店舗コード"), report.store_code),
                  (_("支払日時（店舗）"), _moment(report.paid_at)), (_("振込予定日"), _day(report.remittance_on)))
        # Each record's caption names its report: a page may show two payments' 速報, and each scrolling
        # line is a region whose name must be its own.
        for kind, import_id, title, caption in (
                ("preliminary", report.preliminary_import_id, _("速報を受信"),
                 _("速報のレコード（受信したまま、報告 #%(id)s）", id=report.id)),
                ("final", report.final_import_id, _("確報を受信"),
                 _("確報のレコード（受信したまま、報告 #%(id)s）", id=report.id)),
                ("cancel", report.cancel_import_id, _("速報取消を受信"),
                 _("速報取消のレコード（受信したまま、報告 #%(id)s）", id=report.id))):
            received = imports.get(import_id) if import_id else None
            if received is None:
                continue
            if report.record_id is None:
                record = Received(f"received-{report.id}-{kind}", caption, lines.get((report.id, kind)))
            elif kind == "final":
                record = Received(f"received-{report.id}-eltax",
                                  _("eLTAXのレコード（受信したまま、報告 #%(id)s）", id=report.id),
                                  lines.get((report.id, "eltax")), "0030")
            else:
                record = None
            entries.append(Entry(received.imported_at, "agency", title, report.amount, (
                *fields, (_("ファイル"), received.filename), (_("ファイルのSHA-256"), received.sha256[:16] + "…")),
                received=record))
    return entries


def _lines_of(session: Session, municipality_id: int, report_ids: list[int]) -> dict[tuple[int, str], str]:
    """The reports' records as received, by (report id, kind)."""
    if not report_ids:
        return {}
    rows = session.execute(select(AgencyReportLine.agency_report_id, AgencyReportLine.kind, AgencyReportLine.line)
                           .where(AgencyReportLine.municipality_id == municipality_id,
                                  AgencyReportLine.agency_report_id.in_(report_ids)))
    return {(row.agency_report_id, row.kind): row.line for row in rows}


def _remittance_entries(session: Session, item: ReconException, adapter: str, account: str | None,
                        day: date) -> list[Entry]:
    """A remittance short: what the agency's 確報 promised for the day against what the bank statement shows."""
    promised = session.execute(select(AgencyReport.amount, AgencyReport.slip_number).where(
        AgencyReport.municipality_id == item.municipality_id, AgencyReport.adapter == adapter,
        AgencyReport.remittance_on == day, AgencyReport.cancel_import_id.is_(None))).all()
    deposits = session.scalars(select(AgencyDeposit).where(
        AgencyDeposit.municipality_id == item.municipality_id, AgencyDeposit.deposited_on == day,
        or_(AgencyDeposit.adapter == adapter, AgencyDeposit.adapter.is_(None))).order_by(AgencyDeposit.id)).all()
    entries = [Entry(_at_day(day), "agency", _("確報による振込予定"), sum(a for a, _n in promised), (
        (_("収納代行業者"), adapter), (_("振込予定日"), _day(day)), (_("件数"), f"{len(promised):,}"),
        (_("納付書番号"), "、".join(sorted(n for _a, n in promised)[:20]))))]
    for deposit in deposits:
        entries.append(Entry(deposit.created_at, "deposit", _("入金を記録（銀行の明細）"), deposit.amount, (
            (_("入金日"), _day(deposit.deposited_on)), (_("口座"), deposit.account or _("口座の記載なし")),
            (_("振込の摘要"), deposit.reference), (_("記録者"), deposit.entered_by))))
    if not deposits:
        entries.append(Entry(_at_day(day), "deposit", _("この日の入金記録なし"), 0, ((_("口座"), account or ""),)))
    return entries


def _record_entries(session: Session, municipality_id: int, payment_ids: list[int],
                    report_ids: list[int]) -> list[Entry]:
    where = []
    if payment_ids:
        where.append(ReceiptRecord.payment_id.in_(payment_ids))
    if report_ids:
        where.append(ReceiptRecord.agency_report_id.in_(report_ids))
    if not where:
        return []
    rows = session.execute(select(ReceiptRecord, ReceiptQueue.record_id)
                           .outerjoin(ReceiptQueue, (ReceiptQueue.record_id == ReceiptRecord.id)
                                      & (ReceiptQueue.municipality_id == ReceiptRecord.municipality_id))
                           .where(ReceiptRecord.municipality_id == municipality_id, or_(*where))
                           .order_by(ReceiptRecord.id)).all()
    return [Entry(record.created_at, "record",
                  _("基幹システムへの収納データ（%(kind)s）", kind=label(record.kind, "record_kind")),
                  -record.amount if record.kind == "reversal" else record.amount, (
                      (_("理由"), label(record.reason, "record_reason")),
                      (_("経路"), label(record.channel, "channel")),
                      (_("収納日"), _day(record.business_date)),
                      (_("送信"), _("未送信（次のファイルで送信）") if unsent is not None else _("送信済み")),
                      (_("収納データ番号"), str(record.id))))
            for record, unsent in rows]


def _exception_entries(session: Session, exceptions: Sequence[ReconException]) -> list[Entry]:
    entries = [Entry(e.created_at, "exception", _("照合の例外: %(kind)s", kind=label(e.kind, "exception_kind")),
                     e.amount, ((_("状態"), label(e.status, "exception_status")),
                                *detail_facts(e.details)),
                     Link("staff.exception_detail", {"exception_id": e.id})) for e in exceptions]
    if exceptions:
        events = session.scalars(select(Event).where(Event.municipality_id == exceptions[0].municipality_id,
                                                     Event.subject_type == "recon_exception",
                                                     Event.subject_id.in_([str(e.id) for e in exceptions]))
                                 .order_by(Event.id))
        entries += [Entry(event.recorded_at, "action", action_title(event.kind), None,
                          ((_("担当者"), event.actor), *detail_facts(_action_data(event.data))))
                    for event in events]
    return entries


def _action_data(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (data or {}).items() if k in ("resolution", "assigned_to")}


_ACTIONS = {
    "exception.assigned": _l("担当を割り当て"), "exception.commented": _l("メモを追加"),
    "exception.resolved": _l("処理済みにした"), "exception.resolution_proposed": _l("処理を提案（承認待ち）"),
    "exception.resolution_approved": _l("処理を承認"), "exception.resolution_sent_back": _l("処理を差し戻し"),
}


def action_title(kind: str) -> str:
    name = _ACTIONS.get(kind)
    return str(name) if name is not None else kind


# The facts the reconciliation writes into an exception's details, by key.
DETAIL_LABELS = {
    "billed": _l("請求額"), "paid": _l("納付額"), "difference": _l("差額"), "expected": _l("予定額"),
    "received": _l("入金額"), "payments": _l("件数"), "fees": _l("手数料"), "store_deadline": _l("コンビニ取扱期限"),
    "due_date": _l("納期限"), "days_late": _l("遅れた日数"), "paid_on": _l("支払日"), "final_due_by": _l("確報の期限"),
    "adapter": _l("収納代行業者・決済事業者"), "account": _l("口座"), "slip_status": _l("納付書の状態"),
    "closed_reason": _l("消込の理由"), "closed_on": _l("消込日"), "reason": _l("内容"),
    "expected_accounts": _l("予定の口座"), "received_on_accounts": _l("入金された口座"), "reference": _l("参照番号"),
    "provider_payment_id": _l("決済事業者の取引番号"), "receipt_number": _l("領収番号"), "terminal": _l("端末"),
    "payment_id": _l("納付番号"), "resolution": _l("処理"), "assigned_to": _l("担当"),
}
_YEN_KEYS = frozenset({"billed", "paid", "difference", "expected", "received", "fees"})

# The reasons the reconciliation writes (English in the record, for developers), in Japanese for staff.
REASONS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"no slip (?P<number>\d+) issue (?P<reissue>\d+)"),
     _l("納付書番号 %(number)s（再発行 %(reissue)s）の納付書は発行されていません")),
    (re.compile(r"no such slip"), _l("該当する納付書がありません")),
    (re.compile(r"no instalment has this eL番号"), _l("このeL番号の期別がありません")),
    (re.compile(r"paid with a slip that was reissued or voided"), _l("再発行または無効化された納付書で納付されました")),
    (re.compile(r"a 確報 came before any 速報; booked from the 確報"),
     _l("速報より先に確報が届きました。確報で計上しました")),
    (re.compile(r"the store voided a payment it had reported.*"),
     _l("店舗が報告済みの納付を取り消しました（速報取消）。納付を取り消し、収納データを戻し入れました")),
    (re.compile(r"the instalment was already paid; a refund is requested"),
     _l("この期別は納付済みでした。過誤納金として扱います")),
    (re.compile(r"the instalment was paid through another channel.*"),
     _l("この期別は他の経路で納付済みでした。過誤納金として基幹システムへ引き継ぎます")),
    (re.compile(r"the claim was cancelled.*"), _l("賦課が取り消されていました。納付金は基幹システムへ引き継ぎます")),
    (re.compile(r"the provider keeps its fee out of the payout.*"),
     _l("決済事業者が手数料を差し引いて入金しました。公金は総額で計上し、手数料は請求書で支払います")),
    (re.compile(r"sent to the core system as an overpayment for 充当 or 還付"),
     _l("過誤納金として基幹システムへ送信しました（充当・還付は基幹システムで）")),
    (re.compile(r"unknown_remitter"), _l("振込人が不明です")),
    (re.compile(r"wrong_account"), _l("予定と違う口座に入金されました")),
    (re.compile(r"deposit_without_account"), _l("口座の記載がない入金です")),
    (re.compile(r"arrived_on_other_account"), _l("別の口座に入金されました")),
]


def translated_reason(text: str) -> str:
    for pattern, message in REASONS:
        match = pattern.fullmatch(text)
        if match:
            return str(message) % match.groupdict() if match.groupdict() else str(message)
    return text


def detail_facts(details: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An exception's details as labelled facts in the page's language (yen with separators)."""
    facts = []
    for key, value in (details or {}).items():
        name = DETAIL_LABELS.get(key)
        if key in _YEN_KEYS and isinstance(value, int):
            shown = _yen(value)
        elif key == "reason" and isinstance(value, str):
            shown = translated_reason(value)
        elif key == "slip_status" and isinstance(value, str):
            shown = label(value, "slip_status")
        elif key == "closed_reason" and isinstance(value, str):
            shown = label(value, "closed_reason")
        elif key == "resolution" and isinstance(value, str):
            shown = label(value, "resolution")
        elif key == "adapter" and isinstance(value, str):
            shown = value
        elif isinstance(value, list):
            shown = "、".join(map(str, value))
        else:
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        facts.append((str(name) if name is not None else key, shown))
    return facts


def void_reason(reason: str | None) -> str:
    known = {"assessment amended": _l("賦課の更正"), "reissued": _l("再発行"), "closed": _l("基幹システムで消込")}
    found = known.get(reason or "")
    return str(found) if found is not None else (reason or "")


def subject_of(item: ReconException) -> str:
    """What the exception is about, in words (its subject key is for the machine)."""
    kind, _sep, rest = item.subject_key.partition(":")
    if kind == "agency_report":
        return _("収納代行業者の報告 #%(id)s", id=rest)
    if kind == "remittance":
        match = _REMITTANCE.fullmatch(item.subject_key)
        if match:
            return _("%(adapter)s の %(day)s の振込", adapter=match["adapter"], day=match["day"])
    if kind == "fees":
        adapter, _sep2, day = rest.partition(":")
        return _("%(adapter)s の %(day)s の手数料", adapter=adapter, day=day)
    if kind == "payment":
        return _("納付 #%(id)s", id=rest)
    if kind == "settlement":
        return _("決済事業者の精算の取引 %(ref)s", ref=rest)
    if kind == "deposit":
        account, _sep2, reference = rest.partition(":")
        return _("口座 %(account)s への入金 %(reference)s", account=account, reference=reference)
    if kind == "sale":
        return _("窓口の売上 #%(id)s", id=rest)
    return item.subject_key

