"""The strict production mode, the header layer, request body limits and secrets kept out of access logs."""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder

from adapters.stripe.simulator import SANDBOX_SECRET_KEY, SANDBOX_WEBHOOK_SECRET
from gateway import create_app
from gateway.hardening import MIN_SECRET_KEY_BYTES
from tests.conftest import TEST_DATA_KEY, TEST_PAYER_REF_KEY, one_ward_config

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET_KEY = "k" * MIN_SECRET_KEY_BYTES
LIVE_STRIPE = {"sandbox": False, "secret_key_env": "TEST_STRIPE_SECRET_KEY",
               "webhook_secret_env": "TEST_STRIPE_WEBHOOK_SECRET"}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    """KOKIN_ENV=production with a long secret key, data keys and a live Stripe account's secrets."""
    monkeypatch.setenv("KOKIN_ENV", "production")
    monkeypatch.setenv("KOKIN_SECRET_KEY", GOOD_SECRET_KEY)
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", TEST_PAYER_REF_KEY)
    monkeypatch.setenv("TEST_STRIPE_SECRET_KEY", "sk_live_" + "a" * 24)
    monkeypatch.setenv("TEST_STRIPE_WEBHOOK_SECRET", "whsec_" + "b" * 32)


def _production_app(db_url: str, tmp_path: Path, **config: Any) -> Flask:
    settings = {"DATABASE_URL": db_url, "INSTANCE_PATH": str(tmp_path / "instance"),
                "ADAPTERS": {"stripe": LIVE_STRIPE}, "AGENCIES": {}, **config}
    return create_app(settings)


def _refusal(db_url: str, tmp_path: Path, **config: Any) -> str:
    with pytest.raises(RuntimeError, match="refusing to start in production") as refused:
        _production_app(db_url, tmp_path, **config)
    return str(refused.value)


@pytest.mark.usefixtures("production")
def test_production_starts_when_every_setting_is_safe(db_url: str, tmp_path: Path) -> None:
    app = _production_app(db_url, tmp_path)
    try:
        assert app.config["PRODUCTION"] and not app.config["SANDBOX"]
        assert app.extensions["kokin.adapters"]["stripe"].simulator is None
    finally:
        app.extensions["kokin.db"].dispose()


@pytest.mark.usefixtures("production")
def test_production_refuses_a_sandbox_adapter(db_url: str, tmp_path: Path) -> None:
    message = _refusal(db_url, tmp_path, ADAPTERS={"stripe": {"sandbox": True}})
    assert "adapter stripe is in sandbox mode" in message


