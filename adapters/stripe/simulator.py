"""An in-process Stripe for sandbox mode and tests: Checkout Sessions, refunds, signed events.

The SDK reaches it through a `requests` session mounted on it (adapters/transport.py), so
the adapter runs its production code path, the SDK's RequestsClient included. It answers with
JSON shaped like Stripe's documented objects (`checkout.session`, `payment_intent`, `charge`,
`refund`, `event`), honours idempotency keys and signs webhook deliveries exactly as Stripe
does. Tests and the demo play the resident with `simulate_payment`. Nothing here touches the
network. The hosted page URL is `https://checkout.stripe.test/...` (never fetched) unless the
gateway sets `hosted_page_url` to its own sandbox page, which calls `simulate_payment` too.

State lives in memory, per simulator, unless `state.attach(store, scope)` shares it between
processes (adapters/simulator_state.py).
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import requests
from requests.structures import CaseInsensitiveDict

from adapters.simulator_state import PLAIN, Codec, SimulatorState
from adapters.stripe import signature
from adapters.stripe.simulator_objects import (
    ApiError,
    balance_transaction,
    charge,
    checkout_session,
    event,
    payment_intent,
    refund,
    validate_checkout,
)
from adapters.stripe.simulator_wire import Wire
from adapters.transport import mount_simulator
from domain import clock as domain_clock

# Placeholders that only the simulator accepts; real keys come from the environment.
SANDBOX_SECRET_KEY = "sk_test_kokin_sandbox"  # noqa: S105
SANDBOX_WEBHOOK_SECRET = "whsec_kokin_sandbox"  # noqa: S105
HOSTED_PAGE_URL = "https://checkout.stripe.test/c/pay/{id}"
IDEMPOTENCY_WINDOW = timedelta(hours=24)  # Stripe keeps keys for at least 24 hours

PaymentOutcome = Literal["paid", "declined", "expire"]
Outage = Literal["connection", "server_error", "rate_limit"]
_ALPHABET = string.ascii_letters + string.digits
_OBJECT_PATH = re.compile(r"^/v1/(payment_intents|charges|refunds)/([A-Za-z0-9_]+)$")
_OBJECT_TYPES = {"payment_intents": "payment_intent", "charges": "charge", "refunds": "refund"}
_SESSION_PATH = re.compile(r"^/v1/checkout/sessions/([A-Za-z0-9_]+)(/expire)?$")


@dataclass(frozen=True)
class _Replay:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: str
    at: datetime


class StripeSimulator:
    """A fake Stripe account; thread-safe. Each operation is one `state.unit()`."""

    def __init__(self, webhook_secret: str = SANDBOX_WEBHOOK_SECRET, *, clock: Callable[[], datetime] | None = None):
        self.webhook_secret = webhook_secret
        self._clock = clock or domain_clock.now
        # objects: every object by id; session_of: payment intent id -> session id; intent_metadata:
        # session id -> payment_intent_data[metadata]; events: session id -> [(type, body)]
        self.state = SimulatorState({"objects": PLAIN, "session_of": PLAIN, "intent_metadata": PLAIN,
                                     "events": _EVENTS, "replays": _REPLAYS})
        self.hosted_page_url: Callable[[str], str] = lambda session_id: HOSTED_PAGE_URL.format(id=session_id)
        self._outages: list[Outage] = []
        self.fee_per_mille = 36  # Stripe's standard card fee in Japan, 3.6%, kept out of the payout
        self.refunds_pending = False  # True: new refunds are `pending` until next retrieved, as bank-side ones

    @property
    def _objects(self) -> MutableMapping[str, dict[str, Any]]:
        return self.state.bucket("objects")

    @property
    def _session_of(self) -> MutableMapping[str, str]:
        return self.state.bucket("session_of")

    @property
    def _intent_metadata(self) -> MutableMapping[str, dict[str, str]]:
        return self.state.bucket("intent_metadata")

    @property
    def _events(self) -> MutableMapping[str, list[tuple[str, bytes]]]:
        return self.state.bucket("events")

    @property
    def _replays(self) -> MutableMapping[str, _Replay]:
        return self.state.bucket("replays")

    def mount(self, session: requests.Session, base_url: str) -> None:
        """Route `base_url` on this session to the simulator and refuse every other URL."""
        mount_simulator(session, base_url, Wire(self), with_query=True)

    # -- what tests and the demo do -------------------------------------------------------

    def simulate_payment(
        self, session_id: str, outcome: PaymentOutcome = "paid", card_brand: str = "visa", last4: str = "4242",
        *, three_d_secure: Literal["authenticated", "failed"] | None = None,
    ) -> dict[str, Any]:
        """Play the resident on the hosted page; return the session as Stripe would now show it.

        "paid": the card is charged and the session completes. "declined": the card is
        declined and, as on Stripe Checkout, the session stays open for another try.
        "expire": the resident walks away and the session expires. `three_d_secure` records
        the result of a 3-D Secure challenge on the charge. Raises KeyError for an
        unknown session and ValueError when the page no longer takes payments.
        """
        with self.state.unit():
            session = self._session(session_id)
            if session["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {session['status']}: nothing to pay")
            if outcome == "expire":
                self._expire(session)
            elif outcome in ("paid", "declined"):
                self._charge(session, paid=outcome == "paid", brand=card_brand, last4=last4,
                             three_d_secure=three_d_secure)
            else:
                raise ValueError(f"unknown outcome {outcome!r}")
            return self._expanded(session, ["payment_intent.latest_charge"])

    def events_for(
        self, session_id: str, signed_at: datetime | int, *, secret: str | None = None
    ) -> list[tuple[dict[str, str], bytes]]:
        """Return every event about the session so far as signed deliveries (headers, raw body).

        Signed at `signed_at` with the webhook secret (or `secret`, to test a wrong one);
        a second call re-delivers the same events (same ids), as Stripe's retries do.
        """
        at = signed_at if isinstance(signed_at, int) else int(signed_at.timestamp())
        with self.state.unit():
            self._session(session_id)
            deliveries = list(self._events.get(session_id, []))
        return [(self.delivery_headers(body, at, secret=secret), body) for _, body in deliveries]

    def event_types(self, session_id: str) -> list[str]:
        """Return the types of the events about the session, oldest first."""
        with self.state.unit():
            self._session(session_id)
            return [kind for kind, _ in self._events.get(session_id, [])]

    def delivery_headers(self, body: bytes, signed_at: int, *, secret: str | None = None) -> dict[str, str]:
        """Return the headers Stripe sends with a webhook delivery of `body`."""
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            signature.HEADER: signature.signature_header(body, secret or self.webhook_secret, signed_at),
        }

    def checkout_session(self, session_id: str) -> dict[str, Any]:
        """Return the session's current JSON (its payment intent and charge expanded)."""
        with self.state.unit():
            return self._expanded(self._session(session_id), ["payment_intent.latest_charge"])

    def checkout_sessions(self) -> list[dict[str, Any]]:
        """Return every session (its payment intent and charge expanded), newest first: the sandbox console."""
        with self.state.unit():
            found = [o for o in self._objects.values() if o["object"] == "checkout.session"]
            for session in found:
                self._expire_if_due(session)
            return [self._expanded(s, ["payment_intent.latest_charge"])
                    for s in sorted(found, key=lambda s: (s["created"], s["id"]), reverse=True)]

    def simulate_outage(self, requests: int = 1, kind: Outage = "server_error") -> None:
        """Make the next `requests` API calls fail: no connection, HTTP 500, or HTTP 429."""
        with self.state.unit():
            self._outages.extend([kind] * requests)

    # -- the API the SDK calls ------------------------------------------------------------

    def handle(
        self, method: str, path: str, params: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, CaseInsensitiveDict[str], str]:
        """Answer one API request as Stripe would: (HTTP status, headers, JSON body)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        response_headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(
            {
                "Content-Type": "application/json",
                "Request-Id": _new_id("req_", 14),
                "Stripe-Version": lowered.get("stripe-version", ""),
            }
        )
        with self.state.unit():
            if self._outages:
                outage = self._outages.pop(0)
                if outage == "connection":
                    raise requests.ConnectionError("simulated network failure")
                status = 500 if outage == "server_error" else 429
                return status, response_headers, _error_body(_OUTAGE_ERRORS[outage])
            try:
                _authenticate(lowered.get("authorization", ""))
                key = lowered.get("idempotency-key") if method == "POST" else None
                replay = self._replay(key, method, path, params)
                if replay is not None:
                    response_headers["Idempotent-Replayed"] = "true"
                    return replay.status, response_headers, replay.body
                status, body = 200, json.dumps(self._route(method, path, params), indent=2, ensure_ascii=False)
            except ApiError as err:
                return err.status, response_headers, _error_body(err)
            if key:
                self._replays[key] = _Replay(method, path, params, status, body, self._clock())
            return status, response_headers, body

    def _replay(self, key: str | None, method: str, path: str, params: dict[str, Any]) -> _Replay | None:
        now = self._clock()
        if not self.state.shared:  # a shared store keeps a sandbox's few keys; each is checked when used
            for stale in [k for k, r in self._replays.items() if now - r.at > IDEMPOTENCY_WINDOW]:
                del self._replays[stale]
        replay = self._replays.get(key) if key else None
        if replay is not None and now - replay.at > IDEMPOTENCY_WINDOW:
            del self._replays[str(key)]
            replay = None
        if replay is not None and (replay.method, replay.path, replay.params) != (method, path, params):
            raise ApiError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first "
                f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
            )
        return replay

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        expand = params.pop("expand", [])
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        if method == "POST" and path == "/v1/refunds":
            return self._create_refund(params)
        if method == "GET" and path == "/v1/balance_transactions":
            return self._balance_transactions(params, expand)
        if match := _SESSION_PATH.match(path):
            session = self._session_or_404(match.group(1))
            if method == "POST" and match.group(2):
                return self._expire_requested(session)
            if method == "GET" and not match.group(2):
                return self._expanded(session, expand)
        if (match := _OBJECT_PATH.match(path)) and method == "GET":
            kind = _OBJECT_TYPES[match.group(1)]
            found = self._objects.get(match.group(2))
            if found is None or found["object"] != kind:
                raise ApiError.missing(kind, match.group(2))
            if kind == "refund" and found["status"] == "pending":
                found["status"] = "succeeded"  # the card network has answered by the next look
            return self._expanded(found, expand)
        raise ApiError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _balance_transactions(self, params: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        """List balance transactions, oldest first, filtered by created[gte|lt] and type; 100 a page."""
        created = params.get("created") or {}
        low, high = int(created.get("gte", 0)), int(created.get("lt", 2**62))
        found = sorted((o for o in self._objects.values() if o["object"] == "balance_transaction"
                        and low <= o["created"] < high and params.get("type") in (None, o["type"])),
                       key=lambda o: (o["created"], o["id"]))
        after = params.get("starting_after")
        if after:
            found = found[[o["id"] for o in found].index(after) + 1:] if after in {o["id"] for o in found} else []
        limit = int(params.get("limit", 10))
        inner = [path.removeprefix("data.") for path in expand if path.startswith("data.")]
        return {"object": "list", "url": "/v1/balance_transactions", "has_more": len(found) > limit,
                "data": [self._expanded(o, inner) for o in found[:limit]]}

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self._clock()
        validate_checkout(params, now)
        session_id = _new_id("cs_test_", 58)
        session = checkout_session(session_id, params, now, url=self.hosted_page_url(session_id))
        self._objects[session_id] = session
        self._events[session_id] = []
        self._intent_metadata[session_id] = dict((params.get("payment_intent_data") or {}).get("metadata") or {})
        return dict(session)

    def _expire_requested(self, session: dict[str, Any]) -> dict[str, Any]:
        self._expire_if_due(session)
        if session["status"] != "open":
            raise ApiError(
                400,
                "invalid_request_error",
                'Only Checkout Sessions with a status in ["open"] can be expired. '
                f"This session is {session['status']}.",
                param="session",
            )
        self._expire(session)
        return dict(session)

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = self._objects.get(str(params.get("payment_intent", "")))
        if intent is None or intent["object"] != "payment_intent":
            raise ApiError.missing("payment_intent", str(params.get("payment_intent", "")), param="payment_intent")
        paid = self._objects.get(intent["latest_charge"] or "")
        if intent["status"] != "succeeded" or paid is None:
            raise ApiError(
                400,
                "invalid_request_error",
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
            )
        remaining = paid["amount"] - paid["amount_refunded"]
        if remaining == 0:
            raise ApiError(
                400,
                "invalid_request_error",
                f"Charge {paid['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = _positive_int(params.get("amount", str(remaining)), "amount")
        if amount > remaining:
            raise ApiError(
                400,
                "invalid_request_error",
                f"Refund amount (¥{amount:,}) is greater than unrefunded amount on charge (¥{remaining:,})",
                param="amount",
            )
        created = refund(_new_id("re_", 24), paid, amount, params.get("metadata") or {}, self._clock())
        if self.refunds_pending:
            created["status"] = "pending"
        self._objects[created["id"]] = created
        paid["amount_refunded"] += amount
        paid["refunded"] = paid["amount_refunded"] == paid["amount"]
        self._emit(self._session_of[intent["id"]], "charge.refunded", paid)
        return dict(created)

    # -- the resident's side --------------------------------------------------------------

    def _charge(self, session: dict[str, Any], *, paid: bool, brand: str, last4: str,
                three_d_secure: str | None = None) -> None:
        now = self._clock()
        intent = self._objects.get(session["payment_intent"] or "")
        if intent is None:  # since API 2022-08-01 Checkout creates the intent at the first attempt
            intent = payment_intent(_new_id("pi_", 24), session, self._intent_metadata[session["id"]], now)
            self._objects[intent["id"]] = intent
            self._session_of[intent["id"]] = session["id"]
            session["payment_intent"] = intent["id"]
        attempt = charge(_new_id("ch_", 24), intent, now, paid=paid, brand=brand, last4=last4)
        if three_d_secure:
            attempt["payment_method_details"]["card"]["three_d_secure"] = {
                "authentication_flow": "challenge", "result": three_d_secure, "version": "2.2.0"}
        self._objects[attempt["id"]] = attempt
        if paid:
            txn = balance_transaction(attempt, now, fee_rate_per_mille=self.fee_per_mille)
            self._objects[txn["id"]] = txn
        intent["latest_charge"] = attempt["id"]
        if paid:
            intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
            session.update(status="complete", payment_status="paid")
            self._emit(session["id"], "charge.succeeded", attempt)
            self._emit(session["id"], "payment_intent.succeeded", intent)
            self._emit(session["id"], "checkout.session.completed", session)
            return
        intent.update(status="requires_payment_method", last_payment_error=_decline(attempt))
        self._emit(session["id"], "charge.failed", attempt)
        self._emit(session["id"], "payment_intent.payment_failed", intent)

    def _expire(self, session: dict[str, Any]) -> None:
        session.update(status="expired", url=None)
        self._emit(session["id"], "checkout.session.expired", session)

    def _expire_if_due(self, session: dict[str, Any]) -> None:
        if session["status"] == "open" and self._clock().timestamp() >= session["expires_at"]:
            self._expire(session)

    # -- internals ------------------------------------------------------------------------

    def _emit(self, session_id: str, kind: str, obj: dict[str, Any]) -> None:
        body = json.dumps(event(_new_id("evt_", 24), kind, obj, self._clock()), indent=2, ensure_ascii=False)
        self._events[session_id].append((kind, body.encode("utf-8")))

    def _session(self, session_id: str) -> dict[str, Any]:
        found = self._objects.get(session_id)
        if found is None or found["object"] != "checkout.session":
            raise KeyError(f"no such checkout session: {session_id!r}")
        self._expire_if_due(found)
        return found

    def _session_or_404(self, session_id: str) -> dict[str, Any]:
        try:
            return self._session(session_id)
        except KeyError:
            raise ApiError.missing("checkout.session", session_id, param="session") from None

    def _expanded(self, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(obj))
        for path in paths:
            _expand(out, path.split("."), self._objects)
        return out


def _expand(node: dict[str, Any], path: list[str], objects: Mapping[str, dict[str, Any]]) -> None:
    field, rest = path[0], path[1:]
    value = node.get(field)
    if isinstance(value, str) and value in objects:
        value = node[field] = json.loads(json.dumps(objects[value]))
    if rest and isinstance(value, dict):
        _expand(value, rest, objects)


def _authenticate(authorization: str) -> None:
    key = authorization.removeprefix("Bearer ").strip()
    if not key.startswith(("sk_test_", "rk_test_")):
        raise ApiError(401, "invalid_request_error", "Invalid API Key provided: the sandbox takes test-mode keys only.")


def _positive_int(value: Any, param: str) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise ApiError(400, "invalid_request_error", "Invalid positive integer", param=param)
    return int(text)


def _decline(attempt: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
        "charge": attempt["id"],
    }


def _error_body(err: ApiError) -> str:
    return json.dumps({"error": err.payload()}, indent=2)


def _new_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


_EVENTS = Codec(encode=lambda events: [[kind, body.decode("utf-8")] for kind, body in events],
                decode=lambda events: [(kind, body.encode("utf-8")) for kind, body in events])
_REPLAYS = Codec(encode=lambda r: {**r.__dict__, "at": r.at.isoformat()},
                 decode=lambda r: _Replay(**{**r, "at": datetime.fromisoformat(r["at"])}))

_OUTAGE_ERRORS = {
    "server_error": ApiError(500, "api_error", "Simulated server error."),
    "rate_limit": ApiError(429, "invalid_request_error", "Too many requests. Try again later.", code="rate_limit"),
}
