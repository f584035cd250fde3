"""The second factor and the user's own account: the TOTP code, enrolling an authenticator, a new password.

After the password, a user of a role that needs MFA (or anyone who enrolled) lands here and
can open nothing else (the unauthorized handler sends every other page back here) until the
code is right, or, without an authenticator yet, until one is enrolled from the QR code.
"""
from __future__ import annotations

from typing import Any

import segno
from flask import current_app, flash, redirect, render_template, request, url_for
from flask import session as cookie
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from gateway.services import staff_sign_in
from gateway.services.staff_accounts import MIN_PASSWORD_LENGTH, change_password
from gateway.services.staff_sessions import find_session, pending_sign_in, token_id
from gateway.staff import SESSION_KEY
from gateway.staff.refusals import BY_CODE
from gateway.staff.views import _session, bp, client_address, start_session, throttled

BAD_CODE = _l("確認コードが違うか、すでに使われたコードです。認証アプリに表示されている新しいコードを入力してください。"
              "続けて間違えると、しばらくの間サインインできなくなります。")
EXPIRED = BY_CODE["sign_in_expired"]


def _token() -> str:
    token = cookie.get(SESSION_KEY)
    return token if isinstance(token, str) else ""


def _policy() -> staff_sign_in.SignInPolicy:
    return staff_sign_in.SignInPolicy.from_config(current_app.config)


def _cipher() -> Any:
    return current_app.extensions["kokin.cipher"]


def _expired() -> Any:
    cookie.clear()
    flash(str(EXPIRED), "error")
    return redirect(url_for("staff.login"))


@bp.route("/mfa", methods=["GET", "POST"])
def mfa_code() -> Any:
    """The second step of a sign-in: the 6-digit code of the user's authenticator."""
    pending = pending_sign_in(_session(), _token())
    if pending is None:
        return _expired()
    if pending[1].mfa_secret is None:
        return redirect(url_for("staff.mfa_enrol"))
    if request.method == "POST":
        try:
            token = staff_sign_in.verify_code(_session(), _cipher(), _token(), request.form.get("code", ""),
                                              client_address(), _policy())
        except staff_sign_in.SignInThrottled as exc:
            return throttled(exc, "staff/mfa.html")
        except staff_sign_in.SignInExpired:
            return _expired()
        except staff_sign_in.SignInRefused:
            return render_template("staff/mfa.html", error=BAD_CODE), 401
        start_session(token)
        return redirect(url_for("staff.home"))
    return render_template("staff/mfa.html")


@bp.route("/mfa/enrol", methods=["GET", "POST"])
def mfa_enrol() -> Any:
    """Enrol an authenticator: its QR code (and the key to type in), then a code from it.

    Reached after the password by a user whose role needs MFA and who has none yet, or from
    the account page by anyone signed in who wants one.
    """
    token = _token()
    found = find_session(_session(), token) if token else None
    if found is None or found[0].revoked_at is not None or (not found[0].complete and
                                                            pending_sign_in(_session(), token) is None):
        return _expired()
    row, user = found
    if row.complete and not current_user.is_authenticated:
        return _expired()  # a complete session the loader refused: idle or over its lifetime
    if user.mfa_secret is not None:
        flash(_("認証アプリは登録済みです。"), "info")
        return redirect(url_for("staff.account" if row.complete else "staff.mfa_code"))
    row_id, username = token_id(token), user.username
    secret = staff_sign_in.enrolment_secret(_session(), _cipher(), row_id)
    error, status = None, 200
    if request.method == "POST":
        try:
            done = staff_sign_in.confirm_enrolment(_session(), _cipher(), row_id, request.form.get("code", ""),
                                                   client_address(), _policy())
        except staff_sign_in.SignInThrottled as exc:
            return throttled(exc, "staff/login.html")
        except staff_sign_in.SignInExpired:
            return _expired()
        except staff_sign_in.SignInRefused:
            error, status = BAD_CODE, 401
        else:
            if done is not None:
                start_session(done)
            flash(_("認証アプリを登録しました。次回から、パスワードのあとに確認コードを入力します。"), "info")
            return redirect(url_for("staff.home"))
    qr = segno.make(staff_sign_in.provisioning_uri(secret, username), error="m")
    return render_template("staff/mfa_enrol.html", qr=qr.svg_data_uri(scale=5, border=4, light="#fff"),
                           secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                           username=username, required=not row.complete, error=error), status


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> Any:
    """The user's own account: a new password (given the current one) and their authenticator."""
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("confirm", ""):
            flash(_("新しいパスワードが確認用と一致しません。"), "error")
            return redirect(url_for("staff.account"))
        change_password(_session(), current_user.id, request.form.get("current_password", ""), new,
                        keep_session=token_id(_token()))
        flash(_("パスワードを変更しました。ほかの端末のサインインは終了しました。"), "info")
        return redirect(url_for("staff.account"))
    return render_template("staff/account.html", min_length=MIN_PASSWORD_LENGTH,
                           enrolled=current_user.mfa_secret is not None,
                           required=current_user.role in staff_sign_in.MFA_REQUIRED_ROLES)
