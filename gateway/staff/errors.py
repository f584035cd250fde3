"""The staff screens' error pages: what happened and where to go, in Japanese first, then English.

On the English switch the page is in English only; in Japanese it keeps the English below, for a
reader who has not found the switch.

Registered with the app's error handlers (`gateway.errors.html_error_pages`) for every path
under /staff, so that a refused role, a form without its CSRF token or a page that does not
exist answer with a page in the staff layout and the right status, never the API's JSON.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from gateway.errors import html_error_pages

# status -> (Japanese, English): what happened, in words a member of staff can act on.
MESSAGES: dict[int, tuple[str, str]] = {
    400: ("リクエストを処理できませんでした。入力した内容を確かめて、もう一度お試しください。",
          "The request could not be processed. Check what you entered and try again."),
    403: ("このページを開く権限がありません。必要な場合は、管理者に役割の変更を依頼してください。",
          "Your role does not allow this page. Ask an administrator if you need it."),
    404: ("ページが見つかりません。アドレスが正しいか、対象がこの自治体のものかを確かめてください。",
          "This page does not exist, or what it names is not of your municipality."),
    405: ("この操作は、このページでは行えません。画面のボタンから操作してください。",
          "This action cannot be done this way. Use the buttons on the screen."),
    409: ("いまの状態では、この操作はできません（すでに処理済みなど）。画面を読み込み直して確かめてください。",
          "This cannot be done in the current state (it may be done already). Reload the page to see."),
    422: ("入力した内容を受け付けられませんでした。内容を確かめて、もう一度お試しください。",
          "What you entered could not be accepted. Check it and try again."),
    500: ("予期しないエラーが起きました。エラーは記録されています。しばらくしてからもう一度お試しください。",
          "An unexpected error occurred. It has been logged; please try again in a moment."),
    503: ("データベースに一時的に接続できません。しばらくしてからもう一度お試しください。",
          "The database is briefly unavailable. Please try again in a moment."),
}
TITLES = {400: _l("送信できませんでした"), 403: _l("権限がありません"), 404: _l("ページが見つかりません"),
          405: _l("この操作はできません"), 409: _l("この操作はできません"), 422: _l("入力を確認してください"),
          500: _l("エラーが起きました"), 503: _l("一時的に利用できません")}
CSRF = ("フォームの有効期限が切れたか、確認用の情報（CSRF トークン）がありません。"
        "ページを読み込み直して、もう一度送信してください。",
        "The form has expired or its security token is missing. Reload the page and send it again.")


def error_page(exc: Exception, status: int) -> Any:
    """The error page of a staff screen, with `status`."""
    known = status if status in MESSAGES else (500 if status >= 500 else 400)
    japanese, english = CSRF if isinstance(exc, CSRFError) else MESSAGES[known]
    signed_in = bool(getattr(current_user, "is_authenticated", False))
    return render_template("staff/error.html", status=status, title=TITLES[known], japanese=japanese,
                           english=english, signed_in=signed_in, csrf=isinstance(exc, CSRFError)), status


def register(app: Flask) -> None:
    html_error_pages(app, "/staff", error_page)
