"""An in-process PayPay OPA for sandbox mode, tests and the demo: no network, same client code.

`PayPaySimulator.mount(session, base_url)` installs a `requests` transport adapter so the
adapter's real client (signing, JSON, error mapping) talks to this fake. The fake verifies the
OPA-Auth header as PayPay does (401 UNAUTHORIZED otherwise), keeps codes and payments behind a
lock (in memory, or shared between processes once `state.attach` is called: adapters/simulator_state.py),
and answers with the documented payload shapes and result codes
(https://www.paypay.ne.jp/opa/doc/v1.0/dynamicqrcode and the SDK READMEs' response code lists).

Two deliberate simplifications: `simulate_payment(..., "EXPIRED")` reports status EXPIRED
(real PayPay keeps an expired code at CREATED; the adapter infers expiry itself), and refunds
are answered CREATED and settle to REFUNDED on the next read.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple
from urllib.parse import quote

import requests
from requests.structures import CaseInsensitiveDict

from adapters.paypay.client import EMPTY
from adapters.simulator_state import Codec, SimulatorState
from adapters.transport import mount_simulator
from domain import clock as domain_clock

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_JST = timezone(timedelta(hours=9))
DEFAULT_CODE_VALIDITY_SECS = 300  # assumed; PayPay's default is not in the stored documents
_KEEP = 1000  # recent requests and undelivered notifications kept, so a long demo stays small
_ERRORS = {  # code -> (HTTP status, codeId, message), from the documented response code lists
    "UNAUTHORIZED": (401, "08100016", "Unauthorized request"),
    "INVALID_REQUEST_PARAMS": (400, "08100006", "Invalid request params"),
    "DUPLICATE_DYNAMIC_QR_REQUEST": (400, "01652073", "Duplicate Dynamic QR request error"),
    "DYNAMIC_QR_BAD_REQUEST": (400, "01650000", "Dynamic QR bad request error"),
    "DYNAMIC_QR_PAYMENT_NOT_FOUND": (404, "01652075", "Dynamic QR payment not found"),
    "DYNAMIC_QR_NOT_FOUND": (404, "01652072", "Dynamic qr code not found"),
    "DYNAMIC_QR_ALREADY_PAID": (400, "01652074", "Dynamic QR already paid"),
    "ORDER_NOT_REVERSIBLE": (400, "00200044", "Order cannot be reversed"),
    "UNACCEPTABLE_OP": (400, "00200013", "Order cannot be refunded"),
    "INVALID_PARAMS": (400, "00200015", "Invalid refund amount"),
    "RESOURCE_NOT_FOUND": (404, "00200001", "Order not found"),
}


class Delivery(NamedTuple):
    """One notification as our webhook endpoint receives it."""

    headers: dict[str, str]
    body: bytes


@dataclass
class _Payment:
    merchant_payment_id: str
    code_id: str
    amount: int
    description: str
    requested_at: int
    expiry: int
    status: str = "CREATED"
    payment_id: str | None = None
    accepted_at: int = 0
    canceled_at: int | None = None
    deleted: bool = False
    cancel_requested: bool = False
    refunds: list[dict[str, Any]] = field(default_factory=list)
    redirect_url: str | None = None  # where the app sends the resident back after paying


_PAYMENTS = Codec(encode=asdict, decode=lambda fields: _Payment(**fields))


class PayPaySimulator:
    """A fake PayPay merchant account: the endpoints the PayPay adapter uses, and the resident."""

    def __init__(self, *, api_key: str, api_secret: str, merchant_id: str, webhook_token: str | None = None,
                 clock: Callable[[], float] = domain_clock.timestamp) -> None:
        self._api_key = api_key
        self._api_secret = api_secret.encode("utf-8")
        self._merchant_id = merchant_id
        self._webhook_token = webhook_token
        self._clock = clock
        self.state = SimulatorState({"payments": _PAYMENTS})  # merchantPaymentId -> the code and its payment
        # merchantPaymentId -> the page the QR code opens; None: PayPay's sandbox cashier (never fetched)
        self.payment_page_url: Callable[[str], str] | None = None
        self._outbox: deque[Delivery] = deque(maxlen=_KEEP)
        self._failures: list[tuple[int, str]] = []
        self.calls: deque[tuple[str, str]] = deque(maxlen=_KEEP)  # (METHOD, path) of recent requests

    @property
    def _payments(self) -> MutableMapping[str, _Payment]:
        return self.state.bucket("payments")

    # -- wiring -----------------------------------------------------------------------------

    def mount(self, session: requests.Session, base_url: str) -> None:
        """Route `base_url` on this session to the simulator and refuse every other URL."""
        mount_simulator(session, base_url, self, content_type="application/json;charset=UTF-8")

    # -- what tests and the demo do ---------------------------------------------------------

    def simulate_payment(self, merchant_payment_id: str, outcome: str = "COMPLETED") -> str:
        """Play the resident: COMPLETED (paid), FAILED (declined) or EXPIRED (walked away)."""
        if outcome not in ("COMPLETED", "FAILED", "EXPIRED"):
            raise ValueError(f"outcome must be COMPLETED, FAILED or EXPIRED, not {outcome!r}")
        with self.state.unit():
            payment = self._payments.get(merchant_payment_id)
            if payment is None:
                raise KeyError(f"no code for merchantPaymentId {merchant_payment_id!r}")
            now = self._now()
            if payment.status != "CREATED" or payment.deleted:
                raise ValueError(f"{merchant_payment_id} is {payment.status}{' (deleted)' * payment.deleted}")
            if outcome != "EXPIRED" and now > payment.expiry:
                raise ValueError(f"{merchant_payment_id}: the code expired; the app refuses it")
            if outcome == "EXPIRED":
                payment.status = "EXPIRED"
            else:
                payment.payment_id = f"04{secrets.randbelow(10**17):017d}"
                payment.accepted_at = now if outcome == "COMPLETED" else 0
                payment.status = outcome
                if outcome == "COMPLETED" and payment.cancel_requested:
                    # FAQ: Cancel a payment before payment -> cancelled at once, status FAILED.
                    payment.status, payment.canceled_at = "FAILED", now
                elif outcome == "FAILED":
                    payment.canceled_at = now
            if self._webhook_token is not None:
                self._outbox.append(self._delivery(payment))
            return payment.status

    def notification(self, merchant_payment_id: str, sent_at: datetime | None = None,
                     token: str | None = None) -> Delivery:
        """Return the Transaction notification for the payment's current state.

        `sent_at` dates the event (paid_at) instead of the payment's acceptance time, and
        `token` replaces the webhook token, for tests of stale or forged deliveries.
        """
        with self.state.unit():
            if self._webhook_token is None and token is None:
                raise RuntimeError("the simulator was built without a webhook_token")
            return self._delivery(self._payments[merchant_payment_id], sent_at, token)

    def take_notifications(self) -> list[Delivery]:
        """Return and forget the notifications produced since the last call, oldest first."""
        with self.state.unit():
            taken = list(self._outbox)
            self._outbox.clear()
            return taken

    def details(self, merchant_payment_id: str) -> dict[str, Any]:
        """Return what `GET /v2/codes/payments/{id}` would answer (data only)."""
        with self.state.unit():
            return self._payment_data(self._payments[merchant_payment_id])

    def codes(self) -> list[dict[str, Any]]:
        """Return every code as `details` shows it, with its expiry and redirect URL, newest first."""
        with self.state.unit():
            found = sorted(self._payments.values(), key=lambda p: (p.requested_at, p.merchant_payment_id), reverse=True)
            return [{**self._payment_data(p), "codeId": p.code_id, "expiryDate": p.expiry, "deleted": p.deleted,
                     "redirectUrl": p.redirect_url} for p in found]

    def fail_next(self, status: int, code: str, message: str = "", code_id: str = "") -> None:
        """Answer the next request with this error (e.g. 503 MAINTENANCE_MODE)."""
        with self.state.unit():
            self._failures.append((status, json.dumps(_result(code, message, code_id))))

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one HTTP request the way PayPay would: (status, JSON document)."""
        method = method.upper()
        with self.state.unit():
            self.calls.append((method, path))
            if self._failures:
                status, document = self._failures.pop(0)
                return status, json.loads(document)
            if not self._authentic(method, path, CaseInsensitiveDict(headers), body):
                return _error("UNAUTHORIZED")
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                return _error("INVALID_REQUEST_PARAMS")
            if not isinstance(payload, dict):
                return _error("INVALID_REQUEST_PARAMS")
            return self._route(method, path, payload)

    def _route(self, method: str, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v2", "codes"]:
            return self._create_code(payload)
        if method == "GET" and parts[:3] == ["v2", "codes", "payments"] and len(parts) == 4:
            payment = self._payments.get(parts[3])
            if payment is None:
                return _error("DYNAMIC_QR_PAYMENT_NOT_FOUND")
            return _ok(200, self._payment_data(payment))
        if method == "DELETE" and parts[:2] == ["v2", "codes"] and len(parts) == 3:
            return self._delete_code(parts[2])
        if method == "DELETE" and parts[:2] == ["v2", "payments"] and len(parts) == 3:
            return self._cancel_payment(parts[2])
        if method == "POST" and parts == ["v2", "refunds"]:
            return self._refund(payload)
        return 404, _result("RESOURCE_NOT_FOUND", "Not found", "")

    def _authentic(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> bool:
        authorization = headers.get("Authorization", "")
        prefix = "hmac OPA-Auth:"
        parts = authorization[len(prefix):].split(":") if authorization.startswith(prefix) else []
        if len(parts) != 5 or headers.get("X-ASSUME-MERCHANT") != self._merchant_id:
            return False
        api_key, mac, nonce, epoch, claimed_hash = parts
        if body:
            content_type = headers.get("Content-Type", "")
            digest = hashlib.md5(content_type.encode("utf-8") + body, usedforsecurity=False).digest()
            expected_hash = base64.b64encode(digest).decode("ascii")
        else:
            content_type = expected_hash = EMPTY
        signed = "\n".join([path, method, nonce, epoch, content_type, expected_hash]).encode("utf-8")
        expected_mac = base64.b64encode(hmac.new(self._api_secret, signed, hashlib.sha256).digest()).decode()
        return (hmac.compare_digest(api_key, self._api_key) and hmac.compare_digest(claimed_hash, expected_hash)
                and hmac.compare_digest(mac, expected_mac) and epoch.isdigit() and len(nonce) >= 8)

    # -- endpoints --------------------------------------------------------------------------

    def _create_code(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        reference, amount = payload.get("merchantPaymentId"), _jpy(payload.get("amount"))
        validity = payload.get("codeValidityPeriodSecs", DEFAULT_CODE_VALIDITY_SECS)
        if not isinstance(reference, str) or not _ID.fullmatch(reference) or amount is None:
            return _error("INVALID_REQUEST_PARAMS")
        if payload.get("codeType") != "ORDER_QR" or not isinstance(validity, int) or validity < 60:
            return _error("DYNAMIC_QR_BAD_REQUEST")
        if reference in self._payments:
            return _error("DUPLICATE_DYNAMIC_QR_REQUEST")
        now = self._now()
        redirect = payload.get("redirectUrl")
        payment = _Payment(reference, f"04-{secrets.token_urlsafe(12)}", amount,
                           str(payload.get("orderDescription") or ""), int(payload.get("requestedAt") or now),
                           now + validity, redirect_url=redirect if isinstance(redirect, str) else None)
        self._payments[reference] = payment
        link = f"https://qr-stg.sandbox.paypay.ne.jp/28180104{secrets.token_hex(12)}"
        page = f"https://stg-www.sandbox.paypay.ne.jp/app/cashier?code={quote(link, safe='')}"
        return _ok(201, {
            "codeId": payment.code_id,
            "url": self.payment_page_url(reference) if self.payment_page_url else page,
            "deeplink": f"paypay://payment?link_key={quote(link, safe='')}",
            "expiryDate": payment.expiry,
            "merchantPaymentId": reference,
            "amount": {"amount": amount, "currency": "JPY"},
            "orderDescription": payment.description,
            "codeType": "ORDER_QR",
            "requestedAt": payment.requested_at,
            "redirectUrl": payload.get("redirectUrl"),
            "redirectType": payload.get("redirectType"),
            "isAuthorization": False,
            "authorizationExpiry": None,
        })

    def _delete_code(self, code_id: str) -> tuple[int, dict[str, Any]]:
        payment = next((p for p in self._payments.values() if p.code_id == code_id), None)
        if payment is None or payment.deleted:
            return _error("DYNAMIC_QR_NOT_FOUND")
        if payment.status != "CREATED":
            return _error("DYNAMIC_QR_ALREADY_PAID")
        payment.deleted = True
        return _ok(200, {"qrStatus": "DELETED"})

    def _cancel_payment(self, reference: str) -> tuple[int, dict[str, Any]]:
        payment = self._payments.get(reference)
        if payment is not None and payment.status == "CREATED":
            payment.cancel_requested = True
        elif payment is not None:
            if payment.status != "COMPLETED" or self._now() > _cancel_deadline(payment.accepted_at):
                return _error("ORDER_NOT_REVERSIBLE")
            payment.status, payment.canceled_at = "CANCELED", self._now()
        return 202, _result("REQUEST_ACCEPTED", "Request accepted", "08100001")

    def _refund(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        refund_id, payment_id, amount = payload.get("merchantRefundId"), payload.get("paymentId"), \
            _jpy(payload.get("amount"))
        if not isinstance(refund_id, str) or not _ID.fullmatch(refund_id) or amount is None \
                or not isinstance(payload.get("requestedAt"), int):
            return _error("INVALID_REQUEST_PARAMS")
        payment = next((p for p in self._payments.values() if p.payment_id and p.payment_id == payment_id), None)
        if payment is None:
            return _error("RESOURCE_NOT_FOUND")
        self._settle_refunds(payment)
        for refund in payment.refunds:
            if refund["merchantRefundId"] == refund_id:  # OPA doc: "the previous result is returned"
                return _ok(200, dict(refund))
        if payment.status not in ("COMPLETED", "REFUNDED"):
            return _error("UNACCEPTABLE_OP")
        if amount > payment.amount - sum(r["amount"]["amount"] for r in payment.refunds):
            return _error("INVALID_PARAMS")
        refund = {"status": "CREATED", "acceptedAt": 0, "merchantRefundId": refund_id, "paymentId": payment_id,
                  "amount": {"amount": amount, "currency": "JPY"}, "requestedAt": payload["requestedAt"],
                  "reason": payload.get("reason"), "assumeMerchant": self._merchant_id}
        payment.refunds.append(refund)
        return _ok(200, dict(refund))

    # -- state ------------------------------------------------------------------------------

    def _settle_refunds(self, payment: _Payment) -> None:
        for refund in payment.refunds:
            if refund["status"] == "CREATED":
                refund["status"], refund["acceptedAt"] = "REFUNDED", self._now()
        if payment.refunds and sum(r["amount"]["amount"] for r in payment.refunds) >= payment.amount:
            payment.status = "REFUNDED"

    def _payment_data(self, payment: _Payment) -> dict[str, Any]:
        self._settle_refunds(payment)
        data: dict[str, Any] = {
            "status": payment.status,
            "acceptedAt": payment.accepted_at,
            "refunds": {"data": [dict(r) for r in payment.refunds]},
            "merchantPaymentId": payment.merchant_payment_id,
            "amount": {"amount": payment.amount, "currency": "JPY"},
            "requestedAt": payment.requested_at,
            "expiresAt": None,
            "canceledAt": payment.canceled_at,
            "storeId": None,
            "terminalId": None,
            "orderReceiptNumber": None,
            "orderDescription": payment.description,
        }
        if payment.payment_id is not None:
            data["paymentId"] = payment.payment_id
        return data

    def _delivery(self, payment: _Payment, sent_at: datetime | None = None, token: str | None = None) -> Delivery:
        # Shape of the Transaction event as typed by github.com/mythrnr/paypayopa-sdk-go webhook.go.
        accepted = int(sent_at.timestamp()) if sent_at is not None else payment.accepted_at
        paid_at = _iso(accepted) if accepted and payment.status in ("COMPLETED", "REFUNDED") else None
        event = {
            "notification_type": "Transaction", "merchant_id": self._merchant_id, "store_id": None,
            "pos_id": None, "order_id": payment.payment_id, "merchant_order_id": payment.merchant_payment_id,
            "authorized_at": None, "expires_at": None, "paid_at": paid_at, "order_amount": payment.amount,
            "state": payment.status,
        }
        headers = {"Content-Type": "application/json", "X-Kokin-Webhook-Token": str(token or self._webhook_token)}
        return Delivery(headers, json.dumps(event, separators=(",", ":")).encode("utf-8"))

    def _now(self) -> int:
        return int(self._clock())


def _jpy(money: Any) -> int | None:
    if not isinstance(money, dict) or money.get("currency") != "JPY":
        return None
    value = money.get("amount")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _cancel_deadline(accepted_at: int) -> int:
    # OPA doc, Cancel a payment: "until 00:14:59 AM on the following day" (Japan time).
    day = datetime.fromtimestamp(accepted_at, _JST).date() + timedelta(days=1)
    return int(datetime(day.year, day.month, day.day, 0, 14, 59, tzinfo=_JST).timestamp())


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _result(code: str, message: str, code_id: str) -> dict[str, Any]:
    return {"resultInfo": {"code": code, "message": message, "codeId": code_id}, "data": None}


def _ok(status: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return status, {"resultInfo": {"code": "SUCCESS", "message": "Success", "codeId": "08100001"}, "data": data}


def _error(code: str) -> tuple[int, dict[str, Any]]:
    status, code_id, message = _ERRORS[code]
    return status, _result(code, message, code_id)
