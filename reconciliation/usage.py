"""The council's question on one page: how do residents pay, and is it growing.

For one fiscal year (April to March, months in Asia/Tokyo):

- the trend: per month and channel, the payments the gateway applied (agency and apps, card,
  PayPay, e-money at the counter, eLTAX; in the month they were accepted) and the instalments
  the core system's status feed reports paid elsewhere (bank, direct debit, the ward's cashier,
  eLTAX, other; in the month of `closed_on`, for the instalment's amount), with the change on
  the month before and on the same month a year before;
- the share per fund (会計区分): cashless through the gateway against elsewhere;
- the counter's tenders: e-money sales per brand and month.

As in the earlier usage report, a refunded payment counts at its amount (residents paid that
way) and a cancelled one not at all. Every sum is done by the database in integer yen; the
percentages are integers in tenths of a per cent, rounded so that the shares of a fund add up
to 100.0. `sections` turns the figures into the tables the page, the CSV and the PDF all show,
so that the three agree to the yen.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.orm import Session

from domain.fiscal import year_start
from gateway.i18n import CODE_LABELS
from gateway.models import Assessment, FundType, Payment, Sale, SaleLine
from gateway.models.base import on_ward
from gateway.services.reference import get_municipality
from reconciliation.run import TOKYO

PAID = ("succeeded", "partially_refunded", "refunded")
GATEWAY, ELSEWHERE = "gateway", "elsewhere"
GATEWAY_CHANNELS = ("agency", "card", "paypay", "emoney", "eltax")
ELSEWHERE_CHANNELS = ("bank", "direct_debit", "cashier", "eltax", "other")
TENDERS = tuple(CODE_LABELS["tender"])  # the counter's tenders, in the order the labels name them

Figures = tuple[int, int]  # (count, yen)
# Grouped by the selected month's name: the CASE carries its bounds as parameters, and PostgreSQL
# would not see the same expression repeated in GROUP BY as the one selected.
BY_MONTH: Any = literal_column("month")


@dataclass(frozen=True)
class Usage:
    fiscal_year: int
    months: list[str]  # "2026-04" ... "2027-03"
    channels: list[tuple[str, str]]  # (group, channel) in the order shown
    trend: dict[tuple[str, str, str], Figures]  # (group, channel, month) -> figures, this year
    month_totals: dict[str, Figures]  # this year's and last year's months
    funds: list[tuple[str, str]]  # (fund code, fund name)
    fund_figures: dict[tuple[str, str], Figures]  # (fund code, group) -> figures
    tenders: dict[tuple[str, str], Figures]  # (month, brand) -> figures


def months_of(fiscal_year: int) -> list[tuple[str, date, date]]:
    """The year's twelve months: label, first day, first day of the next."""
    out = []
    start = year_start(fiscal_year)
    for i in range(12):
        y, m = start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append((f"{y:04d}-{m:02d}", date(y, m, 1), date(ny, nm, 1)))
    return out


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=TOKYO)


def _month_of(column: Any, months: list[tuple[str, date, date]], moment: bool) -> Any:
    """A SQL expression: the month label `column` falls in (Tokyo), NULL outside the months."""
    bound = _instant if moment else (lambda d: d)
    return case(*[(and_(column >= bound(start), column < bound(end)), label) for label, start, end in months],
                else_=None)


