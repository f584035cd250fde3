"""Reports for accounting staff and the ward council: tables as plain rows, rendered to CSV, PDF or charts.

Every report is a `Report` (title, column names, rows of plain values); the staff screens
show it, `to_csv` and `to_pdf` make the downloads, `bar_chart_svg` draws the figures people
would rather look at than read. Amounts are integer yen; the card system usage fee is its
own column, never part of revenue.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from xml.sax.saxutils import escape

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.fiscal import fiscal_year_of
from gateway.i18n import label as code_name
from gateway.models import Assessment, FundType, Payment, ReconException, ReconRun, Sale, SaleLine
from gateway.models.base import on_ward
from gateway.rendering.slip_pdf import registered_font
from gateway.services.agency_checks import expected_remittances
from gateway.services.reference import get_municipality
from reconciliation.run import TOKYO, day_figures

PAID = ("succeeded", "partially_refunded", "refunded")
CHANNEL_NAMES = {"agency": _l("コンビニ・スマホアプリ（収納代行）"), "card": _l("クレジットカード"),
                 "paypay": _l("PayPay"), "emoney": _l("窓口 電子マネー・QR"), "eltax": _l("eLTAX")}


@dataclass(frozen=True)
class Report:
    """A report: rows, the totals under them, and what to draw.

    Each total is the sum of the rows above it, column by column (the tests hold every report
    to it). Only the `figures` columns (counts and yen) are numbers to add and get thousands
    separators; years, codes and dates are shown as they are.
    """

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    chart: tuple[str, str] | None = None  # (label column, value column) for a bar chart
    stack: str | None = None  # a column whose values split each bar into segments (a stacked chart)
    totals: list[tuple[Any, ...]] = field(default_factory=list)
    figures: tuple[str, ...] = ()
    note: str = ""  # what the report shows and why, in a sentence (e.g. a day not reconciled yet)
    appendix: list[tuple[Any, ...]] = field(default_factory=list)  # (label, count) lines after the totals

    def cell(self, column: int, value: Any) -> str:
        """A value as shown: figures with thousands separators, anything else as it is."""
        if value is None:
            return ""
        if self.columns[column] in self.figures and isinstance(value, int):
            return f"{value:,}"
        return str(value)

    def is_figure(self, column: int) -> bool:
        return self.columns[column] in self.figures


# The texts are messages of the catalogue (gateway.i18n): Japanese, or English in a request on the switch;
# a report is built in one language, and its columns are compared as built.
DAILY_COLUMNS = (_l("区分"), _l("件数"), _l("歳入（円）"), _l("歳入外（二重納付など・円）"), _l("利用料（円・歳入外）"))


def _words(texts: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(text) for text in texts)


def daily_summary(session: Session, municipality_code: str, business_date: date) -> Report:
    """The day by channel: payments, revenue, money kept that is not revenue, system usage fees; open exceptions.

    Counted from the payments as they stand (read-only), so that the report always agrees with
    them, also for a day reconciled before its last payment came in; it says whether and when
    the day was reconciled. Each channel's row holds all its payments: a double payment is in
    the count and the 歳入外 column, never in revenue.
    """
    municipality = get_municipality(session, municipality_code)
    run = session.scalar(select(ReconRun).where(ReconRun.municipality_id == municipality.id,
                                                ReconRun.business_date == business_date))
    summary = day_figures(session, municipality_code, business_date)
    channels: dict[str, list[int]] = {}
    for part, at in ((summary.by_channel, 1), (summary.unapplied, 2)):
        for c in part:
            figures = channels.setdefault(c["channel"], [0, 0, 0, 0])
            figures[0] += c["count"]
            figures[at] += c["amount"]
            figures[3] += c["fee"]
    rows: list[tuple[Any, ...]] = [(str(CHANNEL_NAMES.get(channel, channel)), *channels[channel])
                                   for channel in sorted(channels, key=lambda c: _order(CHANNEL_NAMES, c))]
    totals = [(_("合計"), summary.payments, summary.revenue, summary.received - summary.revenue, summary.fees)]
    if run:
        last = (run.finished_at or run.started_at).astimezone(TOKYO)
        note = (_("照合を実行済み（%(runs)s回、最後は %(last)s）。", runs=run.runs, last=f"{last:%Y-%m-%d %H:%M}")
                + _("金額はいまの支払の記録から集計しています（返金は差し引いていません）。"))
    else:
        note = _("この日はまだ照合していません: 支払の記録から集計した値です（例外は照合の実行後に出ます）。")
    exceptions = session.execute(
        select(ReconException.kind, func.count()).where(ReconException.municipality_id == municipality.id,
                                                        ReconException.business_date == business_date,
                                                        ReconException.status != "resolved")
        .group_by(ReconException.kind).order_by(ReconException.kind)).all()
    columns = _words(DAILY_COLUMNS)
    title = _("日次照合 %(day)s", day=f"{business_date:%Y-%m-%d}") + ("" if run else _("（未実行）"))
    appendix = [(_("未解決の例外（%(kind)s）", kind=code_name(kind, "exception_kind")), int(count))
                for kind, count in exceptions]
    return Report("daily", title, columns, rows, (columns[0], columns[2]), totals=totals, figures=columns[1:],
                  note=note, appendix=appendix)


def default_day(session: Session, municipality_code: str, today: date) -> tuple[date, str]:
    """The day the daily report opens on without a date, and why: the latest reconciled day, else the latest paid.

    Yesterday is not reconciled until the night's run: opening on it would show zeros.
    """
    municipality = get_municipality(session, municipality_code)
    reconciled = session.scalar(select(func.max(ReconRun.business_date))
                                .where(ReconRun.municipality_id == municipality.id))
    if reconciled is not None:
        return reconciled, _("日付の指定がないため、照合を最後に実行した日（%(day)s）を表示しています。",
                             day=f"{reconciled:%Y-%m-%d}")
    paid = session.scalar(select(func.max(Payment.accepted_at)).where(Payment.municipality_id == municipality.id,
                                                                       Payment.status.in_(PAID)))
    if paid is not None:
        day = paid.astimezone(TOKYO).date()
        return day, _("まだ照合を実行した日がないため、最後に支払があった日（%(day)s）を表示しています。",
                      day=f"{day:%Y-%m-%d}")
    return today, _("まだ照合を実行した日も支払もありません。")


REMITTANCE_COLUMNS = (_l("収納代行"), _l("口座"), _l("入金予定日"), _l("件数"), _l("予定額（円）"), _l("入金額（円）"),
                      _l("差額（円）"))


def remittances(session: Session, municipality_code: str) -> Report:
    """Expected deposits per agency (確報 data) and per provider (the day's settlement) against what arrives.

    For a provider the expected amount is what the gateway recorded (gross, fee charged to the payer
    included) and the received one is the payout net of the provider's fees, from the day's run.
    The chart stacks each remittance date's expected yen by agency or provider.
    """
    rows: list[tuple[Any, ...]] = [(code_name(r.adapter, "adapter"), r.account or "", r.remittance_on.isoformat(),
                                    r.payments, r.expected, r.received, r.difference)
                                   for r in expected_remittances(session, municipality_code)]
    municipality = get_municipality(session, municipality_code)
    for run in session.scalars(select(ReconRun).where(ReconRun.municipality_id == municipality.id)
                               .order_by(ReconRun.business_date)):
        for provider, f in sorted((run.summary.get("providers") or {}).items()):
            rows.append((code_name(provider, "adapter"), "", run.business_date.isoformat(), f["payments"],
                         f["recorded"], f["payout"], f["payout"] - f["recorded"]))
    columns = _words(REMITTANCE_COLUMNS)
    return Report("remittances", _("入金予定と入金実績（収納代行・決済事業者）"), columns, rows,
                  (columns[2], columns[4]), stack=columns[0], totals=[_sums(_("合計"), columns, rows, 3)],
                  figures=columns[3:])


RECEIPT_COLUMNS = (_l("科目コード"), _l("科目"), _l("年度"), _l("件数"), _l("金額（円）"))


def receipts_by_fund(session: Session, municipality_code: str) -> Report:
    """Receipts (applied payments) by fund type and fiscal year: instalments in their year, counter fees in the sale's.

    A counter sale counts once for each fund its lines are of.
    """
    municipality = get_municipality(session, municipality_code)
    applied = (Payment.municipality_id == municipality.id, Payment.applied, Payment.status.in_(PAID))
    grouped: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for fund, name, year, n, amount in session.execute(
            select(FundType.code, FundType.name, Assessment.fiscal_year, func.count(), func.sum(Payment.amount))
            .join(Assessment, on_ward(Payment, "assessment_id", Assessment))
            .join(FundType, on_ward(Assessment, "fund_type_id", FundType))
            .where(*applied).group_by(FundType.code, FundType.name, Assessment.fiscal_year)):
        _add(grouped, (fund, name, int(year)), int(amount), int(n))
    for fund, name, day, n, amount in session.execute(
            select(FundType.code, FundType.name, Sale.business_date, func.count(func.distinct(Payment.id)),
                   func.sum(SaleLine.amount))
            .join(Sale, on_ward(Payment, "sale_id", Sale)).join(SaleLine, SaleLine.sale_id == Sale.id)
            .join(FundType, on_ward(SaleLine, "fund_type_id", FundType))
            .where(*applied).group_by(FundType.code, FundType.name, Sale.business_date)):
        _add(grouped, (fund, name, fiscal_year_of(day)), int(amount), int(n))
    rows = [(fund, name, year, n, amount) for (fund, name, year), (n, amount) in sorted(grouped.items())]
    columns = _words(RECEIPT_COLUMNS)
    return Report("receipts", _("会計区分・年度別の収納"), columns, rows, (columns[1], columns[4]),
                  totals=[_sums(_("合計"), columns, rows, 3)], figures=columns[3:],
                  note=_("二重納付など充当していないお金は含みません。窓口手数料は会計した日の年度です。"))


def _sums(label: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], first: int,
          skip: tuple[str, ...] = ()) -> tuple[Any, ...]:
    """A totals line: `label`, then blanks, then each column from `first` on summed (but `skip`)."""
    return (label, *[""] * (first - 1), *("" if columns[i] in skip else sum(row[i] for row in rows)
                                          for i in range(first, len(columns))))


def _order(names: dict[str, str], channel: str) -> int:
    return list(names).index(channel) if channel in names else len(names) - 1


def _add(grouped: dict[Any, list[int]], key: tuple[Any, ...], amount: int, count: int = 1) -> None:
    figures = grouped[key]
    figures[0] += count
    figures[1] += amount


def to_csv(report: Report) -> bytes:
    """UTF-8 with a BOM, so that spreadsheet software opens the Japanese headings right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report.columns)
    writer.writerows(report.rows)
    writer.writerows(report.totals)
    writer.writerows(report.appendix)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def chart_series(report: Report) -> list[tuple[str, int]]:
    """The chart's bars: the value column summed per label, in first-seen order."""
    if report.chart is None:
        return []
    label_at, value_at = (report.columns.index(c) for c in report.chart)
    series: dict[str, int] = {}
    for row in report.rows:
        value = row[value_at]
        if isinstance(value, int) and row[label_at] != _("合計"):
            series[str(row[label_at])] = series.get(str(row[label_at]), 0) + value
    return list(series.items())


