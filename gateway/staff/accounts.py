"""The administrator's staff screen: the municipality's accounts, and a new password for one of them."""
from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from gateway.errors import GatewayError
from gateway.services.staff_accounts import MIN_PASSWORD_LENGTH, set_password, staff_of
from gateway.staff.views import ADMIN, bp, roles


@bp.route("/users")
@roles(*ADMIN)
def users() -> Any:
    accounts = staff_of(current_app.extensions["kokin.db"].scoped(), current_user.municipality_id)
    return render_template("staff/users.html", accounts=accounts, min_length=MIN_PASSWORD_LENGTH)


@bp.route("/users/<username>/password", methods=["POST"])
@roles(*ADMIN)
def user_password(username: str) -> Any:
    """Set a new password for one of the municipality's staff; the event names the administrator."""
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        raise GatewayError("the two passwords differ", code="passwords_differ", status=422)
    set_password(current_app.extensions["kokin.db"].scoped(), username, password, actor=current_user.username,
                 municipality_id=current_user.municipality_id)
    flash(f"{username} のパスワードを設定しました。本人に安全な方法で伝えてください。", "info")
    return redirect(url_for("staff.users"))
