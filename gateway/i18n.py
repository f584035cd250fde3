"""Japanese throughout, English on a switch: the message catalogue of the staff and resident pages.

The pages are written in Japanese, the language of their users: a template's text is the
message id (``{{ _("照合の例外") }}``), and ``translations/en`` gives each one in English. The
codes the database keeps (exception kinds, statuses, roles, channels, tenders, resolutions)
are never shown as they are: ``{{ item.kind|label("exception_kind") }}`` gives the code's
Japanese name from ``CODE_LABELS``, translated like every other message. A code missing from
the table is shown raw, and the page walk of the tests (tests/api/test_staff_language.py)
fails on it.

The language: ``?lang=en`` or ``?lang=ja`` on any page, else the ``kokin_lang`` cookie that
``/lang/<code>`` sets (the staff screens' switch), else Japanese. The resident's pay pages
(/pay/...) take ``?lang`` only, as their links carry it: a cookie left by the staff switch on
a shared computer does not change them. ``make translations`` extracts the messages, updates the English catalogue and
compiles it; the compiled catalogue is committed, and a test fails when it is stale or a
message has no English.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, has_request_context, redirect, request
from flask_babel import Babel, gettext
from flask_babel import lazy_gettext as _l

LANGUAGES = ("ja", "en")
COOKIE = "kokin_lang"

# Each code the pages show, by the kind of thing it names. Adding a code to the database
# (a CHECK constraint, a state machine) means adding its name here.
CODE_LABELS: dict[str, dict[str, Any]] = {
    "exception_kind": {
        "unknown_slip": _l("納付書番号が不明"),
        "double_payment": _l("二重納付"),
        "amount_mismatch": _l("金額の相違"),
        "paid_after_due_date": _l("納期限後の納付"),
        "paid_after_store_deadline": _l("取扱期限後の納付"),
        "preliminary_cancelled": _l("速報の取消"),
        "final_without_preliminary": _l("速報のない確報"),
        "final_overdue": _l("確報の遅延"),
        "remittance_mismatch": _l("入金額の相違"),
        "missing_in_settlement": _l("精算に記載なし"),
        "missing_in_gateway": _l("ゲートウェイに記録なし"),
        "fee_netted": _l("手数料の相殺"),
        "payment_on_void_slip": _l("無効の納付書への納付"),
    },
    "exception_status": {
        "open": _l("未処理"),
        "pending_approval": _l("承認待ち"),
        "resolved": _l("処理済み"),
    },
    "resolution": {
        "refund": _l("還付（返金）"),
        "apply_to_other_instalment": _l("他の期への充当"),
        "write_off": _l("不納欠損として処理"),
        "handed_to_core_system": _l("基幹システムへ引継ぎ（充当・還付）"),
        "corrected_by_agency": _l("収納代行業者が訂正"),
        "corrected_by_provider": _l("決済事業者が訂正"),
        "booked_correctly": _l("正しく計上済み"),
        "duplicate_report": _l("重複した報告"),
    },
    "role": {
        "counter_staff": _l("窓口職員"),
        "counter_supervisor": _l("窓口責任者"),
        "accounting": _l("会計担当"),
        "approver": _l("承認者"),
        "administrator": _l("管理者"),
        "auditor": _l("監査"),
    },
    "channel": {
        "agency": _l("コンビニ・アプリ（収納代行）"),
        "card": _l("クレジットカード"),
        "paypay": _l("PayPay"),
        "emoney": _l("窓口 電子マネー"),
        "eltax": _l("eLTAX"),
        "bank": _l("金融機関窓口"),
        "cashier": _l("区役所窓口（現金）"),
        "direct_debit": _l("口座振替"),
        "other": _l("その他"),
    },
    "adapter": {
        "stripe": _l("Stripe（クレジットカード）"),
        "paypay": _l("PayPay"),
        "square": _l("Square（窓口の端末）"),
        "eltax": _l("eLTAX"),
    },
    "tender": {
        "FELICA_TRANSPORTATION_GROUP": _l("交通系IC"),
        "FELICA_ID": _l("iD"),
        "FELICA_QUICPAY": _l("QUICPay"),
        "QR_CODE": _l("QRコード決済"),
        "CARD_PRESENT": _l("クレジットカード"),
    },
    "payment_status": {
        "open": _l("処理中"),
        "succeeded": _l("納付済み"),
        "cancelled": _l("取消"),
        "partially_refunded": _l("一部返金"),
        "refunded": _l("返金済み"),
    },
    "attempt_status": {
        "created": _l("作成"),
        "pending": _l("決済待ち"),
        "succeeded": _l("成功"),
        "failed": _l("失敗"),
        "unknown": _l("結果不明"),
        "expired": _l("期限切れ"),
        "cancelled": _l("取消"),
    },
    "refund_status": {
        "requested": _l("承認待ち"),
        "approved": _l("承認済み"),
        "rejected": _l("却下"),
        "processing": _l("返金処理中"),
        "succeeded": _l("返金済み"),
        "failed": _l("返金不可"),
    },
    "sale_status": {
        "waiting": _l("端末で支払い待ち"),
        "paid": _l("支払い済み"),
        "cancelled": _l("取消"),
        "timed_out": _l("時間切れ"),
        "voided": _l("当日取消"),
        "refund_requested": _l("返金申請中"),
        "failed": _l("失敗"),
    },
    "closed_reason": {
        "paid_elsewhere": _l("他の経路で納付済み"),
        "cancelled": _l("賦課の取消"),
    },
    "record_kind": {
        "receipt": _l("収納"),
        "overpayment": _l("過誤納"),
        "unidentified": _l("不明納付"),
        "reversal": _l("戻し入れ"),
    },
    "record_reason": {
        "double_payment": _l("二重納付"),
        "amount_mismatch": _l("金額の相違"),
        "closed_slip": _l("消込済みの期別への納付"),
        "unidentified": _l("納付書が不明"),
        "preliminary_cancelled": _l("速報の取消"),
        "refunded": _l("返金"),
        "voided": _l("当日取消"),
    },
    "slip_status": {
        "issued": _l("発行済み"),
        "void": _l("無効"),
        "paid": _l("納付済み"),
        "closed": _l("消込済み（基幹システム）"),
    },
}


def label(code: str | None, kind: str) -> str:
    """The name of `code` (a kind of `kind`) in the page's language; an unknown code as it is."""
    if code is None:
        return ""
    name = CODE_LABELS[kind].get(code)
    return str(name) if name is not None else code