def usage(session: Session, municipality_code: str, fiscal_year: int) -> Usage:
    municipality = get_municipality(session, municipality_code)
    this, last = months_of(fiscal_year), months_of(fiscal_year - 1)
    both = last + this
    paid = (Payment.municipality_id == municipality.id, Payment.applied, Payment.status.in_(PAID))
    elsewhere = (Assessment.municipality_id == municipality.id, Assessment.closed_reason == "paid_elsewhere")
    trend: dict[tuple[str, str, str], Figures] = {}
    month_totals: dict[str, Figures] = {label: (0, 0) for label, _, _ in both}

    def add(group: str, channel: str, month: str, n: int, yen: int) -> None:
        if month in {m for m, _, _ in this}:
            c, y = trend.get((group, channel, month), (0, 0))
            trend[(group, channel, month)] = (c + n, y + yen)
        c, y = month_totals[month]
        month_totals[month] = (c + n, y + yen)

    month = _month_of(Payment.accepted_at, both, moment=True).label("month")
    for channel, label, n, yen in session.execute(
            select(Payment.channel, month, func.count(), func.sum(Payment.amount)).where(*paid)
            .group_by(Payment.channel, BY_MONTH)):
        if label is not None:
            add(GATEWAY, channel, label, int(n), int(yen))
    closed = _month_of(Assessment.closed_on, both, moment=False).label("month")
    for channel, label, n, yen in session.execute(
            select(Assessment.closed_channel, closed, func.count(), func.sum(Assessment.amount))
            .where(*elsewhere).group_by(Assessment.closed_channel, BY_MONTH)):
        if label is not None:
            add(ELSEWHERE, channel or "other", label, int(n), int(yen))

    start, end = _instant(this[0][1]), _instant(this[-1][2])
    in_year = (Payment.accepted_at >= start, Payment.accepted_at < end)
    names: dict[str, str] = {}
    fund_figures: dict[tuple[str, str], Figures] = {}

    def add_fund(code: str, name: str, group: str, n: int, yen: int) -> None:
        names[code] = name
        c, y = fund_figures.get((code, group), (0, 0))
        fund_figures[(code, group)] = (c + n, y + yen)

    for code, name, n, yen in session.execute(
            select(FundType.code, FundType.name, func.count(), func.sum(Payment.amount))
            .join(Assessment, on_ward(Payment, "assessment_id", Assessment))
            .join(FundType, on_ward(Assessment, "fund_type_id", FundType))
            .where(*paid, *in_year).group_by(FundType.code, FundType.name)):
        add_fund(code, name, GATEWAY, int(n), int(yen))
    # Counter sales: a sale counts once for each fund its lines are of, for those lines' yen.
    for code, name, n, yen in session.execute(
            select(FundType.code, FundType.name, func.count(func.distinct(Payment.id)), func.sum(SaleLine.amount))
            .join(Sale, on_ward(Payment, "sale_id", Sale)).join(SaleLine, SaleLine.sale_id == Sale.id)
            .join(FundType, on_ward(SaleLine, "fund_type_id", FundType))
            .where(*paid, *in_year, Payment.assessment_id.is_(None)).group_by(FundType.code, FundType.name)):
        add_fund(code, name, GATEWAY, int(n), int(yen))
    for code, name, n, yen in session.execute(
            select(FundType.code, FundType.name, func.count(), func.sum(Assessment.amount))
            .join(FundType, on_ward(Assessment, "fund_type_id", FundType))
            .where(*elsewhere, Assessment.closed_on >= this[0][1], Assessment.closed_on < this[-1][2])
            .group_by(FundType.code, FundType.name)):
        add_fund(code, name, ELSEWHERE, int(n), int(yen))

    tender_month = _month_of(Payment.accepted_at, this, moment=True).label("month")
    tenders: dict[tuple[str, str], Figures] = {}
    for brand, label, n, yen in session.execute(
            select(Sale.brand, tender_month, func.count(), func.sum(Payment.amount))
            .join(Sale, on_ward(Payment, "sale_id", Sale)).where(*paid, Payment.channel == "emoney")
            .group_by(Sale.brand, BY_MONTH)):
        if label is not None:
            tenders[(label, brand)] = (int(n), int(yen))

    seen = {(g, c) for g, c, _ in trend}
    channels = [(GATEWAY, c) for c in GATEWAY_CHANNELS] + [(ELSEWHERE, c) for c in ELSEWHERE_CHANNELS]
    channels += sorted(seen - set(channels))
    return Usage(fiscal_year, [m for m, _, _ in this], channels, trend, month_totals,
                 sorted(names.items()), fund_figures, tenders)


def shares(parts: list[int]) -> list[int]:
    """Each part's share of their sum in tenths of a per cent, adding up to 1000 (largest remainder)."""
    whole = sum(parts)
    if whole <= 0:
        return [0 for _ in parts]
    floors = [p * 1000 // whole for p in parts]
    left = 1000 - sum(floors)
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] * 1000 % whole), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def change(now: int, before: int) -> int | None:
    """The change from `before` to `now` in tenths of a per cent (rounded half away from zero); None without a base."""
    if before <= 0:
        return None
    diff = (now - before) * 1000
    q, r = divmod(abs(diff), before)
    tenths = q + (1 if 2 * r >= before else 0)
    return tenths if diff >= 0 else -tenths


def per_cent(tenths: int | None) -> str:
    if tenths is None:
        return "—"
    sign = "-" if tenths < 0 else ("+" if tenths > 0 else "")
    return f"{sign}{abs(tenths) // 10}.{abs(tenths) % 10}%"


