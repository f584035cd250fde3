"""What the pay pages say: their messages (in the catalogue, gateway.i18n), yen, dates and fiscal years.

The texts are Japanese message ids like the staff screens'; English comes from
gateway/translations. The messages the views choose (an error, why a slip cannot be paid)
are here, by the code that chooses them.
"""
from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

REIWA_START = date(2019, 5, 1)
WEEKDAYS_JA = "月火水木金土日"

ERROR_TITLE = _l("お支払いを開始できませんでした")
ERROR_OTHER = _l("お支払いを開始できませんでした。もう一度お試しください。")
NOT_FOUND_TITLE = _l("ページが見つかりません")
NOT_FOUND = _l("このお支払いページは存在しないか、URLが正しくありません。"
               "納付書のQRコードをもう一度読み取ってください。")
NOT_ON_THIS_PAGE_ELTAX = _l("この納付書は、このページではお支払いいただけません。"
                            "地方税お支払サイトでお支払いください。")

# A slip's status as the resident reads it (the staff screens name it otherwise: gateway.i18n.CODE_LABELS).
SLIP_STATUS = {"issued": _l("未納"), "paid": _l("お支払い済み"), "void": _l("無効（再発行済み）"),
               "closed": _l("お支払い不要")}

# Error codes of the services -> what the resident reads.
ERROR_MESSAGES = {
    "provider_unavailable": _l("決済サービスに接続できません。しばらくしてからもう一度お試しください。"),
    "provider_rejected": _l("決済サービスがお支払いを受け付けませんでした。別のお支払い方法をお試しください。"),
    "channel_not_accepted": _l("この納付書はこのお支払い方法ではお支払いいただけません。"),
    "channel_unavailable": _l("この納付書はこのお支払い方法ではお支払いいただけません。"),
    "slip_paid": _l("この納付書はすでにお支払い済みです。"),
    "slip_void": _l("この納付書は無効です。新しい納付書でお支払いください。"),
    "slip_not_payable": _l("この納付書はお支払いいただけません（納付済みまたは取消）。"
                           "納付書のページで理由をご確認ください。"),
    "slip_expired": _l("この納付書は支払期限を過ぎています。"
                       "区役所の担当窓口へ新しい納付書の発行をお問い合わせください。"),
    "idempotency_in_progress": _l("お支払いの手続きを処理しています。少し待ってからお支払い状況を確認してください。"),
    "csrf": _l("ページの有効期限が切れました。納付書のページに戻って、もう一度お試しください。"),
}


def closed_notice(reason: str | None, on: str | None) -> str:
    """Why a slip cannot be paid on this page: its instalment was paid another way, or cancelled, on `on`."""
    if reason == "cancelled":
        return _("この納付書の賦課は%(date)sに取り消されました。お支払いいただく必要はなく、"
                 "このページからはお支払いいただけません。", date=on)
    return _("この納付書の納付額は、%(date)sに金融機関・窓口・口座振替など別の方法で納付済みです。"
             "二重のお支払いを防ぐため、このページからはお支払いいただけません。", date=on)


def yen(amount: int) -> str:
    return f"{amount:,}"


def fiscal_year_label(year: int, lang: str) -> str:
    """Return "令和8年度（2026年度）" or "FY2026 (Reiwa 8)"; the first Reiwa year is "元"."""
    if lang == "en":
        return f"FY{year}" + (f" (Reiwa {year - REIWA_START.year + 1})" if year >= REIWA_START.year else "")
    if year < REIWA_START.year:
        return f"{year}年度"
    return f"令和{_reiwa_year(year)}年度（{year}年度）"


def date_label(day: date, lang: str) -> str:
    """Return "令和8年6月30日（火）" or "Tue 30 June 2026"."""
    if lang == "en":
        return day.strftime("%a %d %B %Y").replace(" 0", " ")
    weekday = WEEKDAYS_JA[day.weekday()]
    era = f"令和{_reiwa_year(day.year)}年" if day >= REIWA_START else f"{day.year}年"
    return f"{era}{day.month}月{day.day}日（{weekday}）"


def installment_label(number: int, lang: str) -> str:
    """Return "第4期" or "No. 4": the value shown beside the label 期別 / Instalment, never repeating it."""
    return f"No. {number}" if lang == "en" else f"第{number}期"


def _reiwa_year(year: int) -> str:
    era_year = year - REIWA_START.year + 1
    return "元" if era_year == 1 else str(era_year)