@pytest.mark.usefixtures("production")
def test_production_refuses_the_webhook_secret_published_in_the_simulators_source(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finding: forged checkout.session.completed events signed with the simulator's secret were applied."""
    monkeypatch.setenv("TEST_STRIPE_WEBHOOK_SECRET", SANDBOX_WEBHOOK_SECRET)
    monkeypatch.setenv("TEST_STRIPE_SECRET_KEY", SANDBOX_SECRET_KEY)
    message = _refusal(db_url, tmp_path)
    assert "adapter stripe: webhook_secret is a published sandbox credential" in message
    assert "adapter stripe: secret_key is a published sandbox credential" in message
    assert SANDBOX_WEBHOOK_SECRET not in message  # named, never printed


@pytest.mark.usefixtures("production")
def test_production_refuses_a_paypay_token_from_the_sandbox_given_in_plain_config(db_url: str, tmp_path: Path) -> None:
    paypay = {"sandbox": False, "api_key": "live-key", "api_secret": "live-secret", "merchant_id": "m-1",
              "webhook_token": "sandbox-webhook-token"}
    message = _refusal(db_url, tmp_path, ADAPTERS={"stripe": LIVE_STRIPE, "paypay": paypay})
    assert "adapter paypay: webhook_token is a published sandbox credential" in message


@pytest.mark.usefixtures("production")
def test_production_refuses_a_short_secret_key(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_SECRET_KEY", "x")
    assert "KOKIN_SECRET_KEY is too short: at least 32 bytes" in _refusal(db_url, tmp_path)


@pytest.mark.usefixtures("production")
def test_production_names_every_problem_at_once(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOKIN_SECRET_KEY")
    monkeypatch.delenv("KOKIN_DATA_KEYS")
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", "short")
    message = _refusal(db_url, tmp_path, SANDBOX=True, ADAPTERS={"stripe": {"sandbox": True}})
    problems = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(problems) == 5, message
    for expected in ("SANDBOX is true", "adapter stripe is in sandbox mode", "KOKIN_SECRET_KEY is not set",
                     "KOKIN_DATA_KEYS is not set", "KOKIN_PAYER_REF_KEY is too short"):
        assert expected in message


@pytest.mark.usefixtures("production")
def test_production_cookies_are_secure_httponly_and_samesite_lax(db_url: str, tmp_path: Path) -> None:
    """The finding: the flags were set with setdefault on keys Flask already defines, so never applied."""
    app = _production_app(db_url, tmp_path)
    try:
        response = app.test_client().get("/staff/login", base_url="https://ward.example")
        cookies = response.headers.getlist("Set-Cookie")
        assert cookies, "the login page starts a session (its CSRF token)"
        for cookie in cookies:
            flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
            assert "secure" in flags and "httponly" in flags, cookie
            assert flags.get("samesite") == "SameSite=Lax", cookie
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        app.extensions["kokin.db"].dispose()


# -- headers on every response ------------------------------------------------------------------------

PAGES = [
    ("GET", "/"),  # the front page
    ("GET", "/api/v1/docs"),
    ("GET", "/api/v1/funds"),  # 401 without a key: an error answer gets them too
    ("GET", "/api/v1/slips/0000000000000000"),
    ("GET", "/staff/login"),
    ("GET", "/pay/not-a-token"),  # 404 on the resident's page
    ("POST", "/webhooks/stripe"),  # 400: no signature
    ("GET", "/no/such/page"),
    ("GET", "/sandbox/"),
]


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_every_response_carries_the_security_headers(client: Any, method: str, path: str) -> None:
    response = client.open(path, method=method)
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in headers  # sandbox: plain http on the developer's machine


def test_static_files_may_be_cached_and_still_carry_the_policy(client: Any) -> None:
    response = client.get("/staff/static/staff.css")
    response.close()
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") != "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_no_page_template_carries_inline_script_or_handlers() -> None:
    """The policy allows no inline script: a template with one would break under it."""
    offenders = []
    for template in (ROOT / "gateway").rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+\s*=", text):
            offenders.append(template.relative_to(ROOT).as_posix())
    assert offenders == []


# -- request bodies ------------------------------------------------------------------------------------

class CountingStream(io.RawIOBase):
    """A request body of `size` bytes, made as it is read, that counts what the app reads of it."""

    def __init__(self, size: int) -> None:
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:  # the test client measures the body
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b"{" * n
        self.position += n
        self.read_bytes += n
        return n


def test_a_300_mb_webhook_is_refused_before_its_body_is_read(client: Any) -> None:
    """The finding: a 300 MB unauthenticated POST grew a worker to 787 MB before the signature check."""
    body = CountingStream(300 * 1024 * 1024)
    response = client.post("/webhooks/stripe", input_stream=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert body.read_bytes == 0


def test_a_webhook_sent_without_a_length_stops_being_read_at_the_limit(app: Flask) -> None:
    body = CountingStream(300 * 1024 * 1024)
    environ = EnvironBuilder(path="/webhooks/stripe", method="POST", input_stream=body,
                             content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # chunked, as gunicorn hands it over
    response = app.test_client().open(environ)
    assert response.status_code == 413
    assert body.read_bytes <= 2 * app.config["WEBHOOK_MAX_BYTES"]


def test_other_requests_are_capped_too(client: Any) -> None:
    body = CountingStream(50 * 1024 * 1024)
    response = client.post("/staff/login", input_stream=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and body.read_bytes == 0


# -- secrets in access logs ------------------------------------------------------------------------------

TOKEN = "leak-check-7f3a9c"  # noqa: S105 - a marker to look for in the logs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(db_url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "kokin.toml"
    one_ward_config(config, tmp_path / "instance")
    return {**os.environ, "KOKIN_DATABASE_URL": db_url, "KOKIN_CONFIG": str(config), "KOKIN_DATA_KEYS": TEST_DATA_KEY,
            "PYTHONPATH": str(ROOT)}


def _post_until_served(port: int, server: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 60
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/paypay?token={TOKEN}", data=b"{}",
                                     headers={"Content-Type": "application/json"}, method="POST")
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own local server
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)


def _logged_request(command: list[str], env: dict[str, str], port: int) -> tuple[int, str]:
    """Start the server, POST PayPay's notification URL with its token, stop it; (status, everything it logged)."""
    server = subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status = _post_until_served(port, server)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    return status, output


def test_kokin_serve_logs_paypays_notification_without_its_token(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    status, log = _logged_request([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
                                  _env(db_url, tmp_path), port)
    assert status >= 400  # not the sandbox's token: refused, and logged
    assert "POST /webhooks/paypay?token=REDACTED" in log
    assert TOKEN not in log


def test_gunicorns_access_log_shows_no_token(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
               "--access-logfile", "-", "gateway:create_app()"]
    status, log = _logged_request(command, _env(db_url, tmp_path), port)
    assert status >= 400
    assert "POST /webhooks/paypay?token=REDACTED" in log
    assert TOKEN not in log
