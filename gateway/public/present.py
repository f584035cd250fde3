"""What the pay pages say: labels in Japanese (first) and English, yen, dates and fiscal years."""
from __future__ import annotations

from datetime import date
from typing import Any

LANGUAGES = ("ja", "en")
REIWA_START = date(2019, 5, 1)
WEEKDAYS_JA = "月火水木金土日"
CHANNEL_LABELS = {"ja": {"card": "クレジットカード", "paypay": "PayPay"},
                  "en": {"card": "Credit card", "paypay": "PayPay"}}

STRINGS: dict[str, dict[str, str]] = {
    "ja": {
        "title": "納付書のお支払い",
        "switch": "English",
        "municipality": "自治体",
        "fund": "科目",
        "fiscal_year": "年度",
        "installment": "期別",
        "amount": "納付額",
        "due_date": "納期限",
        "status": "状態",
        "status_issued": "未納",
        "status_paid": "お支払い済み",
        "status_void": "無効（再発行済み）",
        "status_closed": "お支払い不要",
        "pay_with": "お支払い方法を選んでください",
        "pay_button": "{channel}で支払う",
        "fee": "システム利用料 {fee}円（税・保険料とは別にお支払いいただきます）",
        "total": "お支払い合計 {total}円",
        "no_fee": "システム利用料はかかりません",
        "paid_notice": "この納付書はお支払い済みです。ありがとうございました。",
        "void_notice": "この納付書は新しい納付書に差し替えられたため、無効になりました。"
                       "新しい納付書でお支払いください。",
        "closed_paid_elsewhere": "この納付書の納付額は、{date}に金融機関・窓口・口座振替など別の方法で納付済みです。"
                                 "二重のお支払いを防ぐため、このページからはお支払いいただけません。",
        "closed_cancelled": "この納付書の賦課は{date}に取り消されました。お支払いいただく必要はなく、"
                            "このページからはお支払いいただけません。",
        "expired_notice": "この納付書の支払期限（{date}）を過ぎたため、このページからはお支払いいただけません。"
                          "延滞金などを含めた新しい納付書の発行を、区役所の担当窓口へお問い合わせください。",
        "error_expired": "この納付書は支払期限を過ぎています。"
                         "区役所の担当窓口へ新しい納付書の発行をお問い合わせください。",
        "error_not_payable": "この納付書はお支払いいただけません（納付済みまたは取消）。"
                             "納付書のページで理由をご確認ください。",
        "no_online": "この納付書はオンラインではお支払いいただけません。"
                     "コンビニエンスストアまたは金融機関の窓口でお支払いください。",
        "eltax_notice": "この納付書は、地方税お支払サイト（地方税共同機構）でお支払いいただけます"
                        "（クレジットカード、インターネットバンキングなど）。納付書のeL-QRを読み取るか、"
                        "eL番号を入力してください。このページからはお支払いいただけません。",
        "eltax_link": "地方税お支払サイトへ",
        "error_eltax": "この納付書は、このページではお支払いいただけません。地方税お支払サイトでお支払いください。",
        "result_link": "お支払い状況を確認する",
        "paypay_title": "PayPayでお支払い",
        "paypay_scan": "PayPayアプリでQRコードを読み取ってください。",
        "paypay_open": "PayPayアプリを開く",
        "paypay_refresh": "支払い完了後、このページを更新してください",
        "paypay_check": "お支払い状況を確認する",
        "result_title": "お支払い状況",
        "result_paid": "お支払いが完了しました。ありがとうございました。",
        "result_pending": "お支払いはまだ確認できていません。"
                          "完了した場合は、しばらくしてからこのページを更新してください。",
        "result_failed": "お支払いは完了しませんでした。もう一度お試しください。",
        "result_none": "この納付書のお支払いはまだ始まっていません。",
        "refresh": "更新する",
        "back": "納付書に戻る",
        "not_found_title": "ページが見つかりません",
        "not_found": "このお支払いページは存在しないか、URLが正しくありません。"
                     "納付書のQRコードをもう一度読み取ってください。",
        "error_title": "お支払いを開始できませんでした",
        "error_csrf": "ページの有効期限が切れました。納付書のページに戻って、もう一度お試しください。",
        "error_unavailable": "決済サービスに接続できません。しばらくしてからもう一度お試しください。",
        "error_rejected": "決済サービスがお支払いを受け付けませんでした。別のお支払い方法をお試しください。",
        "error_channel": "この納付書はこのお支払い方法ではお支払いいただけません。",
        "error_paid": "この納付書はすでにお支払い済みです。",
        "error_void": "この納付書は無効です。新しい納付書でお支払いください。",
        "error_in_progress": "お支払いの手続きを処理しています。少し待ってからお支払い状況を確認してください。",
        "error_other": "お支払いを開始できませんでした。もう一度お試しください。",
        "footer": "このページには個人情報は表示されません。",
    },
    "en": {
        "title": "Pay a payment slip",
        "switch": "日本語",
        "municipality": "Municipality",
        "fund": "Item",
        "fiscal_year": "Fiscal year",
        "installment": "Instalment",
        "amount": "Amount",
        "due_date": "Due date",
        "status": "Status",
        "status_issued": "Unpaid",
        "status_paid": "Paid",
        "status_void": "Void (replaced)",
        "status_closed": "Nothing to pay",
        "pay_with": "Choose how to pay",
        "pay_button": "Pay by {channel}",
        "fee": "System usage fee {fee} yen (paid in addition to the tax or premium)",
        "total": "Total {total} yen",
        "no_fee": "No system usage fee",
        "paid_notice": "This slip has been paid. Thank you.",
        "void_notice": "This slip was replaced by a newer slip and is no longer valid. Please pay with the newer slip.",
        "closed_paid_elsewhere": "This amount was paid on {date} another way (bank, counter or direct debit). "
                                 "To prevent paying twice, it cannot be paid on this page.",
        "closed_cancelled": "This assessment was cancelled on {date}. There is nothing to pay, and it cannot be "
                            "paid on this page.",
        "expired_notice": "This slip could be paid until {date}; that deadline has passed, so it cannot be paid "
                          "on this page. Please ask the ward office for a new slip (it will show any late charges).",
        "error_expired": "This slip is past its payment deadline. Please ask the ward office for a new slip.",
        "error_not_payable": "This slip cannot be paid (already paid another way, or cancelled). "
                             "See the slip's page for why.",
        "no_online": "This slip cannot be paid online. Please pay at a convenience store or a bank counter.",
        "eltax_notice": "This slip is paid online at the Local Tax Payment Site (地方税お支払サイト) of the Local Tax "
                        "Agency (by card, internet banking and more): scan the eL-QR on the slip there, or enter its "
                        "eL number. It cannot be paid on this page.",
        "eltax_link": "Go to the Local Tax Payment Site",
        "error_eltax": "This slip cannot be paid on this page. Please pay it at the Local Tax Payment Site.",
        "result_link": "Check the payment status",
        "paypay_title": "Pay with PayPay",
        "paypay_scan": "Scan the QR code with the PayPay app.",
        "paypay_open": "Open the PayPay app",
        "paypay_refresh": "After paying, refresh this page",
        "paypay_check": "Check the payment status",
        "result_title": "Payment status",
        "result_paid": "Your payment is complete. Thank you.",
        "result_pending": "Your payment is not confirmed yet. If you have paid, refresh this page in a moment.",
        "result_failed": "The payment did not go through. Please try again.",
        "result_none": "No payment of this slip has been started yet.",
        "refresh": "Refresh",
        "back": "Back to the slip",
        "not_found_title": "Page not found",
        "not_found": "This payment page does not exist or the address is wrong. "
                     "Please scan the QR code on your slip again.",
        "error_title": "The payment could not be started",
        "error_csrf": "This page has expired. Go back to the slip and try again.",
        "error_unavailable": "The payment service is not reachable. Please try again in a few minutes.",
        "error_rejected": "The payment service did not accept the payment. Please try another way to pay.",
        "error_channel": "This slip cannot be paid this way.",
        "error_paid": "This slip has already been paid.",
        "error_void": "This slip is no longer valid. Please pay with the newer slip.",
        "error_in_progress": "Your payment is being set up. Wait a moment, then check the payment status.",
        "error_other": "The payment could not be started. Please try again.",
        "footer": "No personal information is shown on this page.",
    },
}

# Error codes of the services -> the message key shown to the resident.
ERROR_MESSAGES = {
    "provider_unavailable": "error_unavailable",
    "provider_rejected": "error_rejected",
    "channel_not_accepted": "error_channel",
    "channel_unavailable": "error_channel",
    "slip_paid": "error_paid",
    "slip_void": "error_void",
    "slip_not_payable": "error_not_payable",
    "slip_expired": "error_expired",
    "idempotency_in_progress": "error_in_progress",
    "csrf": "error_csrf",
}


def text(lang: str, key: str, **values: Any) -> str:
    """Return the label `key` in `lang`, with `values` filled in."""
    return STRINGS[lang][key].format(**values)


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