def chart_stacks(report: Report) -> list[tuple[str, list[tuple[str, int]]]]:
    """The stacked chart's bars: per label, the value column summed per `stack` value, in first-seen order."""
    if report.chart is None or report.stack is None:
        return []
    label_at, value_at = (report.columns.index(c) for c in report.chart)
    stack_at = report.columns.index(report.stack)
    bars: dict[str, dict[str, int]] = {}
    for row in report.rows:
        if isinstance(row[value_at], int):
            segments = bars.setdefault(str(row[label_at]), {})
            segments[str(row[stack_at])] = segments.get(str(row[stack_at]), 0) + row[value_at]
    return [(label, list(segments.items())) for label, segments in bars.items()]


PALETTE = ("#0b5cad", "#e07b00", "#2e8b57", "#c0392b", "#7b4fa0", "#8c6d1f", "#d45c9e", "#5f7380", "#17a2b8",
           "#6b8e23")


def bar_chart_svg(report: Report, width: int = 640) -> str:
    """A horizontal bar chart of `chart_series` (or of `chart_stacks`, with a legend) as inline SVG.

    No script; it prints as it shows.
    """
    plan = _chart_plan(report)
    if plan is None:
        return ""
    bars, colours, top, legend = plan
    bar, gap, label_w = 22, 8, 220
    height = (len(bars) + len(legend)) * (bar + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(report.title)}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="chart">']
    for i, (label, segments) in enumerate(bars):
        y = gap + i * (bar + gap)
        parts.append(f'<text x="{label_w - 6}" y="{y + bar * 0.7:.0f}" text-anchor="end" font-size="12">'
                     f'{escape(label)}</text>')
        x = label_w
        for name, value in segments:
            length = int((width - label_w - 110) * value / top)
            title = f"<title>{escape(name)} {value:,}</title>" if name else ""
            parts.append(f'<rect x="{x}" y="{y}" width="{max(length, 1)}" height="{bar}" fill="{colours[name]}">'
                         f'{title}</rect>')
            x += length
        total = sum(v for _, v in segments)
        parts.append(f'<text x="{x + 6}" y="{y + bar * 0.7:.0f}" font-size="12">{total:,}</text>')
    for i, name in enumerate(legend):
        y = gap + (len(bars) + i) * (bar + gap)
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="14" height="14" fill="{colours[name]}"/>')
        parts.append(f'<text x="{label_w + 20}" y="{y + bar * 0.7:.0f}" font-size="12">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _chart_plan(report: Report) -> tuple[list[tuple[str, list[tuple[str, int]]]], dict[str, str], int,
                                        list[str]] | None:
    """What a chart draws, on screen or paper: its bars, a colour per segment, the longest bar, the legend."""
    bars = (chart_stacks(report) if report.stack is not None
            else [(label, [("", value)]) for label, value in chart_series(report)])
    if not bars:
        return None
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in
               enumerate(dict.fromkeys(name for _, segments in bars for name, _ in segments))}
    top = max(sum(v for _, v in segments) for _, segments in bars) or 1
    return bars, colours, top, [] if report.stack is None else list(colours)


