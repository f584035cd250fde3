"""Signing in to the staff side through its real login form, CSRF token included."""
from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

PASSWORD = "staff-pass-2026!"  # noqa: S105 - throwaway test accounts
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/staff/login") -> str:
    """The CSRF token of the form on `path` (a page the client may open)."""
    page = client.get(path)
    assert page.status_code == 200, path
    match = TOKEN.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    """Post the login form; the response (302 to the staff home when the password is right)."""
    return client.post("/staff/login", data={"username": username, "password": password,
                                              "csrf_token": csrf_token(client)})