@dataclass(frozen=True)
class Section:
    """A table the page, the CSV and the PDF show alike: cells as shown (figures with separators)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    totals: list[list[str]]
    figures: int  # the columns from this one on are figures (right-aligned)


def to_csv(title: str, parts: list[Section]) -> bytes:
    """UTF-8 with a BOM like every report's CSV: the title, then each table under its own heading."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title])
    for part in parts:
        writer.writerow([])
        writer.writerow([part.title])
        writer.writerow(part.columns)
        writer.writerows(part.rows)
        writer.writerows(part.totals)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


PALETTE = ("#0b5cad", "#b35900", "#2e7d4f", "#b03a2e", "#6c4596", "#7a5c12", "#b8407f", "#4f616c", "#127c8c",
           "#556b1f")
PATTERNS = ("", "diagonal", "dots", "horizontal", "cross", "vertical", "diagonal", "dots", "horizontal", "cross")


def stacks(u: Usage, label: Callable[[str, str], str], group_name: dict[str, str]) -> tuple[
        list[str], list[tuple[str, list[int]]]]:
    """The chart's series: per channel with figures (its name), the yen of each month."""
    series = []
    for group, channel in u.channels:
        values = [u.trend.get((group, channel, m), (0, 0))[1] for m in u.months]
        if any(values):
            series.append((f"{label(channel, 'channel')}（{group_name[group]}）", values))
    return u.months, series


def _pattern_defs() -> str:
    shapes = {
        "diagonal": '<path d="M0,8 L8,0" stroke="#fff" stroke-width="1.5"/>',
        "dots": '<circle cx="4" cy="4" r="1.6" fill="#fff"/>',
        "horizontal": '<path d="M0,4 L8,4" stroke="#fff" stroke-width="1.5"/>',
        "cross": '<path d="M0,0 L8,8 M8,0 L0,8" stroke="#fff" stroke-width="1.2"/>',
        "vertical": '<path d="M4,0 L4,8" stroke="#fff" stroke-width="1.5"/>',
    }
    defs = []
    for i, colour in enumerate(PALETTE):
        pattern = PATTERNS[i]
        defs.append(f'<pattern id="usage-p{i}" width="8" height="8" patternUnits="userSpaceOnUse">'
                    f'<rect width="8" height="8" fill="{colour}"/>{shapes.get(pattern, "")}</pattern>')
    return "<defs>" + "".join(defs) + "</defs>"