def chart_drawing(report: Report, font: str, width: float = 700) -> Drawing | None:
    """The same chart as `bar_chart_svg`, drawn for the PDF (reportlab graphics), or None without data."""
    plan = _chart_plan(report)
    if plan is None:
        return None
    bars, colours, top, legend = plan
    bar, gap, label_w = 14, 5, 170
    height = (len(bars) + len(legend)) * (bar + gap) + gap
    drawing = Drawing(width, height)
    for i, (label, segments) in enumerate(bars):
        y = height - gap - (i + 1) * (bar + gap) + gap
        drawing.add(String(label_w - 6, y + 3, label, fontName=font, fontSize=8, textAnchor="end"))
        x: float = label_w
        for name, value in segments:
            length = (width - label_w - 80) * value / top
            drawing.add(Rect(x, y, max(length, 0.5), bar, fillColor=colors.HexColor(colours[name]), strokeWidth=0))
            x += length
        drawing.add(String(x + 4, y + 3, f"{sum(v for _, v in segments):,}", fontName=font, fontSize=8))
    for i, name in enumerate(legend):
        y = height - gap - (len(bars) + i + 1) * (bar + gap) + gap
        drawing.add(Rect(label_w, y + 2, 10, 10, fillColor=colors.HexColor(colours[name]), strokeWidth=0))
        drawing.add(String(label_w + 14, y + 3, name, fontName=font, fontSize=8))
    return drawing


