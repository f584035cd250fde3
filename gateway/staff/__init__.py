"""Staff screens (/staff): sign-in, the counter screen, receipts, the daily close, fees.

Flask-Login sessions signed with the app's SECRET_KEY (from KOKIN_SECRET_KEY; in sandbox
mode a key file in the instance folder); Flask-WTF's CSRF check on every form of this
blueprint (the JSON API, webhooks and the resident pages have their own protection).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from gateway.models import StaffUser

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.login_message = "サインインしてください。"


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

    @login_manager.user_loader
    def _load(user_id: str) -> StaffUser | None:
        user = app.extensions["kokin.db"].scoped().get(StaffUser, int(user_id))
        return user if user is not None and user.active else None

    from gateway.staff import (
        accounts,  # noqa: F401 - the administrator's staff screen, on the same blueprint
        errors,
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
