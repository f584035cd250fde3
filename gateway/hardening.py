"""What every response and every request gets, whatever the blueprint, and what production refuses.

- One header layer (`add_security_headers`): a Content-Security-Policy that allows no inline
  script, no framing, nosniff, a Referrer-Policy, HSTS in production, and no-store on every
  page but static files (API answers, staff and pay pages carry payment state or names).
- Request bodies are capped (`MAX_CONTENT_LENGTH`; a route that takes files or notifications
  sets its own with `limit_body`): werkzeug refuses a declared length above the cap with 413
  before reading a byte, and stops a chunked body at the cap.
- A secret in the query string (PayPay's notification token, `?token=`) is replaced in the
  WSGI environ once the app has read it, so gunicorn's access log (written from that environ
  after the response) never shows it; `kokin serve` logs the redacted line too.
- `check_production`: production refuses to start with a sandbox adapter, a credential the
  simulators publish, a short secret key or no data keys, naming every problem at once.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, Response, current_app, request

from adapters.registry import known_sandbox_credentials
from gateway.crypto import PAYER_REF_KEY_BYTES

MIN_SECRET_KEY_BYTES = 32
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=63072000; includeSubDomains"
SECRET_QUERY = re.compile(r"(?i)(^|&)(token)=[^&\s]*")
REDACTED = r"\1\2=REDACTED"


def init_hardening(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = app.config.get("MAX_CONTENT_LENGTH") or 1024 * 1024
    app.after_request(add_security_headers)
    app.wsgi_app = RedactQuerySecrets(app.wsgi_app)  # type: ignore[method-assign]


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"  # for browsers without frame-ancestors
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"  # pay links carry their token in the path
    if not current_app.config.get("SANDBOX"):
        headers["Strict-Transport-Security"] = HSTS
    endpoint = request.endpoint or ""
    if not (endpoint == "static" or endpoint.endswith(".static") or endpoint.endswith("_static")):
        headers["Cache-Control"] = "no-store"
    return response


def limit_body(setting: str) -> None:
    """Cap this request's body at the app setting `setting` (bytes), before anything reads it."""
    request.max_content_length = int(current_app.config[setting])


class RedactQuerySecrets:
    """WSGI middleware: after the app has answered, the environ's query string shows no secret."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        finally:
            redact_environ(environ)


def redact_environ(environ: dict[str, Any]) -> None:
    query = environ.get("QUERY_STRING", "")
    if query and SECRET_QUERY.search(query):
        environ["QUERY_STRING"] = SECRET_QUERY.sub(REDACTED, query)
        for key in ("RAW_URI", "REQUEST_URI"):
            if key in environ:
                environ[key] = redact_target(str(environ[key]))


def redact_target(target: str) -> str:
    """`/webhooks/paypay?token=abc` → `/webhooks/paypay?token=REDACTED`: a request target fit for a log."""
    path, mark, query = target.partition("?")
    return f"{path}{mark}{SECRET_QUERY.sub(REDACTED, query)}"


# -- production ---------------------------------------------------------------------------------

def production_problems(config: Mapping[str, Any], adapters: Mapping[str, Mapping[str, Any]],
                        agencies: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]) -> list[str]:
    """Every reason this configuration must not serve real money; empty when it may.

    `adapters` and `agencies` are the settings with secrets resolved from the environment.
    """
    problems = []
    published = known_sandbox_credentials()
    if config.get("SANDBOX"):
        problems.append("SANDBOX is true: production never runs the simulated providers")
    for kind, configured in (("adapter", adapters), ("agency adapter", agencies)):
        for name, settings in configured.items():
            if _truthy(settings.get("sandbox")):
                problems.append(f"{kind} {name} is in sandbox mode (sandbox = true)")
            for key, value in settings.items():
                if isinstance(value, str) and value in published:
                    problems.append(f"{kind} {name}: {key} is a published sandbox credential")
    secret_key_env = str(config.get("SECRET_KEY_ENV", "KOKIN_SECRET_KEY"))
    secret_key = environ.get(secret_key_env, "")
    if len(secret_key.encode("utf-8")) < MIN_SECRET_KEY_BYTES:
        problems.append(f"{secret_key_env} is {'not set' if not secret_key else 'too short'}: "
                        f"at least {MIN_SECRET_KEY_BYTES} bytes of random data are needed")
    elif secret_key in published:
        problems.append(f"{secret_key_env} is a published sandbox value")
    data_keys_env = str(config.get("DATA_KEYS_ENV", "KOKIN_DATA_KEYS"))
    if not environ.get(data_keys_env, "").strip():
        problems.append(f"{data_keys_env} is not set: personal data needs its encryption keys")
    payer_ref_env = str(config.get("PAYER_REF_KEY_ENV", "KOKIN_PAYER_REF_KEY"))
    payer_ref_key = environ.get(payer_ref_env, "").strip()
    if len(payer_ref_key.encode("utf-8")) < PAYER_REF_KEY_BYTES:
        problems.append(f"{payer_ref_env} is {'not set' if not payer_ref_key else 'too short'}: payer references "
                        f"are kept as keyed hashes under at least {PAYER_REF_KEY_BYTES} bytes")
    return problems


def check_production(config: Mapping[str, Any], adapters: Mapping[str, Mapping[str, Any]],
                     agencies: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise RuntimeError listing every problem when production is configured unsafely."""
    problems = production_problems(config, adapters, agencies, os.environ)
    if problems:
        raise RuntimeError("refusing to start in production:\n" + "\n".join(f"  - {p}" for p in problems))


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in {"1", "true", "yes"})