def yen(amount: int | None, signed: bool = False) -> str:
    """An amount as the pages write it: "12,300円", or "12,300 yen" in English; `signed` adds + to a gain."""
    if amount is None:
        return ""
    return gettext("%(amount)s円", amount=f"{amount:+,}" if signed else f"{amount:,}")


def long_date(day: date | datetime | None, time: bool = False) -> str:
    """A date as a heading writes it: "2026年07月01日", or "1 July 2026" in English; `time` adds "HH:MM"."""
    if day is None:
        return ""
    written = day.strftime("%Y年%m月%d日") if current_language() == "ja" else f"{day.day} {day:%B %Y}"
    return f"{written} {day:%H:%M}" if time else written


def select_locale() -> str:
    if not has_request_context():
        return "ja"  # a command, the scheduler: the ward's language
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    if request.path == "/pay" or request.path.startswith("/pay/"):
        return "ja"  # the pay pages follow their address alone: their links carry ?lang
    kept = request.cookies.get(COOKIE)
    return kept if kept in LANGUAGES else "ja"


def current_language() -> str:
    return select_locale()


bp = Blueprint("language", __name__)


@bp.route("/lang/<string:code>")
def switch(code: str) -> Any:
    """Keep the chosen language in a cookie and go back to the page it was chosen on."""
    if code not in LANGUAGES:
        code = "ja"
    back = request.args.get("next") or request.referrer or "/"
    parts = urlsplit(back)
    target = parts.path or "/"  # only a path of this site: never an open redirect
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if parts.query:
        target += "?" + "&".join(p for p in parts.query.split("&") if not p.startswith("lang="))
    response = redirect(target.rstrip("?"))
    response.set_cookie(COOKIE, code, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=request.is_secure)
    return response


def init_i18n(app: Flask) -> None:
    Babel(app, default_locale="ja", locale_selector=select_locale)
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["yen"] = yen
    app.jinja_env.filters["long_date"] = long_date
    from gateway.services.timeline import translated_reason  # the reasons the gateway itself writes

    app.jinja_env.filters["reason"] = translated_reason
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.register_blueprint(bp)

