"""Signing in to the staff side through its real forms, CSRF token and second factor included.

Accounting, approver and administrator accounts need a TOTP code after the password: the
first sign-in enrols an authenticator from the enrolment page (its key is read off the page,
as a person would type it into an app), later ones compute the code from that key. A code
is good once: each sign-in of a user takes the next unused 30-second step (waiting for it
when the two steps the gateway accepts ahead of the clock are used up).
"""
from __future__ import annotations

import re
import time
from typing import Any

import pyotp
from flask.testing import FlaskClient

PASSWORD = "staff-pass-2026!"  # noqa: S105 - throwaway test accounts
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'id="mfa-secret">([A-Z2-7 ]+)<')
STEP = 30
# username -> (TOTP secret, last step used): what a person's authenticator app knows.
AUTHENTICATORS: dict[str, tuple[str, int]] = {}


def csrf_token(client: FlaskClient, path: str = "/staff/login") -> str:
    """The CSRF token of the form on `path` (a page the client may open)."""
    page = client.get(path)
    assert page.status_code == 200, path
    match = TOKEN.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def enrolled(username: str, secret: str) -> str:
    """Remember `username`'s new authenticator; return the code to confirm it with."""
    AUTHENTICATORS[username] = (secret.replace(" ", ""), -1)
    return next_code(username)


def next_code(username: str) -> str:
    """The code of the next step not used yet by `username` (the gateway refuses a code twice)."""
    secret, last = AUTHENTICATORS[username]
    now = int(time.time()) // STEP
    step = max(now, last + 1)
    if step > now + 1:  # the gateway accepts one step ahead of its clock, no more: wait for the next
        time.sleep((step - 1) * STEP - time.time() + 0.05)
    AUTHENTICATORS[username] = (secret, step)
    return pyotp.TOTP(secret).generate_otp(step)


def log_in(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    """Post the login form, then the second factor if asked; the last response (302 to the staff
    home when all went right)."""
    response = client.post("/staff/login", data={"username": username, "password": password,
                                                  "csrf_token": csrf_token(client)})
    location = response.headers.get("Location", "") if response.status_code == 302 else ""
    if location.endswith("/staff/mfa/enrol"):
        page = client.get("/staff/mfa/enrol").get_data(as_text=True)
        secret, token = SECRET.search(page), TOKEN.search(page)
        assert secret and token, page
        return client.post("/staff/mfa/enrol", data={"code": enrolled(username, secret.group(1)),
                                                      "csrf_token": token.group(1)})
    if location.endswith("/staff/mfa"):
        return client.post("/staff/mfa", data={"code": next_code(username),
                                                "csrf_token": csrf_token(client, "/staff/mfa")})
    return response


def second_factor(page: Any, base: str, username: str) -> None:
    """In a browser past the password: enrol an authenticator or type its code, if the gateway asks."""
    if page.url.endswith("/staff/mfa/enrol"):
        code = enrolled(username, page.locator("#mfa-secret").inner_text())
        page.get_by_label("確認コード").fill(code)
        page.get_by_role("button", name="登録").click()
    elif page.url.endswith("/staff/mfa"):
        page.get_by_label("確認コード").fill(next_code(username))
        page.get_by_role("button", name="確認").click()
    else:
        return
    page.wait_for_url(lambda url: "/staff/mfa" not in url)