def stacked_chart_svg(title: str, description: str, months: list[str],
                      series: list[tuple[str, list[int]]], width: int = 760,
                      yen: Callable[[int], str] = lambda amount: f"{amount:,}円") -> str:
    """Vertical bars per month, a segment per channel (colour and pattern), the total on each bar; a legend.

    The same figures are in the table beside it; the SVG has a title and a description. `yen`
    writes an amount in the page's language.
    """
    if not series:
        return ""
    top = max(sum(values[i] for _, values in series) for i in range(len(months))) or 1
    left, plot_h, bar_w = 20, 220, (width - 40) // len(months)
    legend_y = plot_h + 50
    height = legend_y + 20 * len(series) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="usage-chart-title" '
             f'aria-describedby="usage-chart-desc" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" class="chart">',
             f'<title id="usage-chart-title">{escape(title)}</title>',
             f'<desc id="usage-chart-desc">{escape(description)}</desc>', _pattern_defs()]
    for i, month in enumerate(months):
        x = left + i * bar_w + 4
        y = 20 + plot_h
        total = 0
        for s, (name, values) in enumerate(series):
            value = values[i]
            if not value:
                continue
            h = max(plot_h * value // top, 1)
            y -= h
            total += value
            parts.append(f'<rect x="{x}" y="{y}" width="{bar_w - 8}" height="{h}" fill="url(#usage-p{s % 10})" '
                         f'stroke="#fff" stroke-width="0.5"><title>{escape(month)} {escape(name)} '
                         f'{escape(yen(value))}</title></rect>')
        if total:
            parts.append(f'<text x="{x + (bar_w - 8) // 2}" y="{y - 4}" text-anchor="middle" font-size="10">'
                         f'{total:,}</text>')
        parts.append(f'<text x="{x + (bar_w - 8) // 2}" y="{20 + plot_h + 16}" text-anchor="middle" '
                     f'font-size="11">{escape(month[2:])}</text>')
    for s, (name, _values) in enumerate(series):
        y = legend_y + s * 20
        parts.append(f'<rect x="{left}" y="{y}" width="16" height="16" fill="url(#usage-p{s % 10})"/>')
        parts.append(f'<text x="{left + 22}" y="{y + 13}" font-size="12">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def share_chart_svg(title: str, rows: list[tuple[str, int, int]], gateway: str, elsewhere: str,
                    width: int = 560) -> str:
    """Per fund one 100% bar: the cashless share (solid) and the elsewhere share (hatched), labelled in text."""
    if not rows:
        return ""
    label_w, bar_h = 200, 20
    height = 30 + len(rows) * (bar_h + 8) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="share-chart-title" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="chart">',
             f'<title id="share-chart-title">{escape(title)}</title>', _pattern_defs()]
    span = width - label_w - 120
    for i, (name, ours, theirs) in enumerate(rows):
        y = 10 + i * (bar_h + 8)
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{escape(name)}</text>')
        w = span * ours // 1000
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="url(#usage-p0)"/>')
        parts.append(f'<rect x="{label_w + w}" y="{y}" width="{span - w}" height="{bar_h}" fill="url(#usage-p1)"/>')
        shown = f"{per_cent(ours).lstrip('+')} / {per_cent(theirs).lstrip('+')}"
        parts.append(f'<text x="{label_w + span + 6}" y="{y + 14}" font-size="11">{shown}</text>')
    y = 10 + len(rows) * (bar_h + 8) + 6
    parts.append(f'<rect x="{label_w}" y="{y}" width="14" height="14" fill="url(#usage-p0)"/>'
                 f'<text x="{label_w + 18}" y="{y + 12}" font-size="12">{escape(gateway)}</text>'
                 f'<rect x="{label_w + 180}" y="{y}" width="14" height="14" fill="url(#usage-p1)"/>'
                 f'<text x="{label_w + 198}" y="{y + 12}" font-size="12">{escape(elsewhere)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_pdf(title: str, note: str, parts: list[Section], months: list[str],
           series: list[tuple[str, list[int]]]) -> bytes:
    """The same tables as an A4 PDF with the stacked chart drawn by reportlab, in the embedded Japanese font."""
    from reportlab.graphics.shapes import Drawing, Rect, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from gateway.rendering.slip_pdf import registered_font

    font = registered_font()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm, title=title, author="kokin-gateway", invariant=1)
    heading = ParagraphStyle("h", fontName=font, fontSize=14, spaceAfter=8)
    sub = ParagraphStyle("h2", fontName=font, fontSize=11, spaceBefore=8, spaceAfter=4)
    body = ParagraphStyle("p", fontName=font, fontSize=9, spaceAfter=6)
    story: list[Any] = [Paragraph(escape(title), heading), Paragraph(escape(note), body)]
    if series:
        width, plot_h = 700, 160
        drawing = Drawing(width, plot_h + 40 + 14 * len(series))
        top = max(sum(v[i] for _, v in series) for i in range(len(months))) or 1
        bar_w = (width - 20) / len(months)
        base = 14 * len(series) + 24
        for i, month in enumerate(months):
            x, y = 10 + i * bar_w, float(base)  # drawing points, not money
            for s, (_name, values) in enumerate(series):
                if values[i]:
                    h = max(plot_h * values[i] / top, 0.5)
                    drawing.add(Rect(x, y, bar_w - 6, h, fillColor=colors.HexColor(PALETTE[s % 10]),
                                     strokeColor=colors.white, strokeWidth=0.5))
                    y += h
            total = sum(v[i] for _, v in series)
            if total:
                drawing.add(String(x + (bar_w - 6) / 2, y + 2, f"{total:,}", fontName=font, fontSize=7,
                                   textAnchor="middle"))
            drawing.add(String(x + (bar_w - 6) / 2, base - 12, month, fontName=font, fontSize=7,
                               textAnchor="middle"))
        for s, (name, _values) in enumerate(series):
            y = 14 * (len(series) - 1 - s)
            drawing.add(Rect(10, y, 10, 10, fillColor=colors.HexColor(PALETTE[s % 10]), strokeColor=None))
            drawing.add(String(24, y + 2, name, fontName=font, fontSize=8))
        story.append(drawing)
    for part in parts:
        story.append(Paragraph(escape(part.title), sub))
        data = [part.columns, *part.rows, *part.totals]
        table = Table(data, repeatRows=1)
        style = [("FONT", (0, 0), (-1, -1), font, 8), ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                 ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                 ("ALIGN", (part.figures, 1), (-1, -1), "RIGHT")]
        if part.totals:
            style.append(("BACKGROUND", (0, len(part.rows) + 1), (-1, -1), colors.HexColor("#f3f3f3")))
        table.setStyle(TableStyle(style))
        story += [table, Spacer(1, 4)]
    doc.build(story)
    return out.getvalue()
