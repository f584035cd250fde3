"""A thin client for the Square Connect v2 API: bearer token, version header, error mapping.

Our own client on `requests` rather than the official `squareup` SDK, which is built on httpx
and pydantic (shared/domain/providers.md). The surface we use is narrow (create, get and cancel
a Terminal checkout, create and get a refund), so a few lines of JSON over `requests` are
easier to audit than a generated SDK; it lets sandbox mode mount an in-process simulator as a
`requests` transport adapter, as the PayPay adapter does, so the production HTTP code path runs
unchanged in sandbox; and tests can replay documented payloads with `responses`.

Every request carries `Authorization: Bearer <access token>` and `Square-Version: <date>`
(https://developer.squareup.com/docs/build-basics/versioning-overview). Square answers errors
as `{"errors": [{"category", "code", "detail", "field"}]}`
(https://developer.squareup.com/docs/build-basics/handling-errors).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests

from adapters.base import AdapterError, PermanentError, RetryableError

PRODUCTION_BASE_URL = "https://connect.squareup.com"
SANDBOX_BASE_URL = "https://connect.squareupsandbox.com"
DEFAULT_SQUARE_VERSION = "2025-10-16"
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds


class SquareError(AdapterError):
    """A Square call that did not succeed; carries Square's first error when there was one."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", category: str = "",
                 detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.category = category
        self.detail = detail


class SquareRetryableError(SquareError, RetryableError):
    """Timeout, connection failure, 429 or 5xx: the outcome is unknown, the call may be repeated."""


class SquarePermanentError(SquareError, PermanentError):
    """Any other 4xx: repeating the same call will not help."""


class SquareClient:
    """JSON calls to one Square base URL with one access token."""

    def __init__(self, *, base_url: str, access_token: str, square_version: str = DEFAULT_SQUARE_VERSION,
                 session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        if not access_token:
            raise ValueError("square: access_token must be non-empty")
        self.base_url = base_url.rstrip("/")
        self._access_token = access_token
        self.square_version = square_version
        self.session = session if session is not None else requests.Session()
        self._timeout = timeout

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send one call and return the JSON object Square answered.

        Raises SquareRetryableError (timeout, connection, 429, 5xx, an unreadable 2xx) or
        SquarePermanentError (any other non-2xx).
        """
        method = method.upper()
        headers = {
            "Authorization": f"Bearer {self._access_token}",
            "Square-Version": self.square_version,
            "Accept": "application/json",
        }
        body = None
        if payload is not None:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        where = f"Square {method} {path}"
        try:
            response = self.session.request(method, self.base_url + path, data=body, headers=headers,
                                            timeout=self._timeout, allow_redirects=False)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise SquareRetryableError(f"{where}: {type(exc).__name__}; outcome unknown") from exc
        except requests.RequestException as exc:
            raise SquarePermanentError(f"{where}: {type(exc).__name__}") from exc
        return _interpret(where, response)


def _interpret(where: str, response: requests.Response) -> dict[str, Any]:
    status = int(response.status_code)
    try:
        document = response.json()
    except ValueError:
        document = None
    errors = document.get("errors") if isinstance(document, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code, category, detail = (str(first.get(key) or "") for key in ("code", "category", "detail"))
    message = f"{where}: HTTP {status} {code or '-'} ({category or '-'}) {detail}".rstrip()
    if status == 429 or status >= 500:
        raise SquareRetryableError(message, status=status, code=code, category=category, detail=detail)
    if not 200 <= status < 300:
        raise SquarePermanentError(message, status=status, code=code, category=category, detail=detail)
    if not isinstance(document, dict):
        # A 2xx we cannot read leaves the call's effect unknown, like a timeout.
        raise SquareRetryableError(f"{where}: HTTP {status} with an unreadable body", status=status)
    if first:  # Square may answer 200 with errors for a partial failure; none of our calls expects one
        raise SquarePermanentError(message, status=status, code=code, category=category, detail=detail)
    return document
