"""CSRF for the pay forms: a double-submit cookie, so the pages need no server-side secret.

The app has no SECRET_KEY (the JSON API authenticates by bearer key and needs none), so
a signed session is not available. Instead each page sets a random token in a
SameSite=Strict, HttpOnly cookie scoped to /pay and repeats it in a hidden field; a POST
must carry both, equal. Another site can neither read the cookie nor make the browser send
it cross-site. A request whose Origin header names another host, or that the browser marks
cross-site (Sec-Fetch-Site), is refused as well. The pages send referrers only to
themselves (the token URL must not reach a provider): with `no-referrer` Chromium would
send `Origin: null` on our own forms. The sandbox's simulated provider pages use the same
check with a cookie of their own (`cookie`, `path`).
"""
from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Request, g, request
from werkzeug.wrappers import Response

COOKIE = "kokin_pay_csrf"
FIELD = "csrf_token"


def csrf_token(cookie: str = COOKIE) -> str:
    """Return this browser's token, making one (set on the response by `set_cookie`) if new."""
    tokens = g.setdefault("csrf_tokens", {})
    if cookie not in tokens:
        current = request.cookies.get(cookie, "")
        tokens[cookie] = current if _well_formed(current) else secrets.token_urlsafe(32)
    return str(tokens[cookie])


def set_cookie(response: Response, cookie: str = COOKIE, path: str = "/pay") -> Response:
    token = g.get("csrf_tokens", {}).get(cookie)
    if token is not None and request.cookies.get(cookie) != token:
        response.set_cookie(cookie, token, path=path, httponly=True, samesite="Strict", secure=request.is_secure)
    return response


def is_valid(req: Request, cookie_name: str = COOKIE) -> bool:
    """Tell whether a form POST carries this browser's token and comes from our own origin."""
    cookie, field = req.cookies.get(cookie_name, ""), req.form.get(FIELD, "")
    if not (_well_formed(cookie) and hmac.compare_digest(cookie, field)):
        return False
    if req.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = req.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == req.host


def _well_formed(token: str) -> bool:
    return 32 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()