def to_pdf(report: Report) -> bytes:
    """The report as an A4 PDF with the embedded IPAexGothic font (so it prints anywhere), its chart over its table."""
    font = registered_font()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm, title=report.title, author="kokin-gateway",
                            invariant=1)
    heading_style = ParagraphStyle("h", fontName=font, fontSize=14, spaceAfter=8)
    body = ParagraphStyle("p", fontName=font, fontSize=9, spaceAfter=6)
    story: list[Any] = [Paragraph(escape(report.title), heading_style)]
    if report.note:
        story.append(Paragraph(escape(report.note), body))
    drawing = chart_drawing(report, font, doc.width)
    if drawing is not None:
        story.append(drawing)
    story.append(_pdf_table(report, font))
    story += [Paragraph(escape(_("%(label)s: %(n)s件", label=label, n=f"{count:,}")), body)
              for label, count in report.appendix]
    doc.build(story)
    return out.getvalue()


def _pdf_table(report: Report, font: str) -> Table:
    lines = [*report.rows, *report.totals]
    data = [list(report.columns)] + [[report.cell(i, v) for i, v in enumerate(row)] for row in lines]
    table = Table(data, repeatRows=1)
    style = [("FONT", (0, 0), (-1, -1), font, 9), ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5"))]
    style += [("ALIGN", (i, 1), (i, -1), "RIGHT") for i in range(len(report.columns)) if report.is_figure(i)]
    if report.totals:
        style.append(("BACKGROUND", (0, len(report.rows) + 1), (-1, -1), colors.HexColor("#f3f3f3")))
    table.setStyle(TableStyle(style))
    return table


REPORTS: dict[str, Callable[..., Report]] = {
    "daily": daily_summary, "remittances": remittances, "receipts": receipts_by_fund}
# The usage report (how residents pay, for the ward council) has a page of its own: reconciliation.usage.
