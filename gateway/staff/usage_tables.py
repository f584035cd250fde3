"""The usage report's tables in the page's language: the page, its CSV and its PDF all show these cells.

The figures come from `reconciliation.usage`; here they get their headings and names (through
the message catalogue) and their thousands separators.
"""
from __future__ import annotations

from flask_babel import gettext as _

from gateway.i18n import label
from reconciliation.usage import ELSEWHERE, GATEWAY, TENDERS, Section, Usage, change, per_cent, shares


def group_names() -> dict[str, str]:
    return {GATEWAY: _("キャッシュレス（ゲートウェイ）"), ELSEWHERE: _("他の経路（基幹システムの報告）")}


def _n(value: int) -> str:
    return f"{value:,}"


def _year_before(month: str) -> str:
    return f"{int(month[:4]) - 1:04d}{month[4:]}"


def _month_before(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    return f"{year - 1:04d}-12" if number == 1 else f"{year:04d}-{number - 1:02d}"


def sections(u: Usage) -> list[Section]:
    """The report's tables, their headings and names in the page's language."""
    group_name = group_names()
    out = []
    rows = []
    for group, channel in u.channels:
        figures = [u.trend.get((group, channel, m), (0, 0)) for m in u.months]
        if not any(n for n, _y in figures):
            continue
        for m, (n, yen) in zip(u.months, figures, strict=True):
            if n:
                rows.append([m, group_name[group], label(channel, "channel"), _n(n), _n(yen)])
    rows.sort(key=lambda r: r[0])
    total = [sum(n for (_g, _c, m), (n, _y) in u.trend.items()), sum(y for (n, y) in u.trend.values())]
    out.append(Section("trend", _("月別・経路別の件数と金額"),
                       [_("月"), _("経路の区分"), _("経路"), _("件数"), _("金額（円）")], rows,
                       [[_("合計"), "", "", _n(total[0]), _n(total[1])]], 3))
    months = []
    for m in u.months:
        n, yen = u.month_totals[m]
        before = u.month_totals[_month_before(m)][1]  # April's: March of the year before, also counted
        months.append([m, _n(n), _n(yen), per_cent(change(yen, before)),
                       per_cent(change(yen, u.month_totals[_year_before(m)][1]))])
    out.append(Section("change", _("月の合計と増減（金額）"),
                       [_("月"), _("件数"), _("金額（円）"), _("前月比"), _("前年同月比")], months,
                       [[_("合計"), _n(total[0]), _n(total[1]), "", ""]], 1))
    funds = []
    sums = {GATEWAY: [0, 0], ELSEWHERE: [0, 0]}
    for code, name in u.funds:
        parts = [u.fund_figures.get((code, g), (0, 0)) for g in (GATEWAY, ELSEWHERE)]
        split = shares([y for _n2, y in parts])
        for g, (n, yen), share in zip((GATEWAY, ELSEWHERE), parts, split, strict=True):
            sums[g][0] += n
            sums[g][1] += yen
            funds.append([f"{code} {name}", group_name[g], _n(n), _n(yen), per_cent(share).lstrip("+")])
    split = shares([sums[GATEWAY][1], sums[ELSEWHERE][1]])
    totals = [[_("合計"), group_name[g], _n(sums[g][0]), _n(sums[g][1]), per_cent(s).lstrip("+")]
              for g, s in zip((GATEWAY, ELSEWHERE), split, strict=True)]
    out.append(Section("funds", _("会計区分別の割合（キャッシュレスと他の経路）"),
                       [_("会計区分"), _("経路の区分"), _("件数"), _("金額（円）"), _("割合（金額）")],
                       funds, totals, 2))
    tenders = []
    for m in u.months:
        for brand in [*TENDERS, *sorted({b for (mm, b) in u.tenders if mm == m} - set(TENDERS))]:
            if (m, brand) in u.tenders:
                n, yen = u.tenders[(m, brand)]
                tenders.append([m, label(brand, "tender"), _n(n), _n(yen)])
    out.append(Section("tenders", _("窓口の電子マネー・QR決済（支払方法別・月別）"),
                       [_("月"), _("支払方法"), _("件数"), _("金額（円）")], tenders,
                       [[_("合計"), "", _n(sum(n for n, _y in u.tenders.values())),
                         _n(sum(y for _n2, y in u.tenders.values()))]], 2))
    return out

