"""What a member of staff reads when the gateway refuses an action: in Japanese, from the catalogue.

A GatewayError's message is English for developers and API clients; the staff screens flash the
message of its code here instead, or, for a code without one, what its status means. The code
stays in the log and the API's envelope. Every code a staff action can raise and the screens
flash has a message of its own here (tests/unit/test_staff_refusals.py finds them).
"""
from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from domain.errors import DomainError
from gateway.i18n import yen
from gateway.services.queue import MAX_BULK
from gateway.services.sales import MAX_QUANTITY
from gateway.services.staff_accounts import MIN_PASSWORD_LENGTH

BY_CODE = {
    # the counter
    "empty_sale": _l("証明書を1通以上選んでください。"),
    "invalid_quantity": _l("通数は1から%(n)sまでの整数で入力してください。", n=MAX_QUANTITY),
    "unknown_item": _l("この窓口では扱っていない証明書です。"),
    "unknown_brand": _l("支払方法を選んでください。"),
    "unknown_terminal": _l("この窓口の端末ではありません。"),
    "unknown_counter": _l("その窓口はありません。"),
    "unknown_sale": _l("その会計はありません。"),
    "terminal_busy": _l("端末でお支払いの途中です。端末で完了または取消をしてください。"),
    "sale_not_waiting": _l("この会計は、もう支払い待ちではありません。"),
    "sale_not_paid": _l("支払い済みの会計だけを取り消せます。"),
    "channel_unavailable": _l("この支払方法は、いま使えません。"),
    "provider_unavailable": _l("決済事業者に接続できません。しばらくしてからもう一度お試しください。"),
    "provider_rejected": _l("決済事業者が受け付けませんでした。"),
    # fees
    "invalid_fee": _l("手数料は1円以上の整数で入力してください。"),
    "fee_in_the_past": _l("新しい手数料は、過去の日からは適用できません。"),
    "fee_exists": _l("この証明書には、その日から適用する手数料がすでにあります。"),
    "invalid_date": _l("新しい手数料を適用する日を選んでください。"),
    # exceptions and the queue
    "empty_comment": _l("コメントを入力してください。"),
    "empty_note": _l("処理の理由を入力してください。"),
    "unknown_resolution": _l("その処理はありません。"),
    "resolution_not_in_playbook": _l("この種類の例外の手引きでは選べない処理です。"),
    "exception_not_open": _l("この例外は未処理ではありません。"),
    "not_pending_approval": _l("この例外は承認待ちではありません。"),
    "four_eyes_required": _l("自分が依頼・提案したものは承認できません。ほかの人が承認します。"),
    "unknown_exception": _l("その例外はありません。"),
    "nothing_selected": _l("例外を1件以上選んでください。"),
    "too_many_selected": _l("一度に処理できるのは%(n)s件までです。", n=MAX_BULK),
    "mixed_kinds": _l("まとめて処理するのは、同じ種類の例外だけにしてください。"),
    "unknown_action": _l("その操作はありません。"),
    "invalid_selection": _l("選んだものの中に、例外の番号でないものがあります。"),
    # playbooks
    "invalid_meaning": _l("例外の意味を1〜2,000文字で入力してください。"),
    "invalid_checks": _l("確認することが多すぎるか、長すぎます。"),
    "invalid_effect": _l("それぞれの処理が何をするかを1〜300文字で入力してください。"),
    "no_resolution": _l("処理を1つ以上選んでください。"),
    "duplicate_resolution": _l("同じ処理が2回選ばれています。"),
    # refunds
    "payment_not_refundable": _l("納付済みの支払だけを返金できます。"),
    "refund_exceeds_payment": _l("返金できる額を超えています。"),
    "refund_not_supported": _l("この支払は決済事業者では返金できません。振込で返金してください。"),
    # accounts
    "passwords_differ": _l("2つのパスワードが一致しません。"),
    "weak_password": _l("パスワードは%(n)s文字以上にしてください。", n=MIN_PASSWORD_LENGTH),
    "wrong_password": _l("現在のパスワードが違います。"),
    "user_exists": _l("そのユーザー名はすでにあります。"),
    "unknown_role": _l("その役割はありません。"),
    "ward_not_held": _l("その自治体の画面は開けません。"),
    "sign_in_expired": _l("サインインの手続きの有効期限が切れました。もう一度サインインしてください。"),
    "mfa_enrolled": _l("認証アプリは登録済みです。登録し直すには、管理者に登録の解除を依頼してください。"),
    # a sale, a payment or a refund whose state changed meanwhile (its state machine refuses the step)
    "illegal_transition": _l("この操作は、いまの状態ではできません（ほかの操作で状態が変わったかもしれません）。"
                             "画面を読み込み直して確かめてください。"),
    # files out (a day's counter records that disagree with their sales have a message of their own below)
    "receipts_not_writable": _l("収納データのファイルを用意できませんでした（記録の内容がファイルの形式に合わないか、"
                                "保存したファイルが送信したときと一致しません）。システムの担当者に連絡してください。"),
    "counter_revenue_not_writable": _l("窓口収入のファイルを用意できませんでした（記録の内容がファイルの形式に"
                                       "合わないか、保存したファイルが送信したときと一致しません）。"
                                       "システムの担当者に連絡してください。"),
}
BY_STATUS = {
    404: _l("対象が見つかりません。"),
    409: _l("いまの状態では、この操作はできません（すでに処理済みなど）。画面を読み込み直して確かめてください。"),
    503: _l("一時的に利用できません。しばらくしてからもう一度お試しください。"),
}
OTHERWISE = _l("入力した内容を受け付けられませんでした。内容を確かめて、もう一度お試しください。")


def refusal(exc: DomainError) -> str:
    """What to tell the member of staff about `exc`, in the screen's language."""
    details = exc.details
    if exc.code == "counter_revenue_not_writable" and {"day", "fund", "recorded", "lines"} <= details.keys():
        return gettext("%(day)s の会計区分 %(fund)s の窓口収入が合いません: 収納データは%(recorded)s、"
                       "会計の明細は%(lines)sです。財務会計へ送る前に確かめてください。", day=details["day"],
                       fund=details["fund"], recorded=yen(details["recorded"]), lines=yen(details["lines"]))
    return str(BY_CODE.get(exc.code) or BY_STATUS.get(exc.status) or OTHERWISE)
