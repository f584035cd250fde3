"""Staff screens (/staff): sign-in, the counter screen, receipts, the daily close, fees.

Sessions are rows of staff_sessions (gateway.services.staff_sessions): the signed cookie
(the app's SECRET_KEY, from KOKIN_SECRET_KEY; in sandbox mode a key file in the instance
folder) carries only a random token, which Flask-Login's request loader looks up on each
request, so logout, the idle timeout and a password reset end a session on every instance.
Flask-WTF's CSRF check on every form of this blueprint (the JSON API, webhooks and the
resident pages have their own protection).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Request, current_app, flash, redirect, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from gateway.models import StaffUser
from gateway.services.staff_sessions import SessionPolicy, pending_sign_in, signed_in_user

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.login_message = _l("サインインしてください。")
SESSION_KEY = "staff_session"  # the only staff item in the cookie: the session token


class SignedOnceSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, their signing serializer built once per key, not per request.

    Flask builds the serializer on every request, also for the API and webhooks that carry no
    cookie: about a tenth of a webhook's CPU in the worker. A new key (or fallback) gets its own.
    """

    def __init__(self) -> None:
        self._serializers: dict[tuple[Any, ...], Any] = {}

    def get_signing_serializer(self, app: Flask) -> Any:
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if keys not in self._serializers:
            self._serializers[keys] = super().get_signing_serializer(app)
        return self._serializers[keys]


def init_staff(app: Flask) -> None:
    app.config["SECRET_KEY"] = _secret_key(app)
    app.session_interface = SignedOnceSessions()
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in the staff blueprint only
    # Set, not setdefault: Flask defines these keys already (Secure off, SameSite None).
    secure = not app.config.get("SANDBOX")  # HTTPS only outside the sandbox (the demo serves plain http)
    for cookie in ("SESSION_COOKIE", "REMEMBER_COOKIE"):
        app.config[f"{cookie}_HTTPONLY"] = True
        app.config[f"{cookie}_SAMESITE"] = "Lax"
        app.config[f"{cookie}_SECURE"] = secure
    csrf.init_app(app)
    login_manager.init_app(app)

    # No user_loader: the cookie holds no user id, only a session token (so Flask-Login's
    # remember-me cookie, which would carry a user id for 365 days, resolves to nobody).
    login_manager.request_loader(_load_from_session)
    login_manager.unauthorized_handler(_unauthorized)

    from gateway.staff import (
        accounts,  # noqa: F401 - the administrator's staff screen, on the same blueprint
        errors,
        sign_in,  # noqa: F401 - second factor, enrolment, own password: on the same blueprint
        wards,  # noqa: F401 - the ward switcher of an administrator holding several
        workbench,  # noqa: F401 - the accounting staff's slip page
    )
    from gateway.staff.views import bp

    app.register_blueprint(bp)
    errors.register(app)


def _secret_key(app: Flask) -> str:
    value = os.environ.get(app.config.get("SECRET_KEY_ENV", "KOKIN_SECRET_KEY"))
    if value:
        return value
    if not app.config.get("SANDBOX"):
        raise RuntimeError("KOKIN_SECRET_KEY is not set: staff sessions cannot be signed")
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _load_from_session(_request: Request) -> StaffUser | None:
    """The signed-in user of this request: the cookie's token names a live, complete session."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        return None
    db_session = current_app.extensions["kokin.db"].scoped()
    user = signed_in_user(db_session, token, SessionPolicy.from_config(current_app.config))
    return user


def _unauthorized() -> object:
    """Signed out: to sign-in; half-way (password right, second factor not yet): to that step."""
    token = session.get(SESSION_KEY)
    if isinstance(token, str) and token:
        pending = pending_sign_in(current_app.extensions["kokin.db"].scoped(), token)
        if pending is not None:
            return redirect(url_for("staff.mfa_enrol" if pending[1].mfa_secret is None else "staff.mfa_code"))
    flash(str(login_manager.login_message), "info")
    return redirect(url_for("staff.login"))
