"""A thin client for the PayPay Open Payment API (OPA): signing, transport and error mapping.

Our own client on `requests` rather than the `paypayopa` SDK (see shared/domain/providers.md).
Every request carries the documented HMAC header
(https://www.paypay.ne.jp/opa/doc/v1.0/dynamicqrcode#tag/Api-Authentication):

    Authorization: hmac OPA-Auth:{apiKey}:{mac}:{nonce}:{epoch}:{hash}

    hash = Base64(MD5(contentType + body)), or the word "empty" when there is no body
    mac  = Base64(HMAC-SHA256(apiSecret, path \\n METHOD \\n nonce \\n epoch \\n contentType \\n hash))

where contentType is the request's Content-Type header, or also the word "empty" when there
is no body, and `X-ASSUME-MERCHANT` names the merchant. Clock and nonce are injectable.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from adapters.base import AdapterError, PermanentError, RetryableError
from domain import clock as domain_clock

SANDBOX_BASE_URL = "https://stg-api.sandbox.paypay.ne.jp"
PRODUCTION_BASE_URL = "https://api.paypay.ne.jp"
# The documented sample signs "application/json;charset=UTF-8;" and the official Python SDK
# sends and signs "application/json;charset=UTF-8": PayPay recomputes the hash from the header
# it receives, so what matters is that the header we send is the string we sign.
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
EMPTY = "empty"
# PayPay: "the read timeout should not be less than 30 seconds" for payment creation, and a
# timeout "should be treated as unknown payment status" (SDK README, Error Handling).
DEFAULT_TIMEOUT = (5.0, 30.0)
SUCCESS_CODES = frozenset({"SUCCESS", "REQUEST_ACCEPTED"})


class PayPayError(AdapterError):
    """An OPA call that did not succeed; carries PayPay's resultInfo when there was one."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", code_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.code_id = code_id


class PayPayRetryableError(PayPayError, RetryableError):
    """Timeout, connection failure, 429 or 5xx: the outcome is unknown, the call may be repeated."""


class PayPayPermanentError(PayPayError, PermanentError):
    """4xx or a non-success resultInfo: repeating the same call will not help."""


@dataclass(frozen=True)
class OpaResponse:
    status: int
    code: str
    message: str
    code_id: str
    data: Mapping[str, Any] = field(default_factory=dict)


def body_hash(content_type: str, body: bytes) -> str:
    """Return Base64(MD5(content type + body)), the documented body digest."""
    # MD5 is PayPay's choice of digest inside the HMAC input, not our integrity check.
    digest = hashlib.md5(content_type.encode("utf-8") + body, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def opa_auth_header(*, api_key: str, api_secret: str, method: str, path: str,
                    content_type: str | None, body: bytes | None, nonce: str, epoch: int) -> str:
    """Build the `Authorization` value for one request; `path` excludes host and query."""
    if body:
        if not content_type:
            raise ValueError("a request with a body needs a content type")
        signed_type, digest = content_type, body_hash(content_type, body)
    else:
        signed_type, digest = EMPTY, EMPTY
    mac_input = "\n".join([path, method.upper(), nonce, str(epoch), signed_type, digest])
    mac = hmac.new(api_secret.encode("utf-8"), mac_input.encode("utf-8"), hashlib.sha256).digest()
    return f"hmac OPA-Auth:{api_key}:{base64.b64encode(mac).decode('ascii')}:{nonce}:{epoch}:{digest}"


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """Serialise a request body once, so the signed bytes are the sent bytes."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def random_nonce() -> str:
    """Return 16 random hex characters (PayPay asks for at least 8)."""
    return secrets.token_hex(8)


class PayPayClient:
    """Signed JSON calls to one OPA base URL for one merchant."""

    def __init__(self, *, base_url: str, api_key: str, api_secret: str, merchant_id: str,
                 session: requests.Session | None = None, clock: Callable[[], float] = domain_clock.timestamp,
                 nonce_factory: Callable[[], str] = random_nonce,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        self.merchant_id = merchant_id
        self.session = session if session is not None else requests.Session()
        self._clock = clock
        self._nonce = nonce_factory
        self._timeout = timeout

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> OpaResponse:
        """Send one signed call and return its resultInfo and data.

        Raises PayPayRetryableError (timeout, connection, 429, 5xx) or PayPayPermanentError
        (any other non-2xx, or a 2xx whose resultInfo.code is not a success).
        """
        method = method.upper()
        body = canonical_json(payload) if payload is not None else None
        headers = {
            "Authorization": opa_auth_header(
                api_key=self._api_key, api_secret=self._api_secret, method=method, path=path,
                content_type=JSON_CONTENT_TYPE if body else None, body=body,
                nonce=self._nonce(), epoch=int(self._clock())),
            "X-ASSUME-MERCHANT": self.merchant_id,
            "Accept": "application/json",
        }
        if body:
            headers["Content-Type"] = JSON_CONTENT_TYPE
        where = f"PayPay {method} {path}"
        try:
            response = self.session.request(method, self.base_url + path, data=body, headers=headers,
                                            timeout=self._timeout, allow_redirects=False)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise PayPayRetryableError(f"{where}: {type(exc).__name__}; outcome unknown") from exc
        except requests.RequestException as exc:
            raise PayPayPermanentError(f"{where}: {type(exc).__name__}") from exc
        return _interpret(where, response)


def _interpret(where: str, response: requests.Response) -> OpaResponse:
    status = int(response.status_code)
    try:
        document = response.json()
    except ValueError:
        document = None
    info = document.get("resultInfo") if isinstance(document, dict) else None
    info = info if isinstance(info, dict) else {}
    code, message, code_id = (str(info.get(key) or "") for key in ("code", "message", "codeId"))
    detail = f"{where}: HTTP {status} {code or '-'} ({code_id or '-'}) {message}".rstrip()
    if status == 429 or status >= 500:
        raise PayPayRetryableError(detail, status=status, code=code, code_id=code_id)
    if not 200 <= status < 300:
        raise PayPayPermanentError(detail, status=status, code=code, code_id=code_id)
    if not isinstance(document, dict):
        # A 2xx we cannot read leaves the call's effect unknown, like a timeout.
        raise PayPayRetryableError(f"{where}: HTTP {status} with an unreadable body", status=status)
    if code not in SUCCESS_CODES:
        raise PayPayPermanentError(detail, status=status, code=code, code_id=code_id)
    data = document.get("data")
    return OpaResponse(status, code, message, code_id, data if isinstance(data, dict) else {})
