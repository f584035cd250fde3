"""An in-process Square account with a paired Terminal: sandbox mode, tests and the demo.

`SquareSimulator.mount(session, base_url)` installs a `requests` transport adapter so the
adapter's real client (headers, JSON, error mapping) talks to this fake, and every other URL
is refused. It checks the bearer token (401 UNAUTHORIZED otherwise), keeps checkouts, payments
and refunds behind a lock (in memory, or shared between processes once `state.attach` is called:
adapters/simulator_state.py), and answers with the documented object shapes
(TerminalCheckout, PaymentRefund) and error envelope (`{"errors": [...]}`).

The device is played by `simulate_device(checkout_id, action)`; `expire_due(now)` (also run
before every API call, on the simulator's clock) times out PENDING checkouts past their
deadline. Simplifications: a seller's cancel of an open checkout is CANCELED at once (Square
may pass through CANCEL_REQUESTED while the device acknowledges); refunds complete at once
unless `refunds_pending` is set, in which case they stay PENDING until next read
(`GET /v2/refunds/{id}`); any non-empty device_id is a paired device.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import parse_qs

import requests
from requests.structures import CaseInsensitiveDict

from adapters.simulator_state import PLAIN, Codec, SimulatorState
from adapters.square.adapter import CHECKOUT_UPDATED, FELICA_TYPES, PAYMENT_TYPES, SIGNATURE_HEADER
from adapters.transport import mount_simulator
from domain import clock as domain_clock

_JST = timezone(timedelta(hours=9), "Asia/Tokyo")
_KEEP = 1000  # recent requests kept, so a long demo stays small
_DURATION = re.compile(r"PT(?:(\d+)M)?(?:(\d+)S)?")
DEFAULT_DEADLINE = timedelta(minutes=5)
MERCHANT_ID = "MLSANDBOXKOKIN"
LOCATION_ID = "LSANDBOXKOKIN"
DeviceAction = Literal["start", "decline", "complete", "cancel", "timeout"]
Outage = Literal["server_error", "rate_limit", "connection"]
_OUTAGES: dict[str, tuple[int, str, str]] = {
    "server_error": (500, "API_ERROR", "INTERNAL_SERVER_ERROR"),
    "rate_limit": (429, "RATE_LIMIT_ERROR", "RATE_LIMITED"),
}


@dataclass
class _Checkout:
    data: dict[str, Any]  # the TerminalCheckout as Square shows it
    key: str  # the idempotency key that created it
    deadline: datetime
    declines: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (event_id, snapshot)


@dataclass
class _Payment:
    payment_id: str
    checkout_id: str
    reference_id: str | None
    amount: int
    payment_type: str  # what the buyer actually used (a FELICA_* type for FELICA_ALL)
    created_at: datetime
    refunds: list[str] = field(default_factory=list)  # refund ids


_CHECKOUTS = Codec(
    encode=lambda c: {**asdict(c), "deadline": c.deadline.isoformat()},
    decode=lambda c: _Checkout(**{**c, "deadline": datetime.fromisoformat(c["deadline"]),
                                  "events": [tuple(event) for event in c["events"]]}))
_PAYMENTS = Codec(encode=lambda p: {**asdict(p), "created_at": p.created_at.isoformat()},
                  decode=lambda p: _Payment(**{**p, "created_at": datetime.fromisoformat(p["created_at"])}))


class SquareSimulator:
    """A fake Square seller account with Terminals; thread-safe, clock settable (`clock`)."""

    def __init__(self, *, access_token: str, signature_key: str, notification_url: str,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._access_token = access_token
        self.signature_key = signature_key
        self.notification_url = notification_url
        self.clock: Callable[[], datetime] = clock or domain_clock.now
        self.refunds_pending = False  # True: new refunds stay PENDING until next read
        # checkouts by id; by_key: checkout idempotency key -> checkout id; payments by id;
        # refunds: refund id -> PaymentRefund; refund_keys: refund idempotency key -> refund id
        self.state = SimulatorState({"checkouts": _CHECKOUTS, "by_key": PLAIN, "payments": _PAYMENTS,
                                     "refunds": PLAIN, "refund_keys": PLAIN})
        self._outages: list[Outage] = []
        self.calls: deque[tuple[str, str, str]] = deque(maxlen=_KEEP)  # (METHOD, path, Square-Version)

    @property
    def _checkouts(self) -> MutableMapping[str, _Checkout]:
        return self.state.bucket("checkouts")

    @property
    def _by_key(self) -> MutableMapping[str, str]:
        return self.state.bucket("by_key")

    @property
    def _payments(self) -> MutableMapping[str, _Payment]:
        return self.state.bucket("payments")

    @property
    def _refunds(self) -> MutableMapping[str, dict[str, Any]]:
        return self.state.bucket("refunds")

    @property
    def _refund_keys(self) -> MutableMapping[str, str]:
        return self.state.bucket("refund_keys")

    # -- wiring -----------------------------------------------------------------------------

    def mount(self, session: requests.Session, base_url: str) -> None:
        """Route `base_url` on this session to the simulator and refuse every other URL."""
        mount_simulator(session, base_url, self, content_type="application/json", with_query=True)

    # -- what tests and the demo do ---------------------------------------------------------

    def simulate_device(self, checkout_id: str, action: DeviceAction, *, payment_type: str | None = None) -> str:
        """Play the buyer at the Terminal; return the checkout's status afterwards.

        "start": the buyer is at the device (IN_PROGRESS). "decline": the card or e-money is
        refused (short balance, ...): the device asks for another try and the checkout stays
        IN_PROGRESS. "complete": paid (COMPLETED, with a payment; `payment_type` names what
        was actually used for a FELICA_ALL checkout). "cancel": the buyer cancels on the
        device (CANCELED / BUYER_CANCELED). "timeout": the device gives up (CANCELED /
        TIMED_OUT). Raises KeyError for an unknown checkout, ValueError for a device that
        cannot do that now.
        """
        with self.state.unit():
            self._expire_due(self.clock())
            checkout = self._checkouts[checkout_id]
            status = checkout.data["status"]
            if status not in ("PENDING", "IN_PROGRESS"):
                raise ValueError(f"checkout {checkout_id} is {status}: the device has finished with it")
            if action in ("start", "decline"):
                checkout.declines += action == "decline"
                if status == "PENDING":
                    self._change(checkout, status="IN_PROGRESS")
            elif action == "complete":
                if status != "IN_PROGRESS":
                    raise ValueError(f"checkout {checkout_id} is PENDING: the buyer has not started")
                self._complete(checkout, payment_type)
            elif action == "cancel":
                self._change(checkout, status="CANCELED", cancel_reason="BUYER_CANCELED")
            elif action == "timeout":
                self._change(checkout, status="CANCELED", cancel_reason="TIMED_OUT")
            else:
                raise ValueError(f"unknown device action {action!r}")
            return str(checkout.data["status"])

    def expire_due(self, now: datetime) -> list[str]:
        """Time out PENDING checkouts whose deadline has passed; return their ids."""
        with self.state.unit():
            return self._expire_due(now)

    def checkout(self, checkout_id: str) -> dict[str, Any]:
        """Return the TerminalCheckout as `GET /v2/terminals/checkouts/{id}` would."""
        with self.state.unit():
            return copy.deepcopy(self._checkouts[checkout_id].data)

    def checkouts(self) -> list[dict[str, Any]]:
        """Return every TerminalCheckout, newest first: the sandbox console."""
        with self.state.unit():
            self._expire_due(self.clock())
            return [copy.deepcopy(c.data) for c in sorted(self._checkouts.values(),
                                                          key=lambda c: c.data["created_at"], reverse=True)]

    def events_for(self, checkout_id: str, signed_at: datetime, *, secret: str | None = None,
                   notification_url: str | None = None) -> list[tuple[dict[str, str], bytes]]:
        """Return a signed `terminal.checkout.updated` delivery for each state change so far.

        Each carries the checkout as it was after that change, created_at = `signed_at`, and
        the same event_id on every call (as Square's retries do). Signed over the configured
        notification URL + body with the signature key, or with `secret` / `notification_url`
        instead, to test a wrong key or another subscription's URL.
        """
        with self.state.unit():
            events = list(self._checkouts[checkout_id].events)
        deliveries = []
        for event_id, snapshot in events:
            document = {
                "merchant_id": MERCHANT_ID,
                "location_id": LOCATION_ID,
                "type": CHECKOUT_UPDATED,
                "event_id": event_id,
                "created_at": _iso(signed_at),
                "data": {"type": "checkout", "id": snapshot["id"], "object": {"checkout": snapshot}},
            }
            body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            deliveries.append((self.delivery_headers(body, signed_at, secret=secret,
                                                     notification_url=notification_url), body))
        return deliveries

    def delivery_headers(self, body: bytes, sent_at: datetime, *, secret: str | None = None,
                         notification_url: str | None = None) -> dict[str, str]:
        """Return the headers Square sends with a notification whose raw body is `body`."""
        key = (secret if secret is not None else self.signature_key).encode("utf-8")
        url = (notification_url if notification_url is not None else self.notification_url).encode("utf-8")
        signature = base64.b64encode(hmac.new(key, url + body, hashlib.sha256).digest()).decode("ascii")
        return {"Content-Type": "application/json", "User-Agent": "Square Connect v2",
                "Square-Initial-Delivery-Timestamp": _iso(sent_at), SIGNATURE_HEADER: signature}

    def settlement_report(self, day: date) -> list[dict[str, Any]]:
        """Return the payments completed on `day` (Asia/Tokyo), oldest first.

        Each: payment_id, checkout_id, reference_id, amount (yen), payment_type (what was
        used) and created_at (timezone-aware, UTC): what the daily close compares against.
        """
        with self.state.unit():
            payments = [p for p in self._payments.values() if p.created_at.astimezone(_JST).date() == day]
            return [{"payment_id": p.payment_id, "checkout_id": p.checkout_id, "reference_id": p.reference_id,
                     "amount": p.amount, "payment_type": p.payment_type, "created_at": p.created_at}
                    for p in sorted(payments, key=lambda p: p.created_at)]

    def simulate_outage(self, requests: int = 1, kind: Outage = "server_error") -> None:
        """Make the next `requests` API calls fail: HTTP 500, HTTP 429, or no connection."""
        if kind not in ("server_error", "rate_limit", "connection"):
            raise ValueError(f"unknown outage {kind!r}")
        with self.state.unit():
            self._outages.extend([kind] * requests)

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one HTTP request the way Square would: (status, JSON document).

        Raises requests.ConnectionError for a simulated connection outage.
        """
        method = method.upper()
        lowered = CaseInsensitiveDict(headers)
        with self.state.unit():
            self.calls.append((method, path, str(lowered.get("Square-Version", ""))))
            if self._outages:
                kind = self._outages.pop(0)
                if kind == "connection":
                    raise requests.ConnectionError("simulated network failure")
                status, category, code = _OUTAGES[kind]
                return _error(status, category, code, "Simulated outage.")
            token = str(lowered.get("Authorization", ""))
            if not token.startswith("Bearer ") or not hmac.compare_digest(token[7:], self._access_token):
                return _error(401, "AUTHENTICATION_ERROR", "UNAUTHORIZED",
                              "This request could not be authorized.")
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                return _error(400, "INVALID_REQUEST_ERROR", "INVALID_CONTENT_TYPE", "The body is not JSON.")
            if not isinstance(payload, dict):
                return _error(400, "INVALID_REQUEST_ERROR", "INVALID_BODY", "The body is not a JSON object.")
            self._expire_due(self.clock())
            return self._route(method, path, payload)

    def _route(self, method: str, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path, _, query = path.partition("?")
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["v2", "payments"]:
            return self._list_payments({k: v[-1] for k, v in parse_qs(query).items()})
        if method == "POST" and parts == ["v2", "terminals", "checkouts"]:
            return self._create_checkout(payload)
        if parts[:3] == ["v2", "terminals", "checkouts"] and len(parts) in (4, 5):
            checkout = self._checkouts.get(parts[3])
            if checkout is None:
                return _not_found("TerminalCheckout", parts[3])
            if method == "GET" and len(parts) == 4:
                return 200, {"checkout": copy.deepcopy(checkout.data)}
            if method == "POST" and parts[4:] == ["cancel"]:
                return self._cancel(checkout)
        if method == "POST" and parts == ["v2", "refunds"]:
            return self._refund(payload)
        if method == "GET" and parts[:2] == ["v2", "refunds"] and len(parts) == 3:
            refund = self._refunds.get(parts[2])
            if refund is None:
                return _not_found("PaymentRefund", parts[2])
            if refund["status"] == "PENDING":
                refund["status"], refund["updated_at"] = "COMPLETED", _iso(self.clock())
            return 200, {"refund": dict(refund)}
        return _error(404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"No route for {method} {path}.")

    # -- endpoints --------------------------------------------------------------------------

    def _list_payments(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """ListPayments: begin_time <= created_at < end_time (RFC 3339), oldest first, 100 a page."""
        try:
            begin = _parse_iso(params["begin_time"])
            end = _parse_iso(params["end_time"])
            start = int(params.get("cursor") or 0)
        except (KeyError, ValueError):
            return _invalid("INVALID_TIME_RANGE", "begin_time", "begin_time and end_time are RFC 3339 times.")
        found = sorted((p for p in self._payments.values() if begin <= p.created_at < end),
                       key=lambda p: p.created_at)
        page = found[start:start + 100]
        document: dict[str, Any] = {"payments": [{
            "id": p.payment_id, "status": "COMPLETED", "created_at": _iso(p.created_at),
            "amount_money": {"amount": p.amount, "currency": "JPY"}, "reference_id": p.reference_id,
            "terminal_checkout_id": p.checkout_id,
            "source_type": "WALLET" if p.payment_type == "QR_CODE" else "CARD",
        } for p in page]}
        if start + 100 < len(found):
            document["cursor"] = str(start + 100)
        return 200, document

    def _create_checkout(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = payload.get("idempotency_key")
        request = payload.get("checkout")
        if not isinstance(key, str) or not 1 <= len(key) <= 64:
            return _invalid("INVALID_VALUE", "idempotency_key", "idempotency_key must be 1-64 characters.")
        if not isinstance(request, dict):
            return _invalid("MISSING_REQUIRED_PARAMETER", "checkout", "Missing required parameter.")
        if key in self._by_key:
            existing = self._checkouts[self._by_key[key]]
            if _request_view(existing.data) != _request_view(request):
                return _invalid("IDEMPOTENCY_KEY_REUSED", "idempotency_key",
                                "The idempotency key was already used for another request.")
            return 200, {"checkout": copy.deepcopy(existing.data)}
        amount = _jpy(request.get("amount_money"))
        device = request.get("device_options")
        device_id = device.get("device_id") if isinstance(device, dict) else None
        payment_type = request.get("payment_type")
        reference = request.get("reference_id")
        deadline = _deadline(request.get("deadline_duration", "PT5M"))
        if amount is None:
            return _invalid("INVALID_VALUE", "checkout.amount_money", "amount_money must be a positive JPY amount.")
        if not isinstance(device_id, str) or not device_id:
            return _invalid("MISSING_REQUIRED_PARAMETER", "checkout.device_options.device_id",
                            "Missing required parameter.")
        if payment_type not in PAYMENT_TYPES:
            return _invalid("INVALID_ENUM_VALUE", "checkout.payment_type", f"Invalid payment_type {payment_type}.")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 40):
            return _invalid("VALUE_TOO_LONG", "checkout.reference_id", "reference_id is at most 40 characters.")
        if deadline is None:
            return _invalid("INVALID_VALUE", "checkout.deadline_duration",
                            "deadline_duration must be between PT10S and PT5M.")
        now = self.clock()
        checkout_id = _new_id()
        data: dict[str, Any] = {
            "id": checkout_id,
            "amount_money": {"amount": amount, "currency": "JPY"},
            "reference_id": reference,
            "note": request.get("note"),
            "device_options": {"device_id": device_id, "skip_receipt_screen": False,
                               "tip_settings": {"allow_tipping": False}},
            "deadline_duration": request.get("deadline_duration", "PT5M"),
            "status": "PENDING",
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "app_id": "sandbox-sq0idb-kokin",
            "location_id": LOCATION_ID,
            "payment_type": payment_type,
            "payment_options": {"autocomplete": True},
        }
        self._checkouts[checkout_id] = _Checkout(data, key, now + deadline)
        self._by_key[key] = checkout_id
        return 200, {"checkout": copy.deepcopy(data)}

    def _cancel(self, checkout: _Checkout) -> tuple[int, dict[str, Any]]:
        status = checkout.data["status"]
        if status == "IN_PROGRESS" and checkout.data["payment_type"] in FELICA_TYPES:
            return _invalid("BAD_REQUEST", None,
                            "The checkout cannot be canceled: the buyer is presenting e-money on the device.")
        if status not in ("PENDING", "IN_PROGRESS"):
            return _invalid("BAD_REQUEST", None, f"A checkout that is {status} cannot be canceled.")
        self._change(checkout, status="CANCELED", cancel_reason="SELLER_CANCELED")
        return 200, {"checkout": copy.deepcopy(checkout.data)}

    def _refund(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key, payment_id, amount = payload.get("idempotency_key"), payload.get("payment_id"), \
            _jpy(payload.get("amount_money"))
        if not isinstance(key, str) or not 1 <= len(key) <= 45:
            return _invalid("INVALID_VALUE", "idempotency_key", "idempotency_key must be 1-45 characters.")
        if amount is None:
            return _invalid("INVALID_VALUE", "amount_money", "amount_money must be a positive JPY amount.")
        if key in self._refund_keys:
            refund = self._refunds[self._refund_keys[key]]
            if refund["payment_id"] != payment_id or refund["amount_money"]["amount"] != amount:
                return _invalid("IDEMPOTENCY_KEY_REUSED", "idempotency_key",
                                "Refund request idempotency key was previously used for a different request.")
            return 200, {"refund": dict(refund)}
        payment = self._payments.get(payment_id) if isinstance(payment_id, str) else None
        if payment is None:
            return _not_found("Payment", str(payment_id))
        if payment.payment_type == "FELICA_TRANSPORTATION_GROUP":
            return _invalid("PAYMENT_NOT_REFUNDABLE", "payment_id",
                            "Transportation IC payments cannot be refunded through the API.")
        refunded = sum(r["amount_money"]["amount"] for r in map(self._refunds.__getitem__, payment.refunds)
                       if r["status"] in ("PENDING", "COMPLETED"))
        if amount > payment.amount - refunded:
            return _invalid("REFUND_AMOUNT_INVALID", "amount_money",
                            "The requested refund amount exceeds the amount available to refund.")
        now = _iso(self.clock())
        refund = {"id": f"{payment_id}_{_new_id()}", "status": "PENDING" if self.refunds_pending else "COMPLETED",
                  "amount_money": {"amount": amount, "currency": "JPY"}, "payment_id": payment_id,
                  "reason": payload.get("reason"), "location_id": LOCATION_ID, "created_at": now, "updated_at": now}
        payment.refunds.append(refund["id"])
        self._refunds[refund["id"]] = refund
        self._refund_keys[key] = refund["id"]
        return 200, {"refund": dict(refund)}

    # -- state ------------------------------------------------------------------------------

    def _complete(self, checkout: _Checkout, used: str | None) -> None:
        allowed = checkout.data["payment_type"]
        used = used or allowed
        if used != allowed and not (allowed == "FELICA_ALL" and used in FELICA_TYPES - {"FELICA_ALL"}):
            raise ValueError(f"a {allowed} checkout cannot be paid with {used}")
        now = self.clock()
        payment = _Payment(_new_id(), checkout.data["id"], checkout.data.get("reference_id"),
                           checkout.data["amount_money"]["amount"], used, now)
        self._payments[payment.payment_id] = payment
        self._change(checkout, status="COMPLETED", payment_ids=[payment.payment_id])

    def _expire_due(self, now: datetime) -> list[str]:
        expired = []
        for checkout in self._checkouts.values():
            if checkout.data["status"] == "PENDING" and now >= checkout.deadline:
                self._change(checkout, status="CANCELED", cancel_reason="TIMED_OUT")
                expired.append(checkout.data["id"])
        return expired

    def _change(self, checkout: _Checkout, **fields: Any) -> None:
        checkout.data.update(fields)
        checkout.data["updated_at"] = _iso(self.clock())
        checkout.events.append((_event_id(), copy.deepcopy(checkout.data)))


def _request_view(checkout: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a repeated create must match for Square to answer the first checkout again."""
    device = checkout.get("device_options")
    return (_jpy(checkout.get("amount_money")), checkout.get("reference_id"), checkout.get("payment_type"),
            device.get("device_id") if isinstance(device, dict) else None)


def _deadline(value: Any) -> timedelta | None:
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value != "PT" else None
    if match is None:
        return None
    deadline = timedelta(minutes=int(match.group(1) or 0), seconds=int(match.group(2) or 0))
    return deadline if timedelta(seconds=10) <= deadline <= DEFAULT_DEADLINE else None


def _jpy(money: Any) -> int | None:
    if not isinstance(money, dict) or money.get("currency") != "JPY":
        return None
    value = money.get("amount")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _new_id() -> str:
    return secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def _event_id() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("an RFC 3339 time needs its offset")
    return parsed


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error(status: int, category: str, code: str, detail: str, field: str | None = None) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"category": category, "code": code, "detail": detail}
    if field is not None:
        error["field"] = field
    return status, {"errors": [error]}


def _invalid(code: str, field: str | None, detail: str) -> tuple[int, dict[str, Any]]:
    return _error(400, "INVALID_REQUEST_ERROR", code, detail, field)


def _not_found(what: str, ident: str) -> tuple[int, dict[str, Any]]:
    return _error(404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"{what} `{ident}` not found.")
