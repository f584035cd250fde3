"""The administrator's staff screen: the municipality's accounts; a new password, an unlock, an MFA reset."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from gateway.db import utcnow
from gateway.errors import GatewayError
from gateway.services.staff_accounts import MIN_PASSWORD_LENGTH, reset_mfa, set_password, staff_of, unlock_user
from gateway.services.staff_sign_in import MFA_REQUIRED_ROLES, is_locked
from gateway.staff.views import ADMIN, bp, current_ward, roles


@bp.route("/users")
@roles(*ADMIN)
def users() -> Any:
    accounts = staff_of(current_app.extensions["kokin.db"].scoped(), current_ward())
    now = utcnow()
    return render_template("staff/users.html", accounts=accounts, min_length=MIN_PASSWORD_LENGTH,
                           locked={user.id for user in accounts if is_locked(user, now)},
                           mfa_required=MFA_REQUIRED_ROLES)


@bp.route("/users/<username>/password", methods=["POST"])
@roles(*ADMIN)
def user_password(username: str) -> Any:
    """Set a new password for one of the municipality's staff; the event names the administrator."""
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        raise GatewayError("the two passwords differ", code="passwords_differ", status=422)
    set_password(current_app.extensions["kokin.db"].scoped(), username, password, actor=current_user.username,
                 municipality_id=current_ward())
    flash(_("%(name)s のパスワードを設定しました。サインイン中の端末はサインアウトされました。"
            "本人に安全な方法で伝えてください。", name=username), "info")
    return redirect(url_for("staff.users"))


@bp.route("/users/<username>/unlock", methods=["POST"])
@roles(*ADMIN)
def user_unlock(username: str) -> Any:
    """Lift a lock set by failed sign-ins; the event names the administrator."""
    return _done_to(username, unlock_user, _("%(name)s のロックを解除しました。", name=username))


@bp.route("/users/<username>/mfa-reset", methods=["POST"])
@roles(*ADMIN)
def user_mfa_reset(username: str) -> Any:
    """Forget a user's authenticator (a lost phone): they enrol a new one at their next sign-in."""
    return _done_to(username, reset_mfa,
                    _("%(name)s の認証アプリの登録を解除しました。次のサインインで登録し直します。", name=username))


def _done_to(username: str, action: Callable[..., object], message: str) -> Any:
    """Do `action` to a staff account of the administrator's municipality, say so, and show the accounts again."""
    action(current_app.extensions["kokin.db"].scoped(), username, actor=current_user.username,
           municipality_id=current_ward())
    flash(message, "info")
    return redirect(url_for("staff.users"))
