"""Square Terminal adapter against Square's documented endpoints (mocked with `responses`) and its simulator.

Payload shapes follow the Terminal API reference (CreateTerminalCheckout, GetTerminalCheckout,
CancelTerminalCheckout; the TerminalCheckout object), the Refunds API (RefundPayment,
GetPaymentRefund; PaymentRefund) and a `terminal.checkout.updated` notification as Square
delivers it. The webhook signature is recomputed here from the documented algorithm
(Base64(HMAC-SHA256(signature key, notification URL + raw body))), independently of the adapter.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points
from typing import Any

import pytest
import requests
import responses

from adapters.base import (
    Capability,
    CheckoutRequest,
    Outcome,
    PaymentAdapter,
    PermanentError,
    RefundRequest,
    RetryableError,
    SignatureError,
)
from adapters.square import SquareAdapter, SquareClient, SquareSimulator, make_adapter
from adapters.square.client import PRODUCTION_BASE_URL, SANDBOX_BASE_URL

BASE = PRODUCTION_BASE_URL
TOKEN = "EAAAl0example0access0token"
KEY = "qfjakbt2uWB8DKAMECF-EA"
URL = "https://pay.example.lg.jp/webhooks/square"
DEVICE = "9fa747a2-25ff-48ee-b078-04381f7c828f"
CHECKOUT_ID = "08YceKh7B3ZqO"
PAYMENT_ID = "EnZdNAlWCmfh6Mt5FMNST1o7taB"
REFUND_ID = "EnZdNAlWCmfh6Mt5FMNST1o7taB_43Q4iGp7sNeATiWrUruA1EYeMRUXaddXXlDkJ1Ry"
REF = "KK-20260401-000123"
CREATED = "2026-04-01T00:30:00.123Z"
NOW = datetime(2026, 4, 1, 0, 31, tzinfo=UTC)


def checkout_request(**overrides: Any) -> CheckoutRequest:
    fields: dict[str, Any] = {
        "reference": REF, "amount": 300, "description": "住民票の写し 1通", "return_url": "https://pay.example.lg.jp/r",
        "cancel_url": "https://pay.example.lg.jp/c", "idempotency_key": "sale-000123-1", "device_id": DEVICE,
        "payment_type": "FELICA_ID",
    }
    fields.update(overrides)
    return CheckoutRequest(**fields)


def terminal_checkout(status: str = "PENDING", *, cancel_reason: str | None = None, payment_type: str = "FELICA_ID",
                      amount: int = 300, payment_ids: list[str] | None = None,
                      updated_at: str = "2026-04-01T00:30:41.456Z") -> dict[str, Any]:
    """A TerminalCheckout as the Terminal API reference shows it."""
    checkout: dict[str, Any] = {
        "id": CHECKOUT_ID,
        "amount_money": {"amount": amount, "currency": "JPY"},
        "reference_id": REF,
        "note": "住民票の写し 1通",
        "device_options": {"device_id": DEVICE, "skip_receipt_screen": False,
                           "tip_settings": {"allow_tipping": False}},
        "deadline_duration": "PT5M",
        "status": status,
        "created_at": CREATED,
        "updated_at": updated_at if status != "PENDING" else CREATED,
        "app_id": "sq0idp-TbgQ0hBXaBSx5UgnA3NUhw",
        "location_id": "LMDP8WTRR4P3C",
        "payment_type": payment_type,
        "payment_options": {"autocomplete": True},
    }
    if cancel_reason:
        checkout["cancel_reason"] = cancel_reason
    if payment_ids:
        checkout["payment_ids"] = payment_ids
    return checkout


def payment_refund(status: str = "PENDING", amount: int = 300) -> dict[str, Any]:
    return {"refund": {"id": REFUND_ID, "status": status, "amount_money": {"amount": amount, "currency": "JPY"},
                       "payment_id": PAYMENT_ID, "order_id": "1JLEUZeEooAIX8HMqm9kvWd69aQZY",
                       "created_at": "2026-04-02T01:00:00.000Z", "updated_at": "2026-04-02T01:00:00.000Z",
                       "location_id": "LMDP8WTRR4P3C", "reason": "過誤納"}}


def square_error(code: str, category: str = "INVALID_REQUEST_ERROR", detail: str = "") -> dict[str, Any]:
    return {"errors": [{"category": category, "code": code, "detail": detail}]}


def documented_signature(body: bytes, *, key: str = KEY, url: str = URL) -> str:
    return base64.b64encode(hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()).decode()


def notification(checkout: dict[str, Any], created_at: str = "2026-04-01T00:30:42.000Z",
                 event_type: str = "terminal.checkout.updated") -> bytes:
    """A notification body as Square sends it (compact JSON; only its raw bytes are signed)."""
    return json.dumps({
        "merchant_id": "ML8M1AQ1GQG2K", "type": event_type, "event_id": "e1f9d2c4-5b2f-4c47-9d7c-0b8f3b0a1a11",
        "created_at": created_at, "data": {"type": "checkout", "id": checkout["id"], "object": {"checkout": checkout}},
    }, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
def rsps() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def adapter() -> SquareAdapter:
    return make_adapter({"sandbox": False, "access_token": TOKEN, "signature_key": KEY, "notification_url": URL})


def sent_json(call: Any) -> dict[str, Any]:
    body = call.request.body
    return json.loads(body.decode() if isinstance(body, bytes) else body)


# -- wiring ------------------------------------------------------------------------------------


def test_the_adapter_declares_a_terminal_with_signed_webhooks_cancel_and_refunds(adapter: SquareAdapter) -> None:
    assert isinstance(adapter, PaymentAdapter)
    assert adapter.name == "square"
    assert adapter.capabilities == (Capability.TERMINAL | Capability.POLL | Capability.WEBHOOK
                                    | Capability.SIGNED_WEBHOOK | Capability.CANCEL | Capability.REFUND
                                    | Capability.PARTIAL_REFUND | Capability.SETTLEMENT_REPORT)


def test_the_adapter_is_registered_as_the_square_entry_point() -> None:
    (entry,) = [ep for ep in entry_points(group="kokin.adapters") if ep.name == "square"]
    assert entry.load() is make_adapter


def test_production_needs_every_secret_and_an_explicit_sandbox_flag() -> None:
    with pytest.raises(ValueError, match="sandbox"):
        make_adapter({"access_token": TOKEN, "signature_key": KEY, "notification_url": URL})
    with pytest.raises(ValueError, match="signature_key, notification_url"):
        make_adapter({"sandbox": False, "access_token": TOKEN})
    with pytest.raises(ValueError, match="square_version"):
        make_adapter({"sandbox": True, "square_version": "latest"})
    with pytest.raises(ValueError, match="payment_type"):
        make_adapter({"sandbox": True, "payment_type": "PAYPAY"})


def test_sandbox_mode_talks_to_the_simulator_only() -> None:
    sandbox = make_adapter({"sandbox": True})
    assert sandbox.simulator is not None and sandbox.client.base_url == SANDBOX_BASE_URL
    with pytest.raises(requests.ConnectionError):
        sandbox.client.session.get("https://connect.squareup.com/v2/locations", timeout=1)


# -- create ------------------------------------------------------------------------------------


def test_a_checkout_is_sent_to_the_device_with_bearer_token_and_square_version(
    rsps: Any, adapter: SquareAdapter
) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts", json={"checkout": terminal_checkout()})

    checkout = adapter.create_checkout(checkout_request())

    call = rsps.calls[0]
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.headers["Square-Version"] == "2025-10-16"
    assert call.request.headers["Content-Type"] == "application/json"
    assert sent_json(call) == {
        "idempotency_key": "sale-000123-1",
        "checkout": {
            "amount_money": {"amount": 300, "currency": "JPY"},
            "reference_id": REF,
            "note": "住民票の写し 1通",
            "device_options": {"device_id": DEVICE},
            "payment_type": "FELICA_ID",
            "deadline_duration": "PT5M",
        },
    }
    assert checkout.provider_ref == CHECKOUT_ID
    assert checkout.expires_at == datetime(2026, 4, 1, 0, 35, 0, 123_000, tzinfo=UTC)
    assert checkout.redirect_url is None and checkout.qr_payload is None


def test_the_square_version_and_base_url_are_configurable(rsps: Any) -> None:
    rsps.add(responses.GET, f"https://squareup.example/v2/terminals/checkouts/{CHECKOUT_ID}",
             json={"checkout": terminal_checkout()})
    adapter = make_adapter({"sandbox": False, "access_token": TOKEN, "signature_key": KEY, "notification_url": URL,
                            "api_base": "https://squareup.example", "square_version": "2026-01-22"})

    adapter.fetch_status(CHECKOUT_ID)

    assert rsps.calls[0].request.headers["Square-Version"] == "2026-01-22"
    assert rsps.calls[0].request.body is None


@pytest.mark.parametrize("payment_type", ["FELICA_TRANSPORTATION_GROUP", "FELICA_ID", "FELICA_QUICPAY", "FELICA_ALL",
                                          "QR_CODE", "CARD_PRESENT"])
def test_each_counter_payment_type_is_sent_as_is(rsps: Any, adapter: SquareAdapter, payment_type: str) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts",
             json={"checkout": terminal_checkout(payment_type=payment_type)})

    adapter.create_checkout(checkout_request(payment_type=payment_type))

    assert sent_json(rsps.calls[0])["checkout"]["payment_type"] == payment_type


@pytest.mark.parametrize("overrides", [
    {"device_id": None}, {"payment_type": None}, {"payment_type": "PAYPAY"}, {"payment_type": "CASH"},
    {"amount": 0}, {"reference": "K" * 41},
])
def test_a_checkout_square_cannot_take_is_refused_before_any_request(
    rsps: Any, adapter: SquareAdapter, overrides: dict[str, Any]
) -> None:
    with pytest.raises(PermanentError):
        adapter.create_checkout(checkout_request(**overrides))
    assert len(rsps.calls) == 0


def test_configured_device_and_payment_type_serve_requests_that_name_none(rsps: Any) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts", json={"checkout": terminal_checkout()})
    adapter = make_adapter({"sandbox": False, "access_token": TOKEN, "signature_key": KEY, "notification_url": URL,
                            "device_id": DEVICE, "payment_type": "FELICA_ALL"})

    adapter.create_checkout(checkout_request(device_id=None, payment_type=None))

    sent = sent_json(rsps.calls[0])["checkout"]
    assert (sent["device_options"]["device_id"], sent["payment_type"]) == (DEVICE, "FELICA_ALL")


def test_a_long_idempotency_key_becomes_a_stable_digest_square_accepts(rsps: Any, adapter: SquareAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts", json={"checkout": terminal_checkout()})
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts", json={"checkout": terminal_checkout()})

    adapter.create_checkout(checkout_request(idempotency_key="k" * 100))
    adapter.create_checkout(checkout_request(idempotency_key="k" * 100))

    first, second = (sent_json(call)["idempotency_key"] for call in rsps.calls)
    assert first == second and len(first) <= 64


def test_a_checkout_answered_for_another_payment_is_refused(rsps: Any, adapter: SquareAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts", json={"checkout": terminal_checkout(amount=999)})

    with pytest.raises(PermanentError):
        adapter.create_checkout(checkout_request())


# -- status ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "reason", "outcome", "raw"), [
    ("PENDING", None, Outcome.PENDING, "PENDING"),
    ("IN_PROGRESS", None, Outcome.PENDING, "IN_PROGRESS"),
    ("CANCEL_REQUESTED", None, Outcome.PENDING, "CANCEL_REQUESTED"),
    ("CANCELED", "TIMED_OUT", Outcome.EXPIRED, "CANCELED/TIMED_OUT"),
    ("CANCELED", "BUYER_CANCELED", Outcome.CANCELLED, "CANCELED/BUYER_CANCELED"),
    ("CANCELED", "SELLER_CANCELED", Outcome.CANCELLED, "CANCELED/SELLER_CANCELED"),
    ("SOMETHING_NEW", None, Outcome.UNKNOWN, "SOMETHING_NEW"),
])
def test_each_checkout_status_maps_to_one_outcome(
    rsps: Any, adapter: SquareAdapter, status: str, reason: str | None, outcome: Outcome, raw: str
) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}",
             json={"checkout": terminal_checkout(status, cancel_reason=reason)})

    result = adapter.fetch_status(CHECKOUT_ID)

    assert (result.provider_ref, result.outcome, result.raw_status) == (CHECKOUT_ID, outcome, raw)
    assert result.amount is None and result.paid_at is None


def test_a_completed_checkout_reports_amount_time_and_payment_type(rsps: Any, adapter: SquareAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}",
             json={"checkout": terminal_checkout("COMPLETED", payment_type="FELICA_QUICPAY", payment_ids=[PAYMENT_ID])})

    status = adapter.fetch_status(CHECKOUT_ID)

    assert status.outcome is Outcome.SUCCEEDED and status.amount == 300
    assert status.paid_at == datetime(2026, 4, 1, 0, 30, 41, 456_000, tzinfo=UTC)
    assert (status.card_brand, status.card_last4, status.raw_status) == ("FELICA_QUICPAY", None, "COMPLETED")


@pytest.mark.parametrize("reply", [
    {"status": 500, "json": square_error("INTERNAL_SERVER_ERROR", "API_ERROR")},
    {"status": 503, "json": square_error("SERVICE_UNAVAILABLE", "API_ERROR")},
    {"status": 429, "json": square_error("RATE_LIMITED", "RATE_LIMIT_ERROR")},
    {"body": requests.ConnectionError("reset")},
    {"body": requests.ReadTimeout("slow")},
    {"status": 200, "body": "<html>gateway</html>"},
])
def test_server_errors_rate_limits_and_timeouts_are_retryable(
    rsps: Any, adapter: SquareAdapter, reply: dict[str, Any]
) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}", **reply)

    with pytest.raises(RetryableError):
        adapter.fetch_status(CHECKOUT_ID)


@pytest.mark.parametrize(("status", "code", "category"), [
    (404, "NOT_FOUND", "INVALID_REQUEST_ERROR"),
    (401, "UNAUTHORIZED", "AUTHENTICATION_ERROR"),
    (403, "INSUFFICIENT_SCOPES", "AUTHENTICATION_ERROR"),
    (400, "BAD_REQUEST", "INVALID_REQUEST_ERROR"),
])
def test_client_errors_are_permanent_and_carry_squares_code(
    rsps: Any, adapter: SquareAdapter, status: int, code: str, category: str
) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}", status=status,
             json=square_error(code, category, "detail"))

    with pytest.raises(PermanentError) as raised:
        adapter.fetch_status(CHECKOUT_ID)

    assert getattr(raised.value, "code", None) == code and not raised.value.retryable


def test_an_id_that_would_leave_the_path_is_refused_before_any_request(rsps: Any, adapter: SquareAdapter) -> None:
    with pytest.raises(PermanentError):
        adapter.fetch_status("../payments")
    assert len(rsps.calls) == 0


# -- cancel ------------------------------------------------------------------------------------


def test_an_open_checkout_is_cancelled_by_post(rsps: Any, adapter: SquareAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}/cancel",
             json={"checkout": terminal_checkout("CANCELED", cancel_reason="SELLER_CANCELED")})

    adapter.cancel(CHECKOUT_ID)

    assert rsps.calls[0].request.body is None


def test_cancelling_while_the_buyer_holds_e_money_to_the_device_is_refused(rsps: Any, adapter: SquareAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}/cancel", status=400,
             json=square_error("BAD_REQUEST", detail="The checkout cannot be canceled."))
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}",
             json={"checkout": terminal_checkout("IN_PROGRESS")})

    with pytest.raises(PermanentError, match="IN_PROGRESS"):
        adapter.cancel(CHECKOUT_ID)


def test_cancelling_a_checkout_that_already_ended_unpaid_is_a_no_op(rsps: Any, adapter: SquareAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}/cancel", status=400,
             json=square_error("BAD_REQUEST"))
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}",
             json={"checkout": terminal_checkout("CANCELED", cancel_reason="TIMED_OUT")})

    adapter.cancel(CHECKOUT_ID)


def test_cancelling_a_paid_checkout_says_to_refund(rsps: Any, adapter: SquareAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}/cancel", status=400,
             json=square_error("BAD_REQUEST"))
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}",
             json={"checkout": terminal_checkout("COMPLETED", payment_ids=[PAYMENT_ID])})

    with pytest.raises(PermanentError, match="refund"):
        adapter.cancel(CHECKOUT_ID)


# -- notifications -----------------------------------------------------------------------------


def signed(body: bytes, **kwargs: Any) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Square-HmacSha256-Signature": documented_signature(body, **kwargs)}


def test_a_notification_signed_over_url_and_body_is_verified_and_read(adapter: SquareAdapter) -> None:
    body = notification(terminal_checkout("COMPLETED", payment_ids=[PAYMENT_ID]))

    event = adapter.verify_webhook(signed(body), body, NOW)

    assert event.event_id == "e1f9d2c4-5b2f-4c47-9d7c-0b8f3b0a1a11"
    assert (event.type, event.reference, event.provider_ref) == ("terminal.checkout.updated", REF, CHECKOUT_ID)
    assert event.outcome is Outcome.SUCCEEDED
    assert event.occurred_at == datetime(2026, 4, 1, 0, 30, 41, 456_000, tzinfo=UTC)


@pytest.mark.parametrize(("status", "reason", "outcome"), [
    ("IN_PROGRESS", None, Outcome.PENDING),
    ("CANCELED", "TIMED_OUT", Outcome.EXPIRED),
    ("CANCELED", "BUYER_CANCELED", Outcome.CANCELLED),
])
def test_a_notification_outcome_maps_as_polling_does(
    adapter: SquareAdapter, status: str, reason: str | None, outcome: Outcome
) -> None:
    body = notification(terminal_checkout(status, cancel_reason=reason))

    assert adapter.verify_webhook(signed(body), body, NOW).outcome is outcome


def test_another_event_type_is_verified_but_carries_no_outcome(adapter: SquareAdapter) -> None:
    body = notification(terminal_checkout(), event_type="terminal.checkout.created")

    event = adapter.verify_webhook(signed(body), body, NOW)

    assert (event.type, event.outcome, event.provider_ref) == ("terminal.checkout.created", None, CHECKOUT_ID)


@pytest.mark.parametrize("forgery", ["tampered body", "wrong key", "other url", "no header", "garbage header"])
def test_a_forged_notification_is_refused_before_it_is_read(adapter: SquareAdapter, forgery: str) -> None:
    body = notification(terminal_checkout("COMPLETED", payment_ids=[PAYMENT_ID]))
    headers = signed(body)
    if forgery == "tampered body":
        body = body.replace(b'"amount":300', b'"amount":3000')
    elif forgery == "wrong key":
        headers = signed(body, key="another-subscriptions-key")
    elif forgery == "other url":
        headers = signed(body, url="https://pay.example.lg.jp/webhooks/square/")
    elif forgery == "no header":
        headers = {"Content-Type": "application/json"}
    else:
        headers["X-Square-HmacSha256-Signature"] = "not base64 at all"

    with pytest.raises(SignatureError):
        adapter.verify_webhook(headers, body, NOW)


def test_a_signed_body_that_is_not_json_is_refused_after_the_signature(adapter: SquareAdapter) -> None:
    body = b"not json"

    with pytest.raises(PermanentError):
        adapter.verify_webhook(signed(body), body, NOW)


@pytest.mark.parametrize(("offset", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)])
def test_the_signed_created_at_must_be_within_300_seconds_of_now(
    adapter: SquareAdapter, offset: int, accepted: bool
) -> None:
    body = notification(terminal_checkout(), created_at="2026-04-01T00:30:00Z")
    now = datetime(2026, 4, 1, 0, 30, tzinfo=UTC) + timedelta(seconds=offset)

    if accepted:
        adapter.verify_webhook(signed(body), body, now)
    else:
        with pytest.raises(SignatureError):
            adapter.verify_webhook(signed(body), body, now)


def test_a_signed_notification_without_created_at_is_refused(adapter: SquareAdapter) -> None:
    body = json.dumps({"type": "terminal.checkout.updated", "event_id": "x"}).encode()

    with pytest.raises(SignatureError):
        adapter.verify_webhook(signed(body), body, NOW)


# -- refunds -----------------------------------------------------------------------------------


def completed_checkout(rsps: Any, payment_type: str = "FELICA_ID") -> None:
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}",
             json={"checkout": terminal_checkout("COMPLETED", payment_type=payment_type, payment_ids=[PAYMENT_ID])})


def test_a_refund_names_the_checkouts_payment_and_starts_pending(rsps: Any, adapter: SquareAdapter) -> None:
    completed_checkout(rsps)
    rsps.add(responses.POST, f"{BASE}/v2/refunds", json=payment_refund("PENDING", 200))

    result = adapter.refund(RefundRequest(CHECKOUT_ID, 200, "過誤納", "refund-000123-1"))

    assert sent_json(rsps.calls[1]) == {"idempotency_key": "refund-000123-1", "payment_id": PAYMENT_ID,
                                        "amount_money": {"amount": 200, "currency": "JPY"}, "reason": "過誤納"}
    assert rsps.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert (result.refund_ref, result.outcome, result.amount) == (REFUND_ID, Outcome.PENDING, 200)


def test_a_refund_key_longer_than_square_takes_becomes_a_stable_45_character_digest(
    rsps: Any, adapter: SquareAdapter
) -> None:
    completed_checkout(rsps)
    rsps.add(responses.POST, f"{BASE}/v2/refunds", json=payment_refund())

    adapter.refund(RefundRequest(CHECKOUT_ID, 300, "過誤納", "refund-" + "x" * 60))

    assert len(sent_json(rsps.calls[1])["idempotency_key"]) == 45


@pytest.mark.parametrize(("status", "outcome"), [
    ("PENDING", Outcome.PENDING), ("COMPLETED", Outcome.SUCCEEDED), ("REJECTED", Outcome.FAILED),
    ("FAILED", Outcome.FAILED),
])
def test_a_refund_asked_after_by_its_ref_is_read_not_repeated(
    rsps: Any, adapter: SquareAdapter, status: str, outcome: Outcome
) -> None:
    completed_checkout(rsps)
    rsps.add(responses.GET, f"{BASE}/v2/refunds/{REFUND_ID}", json=payment_refund(status, 200))

    result = adapter.refund(RefundRequest(CHECKOUT_ID, 200, "過誤納", "refund-000123-1", refund_ref=REFUND_ID))

    assert (result.refund_ref, result.outcome, result.amount) == (REFUND_ID, outcome, 200)
    assert [call.request.method for call in rsps.calls] == ["GET", "GET"]


def test_a_transportation_ic_refund_refused_by_square_is_a_permanent_error(rsps: Any, adapter: SquareAdapter) -> None:
    completed_checkout(rsps, "FELICA_TRANSPORTATION_GROUP")
    rsps.add(responses.POST, f"{BASE}/v2/refunds", status=400,
             json=square_error("PAYMENT_NOT_REFUNDABLE", detail="Transportation IC payments cannot be refunded."))

    with pytest.raises(PermanentError) as raised:
        adapter.refund(RefundRequest(CHECKOUT_ID, 300, "過誤納", "refund-ic"))

    assert getattr(raised.value, "code", None) == "PAYMENT_NOT_REFUNDABLE"


def test_refunding_more_than_remains_is_a_permanent_error(rsps: Any, adapter: SquareAdapter) -> None:
    completed_checkout(rsps)
    rsps.add(responses.POST, f"{BASE}/v2/refunds", status=400, json=square_error("REFUND_AMOUNT_INVALID"))

    with pytest.raises(PermanentError):
        adapter.refund(RefundRequest(CHECKOUT_ID, 301, "過誤納", "refund-too-much"))


@pytest.mark.parametrize("checkout", [terminal_checkout("IN_PROGRESS"),
                                      terminal_checkout("CANCELED", cancel_reason="BUYER_CANCELED")])
def test_refunding_an_unpaid_checkout_sends_no_refund(
    rsps: Any, adapter: SquareAdapter, checkout: dict[str, Any]
) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/terminals/checkouts/{CHECKOUT_ID}", json={"checkout": checkout})

    with pytest.raises(PermanentError):
        adapter.refund(RefundRequest(CHECKOUT_ID, 300, "過誤納", "refund-unpaid"))
    assert len(rsps.calls) == 1


# -- the simulator: device flows through the real client ---------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 4, 1, 0, 30, tzinfo=UTC))  # 09:30 in Tokyo


@pytest.fixture
def sandbox(clock: Clock) -> SquareAdapter:
    adapter = make_adapter({"sandbox": True, "signature_key": KEY, "notification_url": URL})
    assert adapter.simulator is not None
    adapter.simulator.clock = clock
    return adapter


def sim(adapter: SquareAdapter) -> SquareSimulator:
    assert adapter.simulator is not None
    return adapter.simulator


def test_the_simulator_sees_the_bearer_token_and_square_version(sandbox: SquareAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())

    assert sim(sandbox).calls[-1] == ("POST", "/v2/terminals/checkouts", "2025-10-16")
    assert sim(sandbox).checkout(checkout.provider_ref)["device_options"]["device_id"] == DEVICE
    wrong = SquareClient(base_url=SANDBOX_BASE_URL, access_token="someone-else", session=sandbox.client.session)
    with pytest.raises(PermanentError) as raised:
        wrong.request("GET", f"/v2/terminals/checkouts/{checkout.provider_ref}")
    assert getattr(raised.value, "status", None) == 401


def test_a_buyer_who_starts_and_pays_completes_the_checkout_with_a_payment(sandbox: SquareAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request(payment_type="FELICA_ID"))
    assert checkout.expires_at == datetime(2026, 4, 1, 0, 35, tzinfo=UTC)

    assert sim(sandbox).simulate_device(checkout.provider_ref, "start") == "IN_PROGRESS"
    assert sandbox.fetch_status(checkout.provider_ref).outcome is Outcome.PENDING
    assert sim(sandbox).simulate_device(checkout.provider_ref, "complete") == "COMPLETED"

    status = sandbox.fetch_status(checkout.provider_ref)
    assert (status.outcome, status.amount, status.card_brand) == (Outcome.SUCCEEDED, 300, "FELICA_ID")
    assert status.paid_at == datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
    assert len(sim(sandbox).checkout(checkout.provider_ref)["payment_ids"]) == 1


def test_a_declined_touch_leaves_the_checkout_open_for_another_try(sandbox: SquareAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())

    sim(sandbox).simulate_device(checkout.provider_ref, "decline")
    assert sandbox.fetch_status(checkout.provider_ref).outcome is Outcome.PENDING
    sim(sandbox).simulate_device(checkout.provider_ref, "complete")
    assert sandbox.fetch_status(checkout.provider_ref).outcome is Outcome.SUCCEEDED


def test_the_buyer_cancelling_on_the_device_cancels_and_a_device_timeout_expires(sandbox: SquareAdapter) -> None:
    cancelled = sandbox.create_checkout(checkout_request(idempotency_key="a"))
    timed_out = sandbox.create_checkout(checkout_request(idempotency_key="b", reference="KK-2"))

    sim(sandbox).simulate_device(cancelled.provider_ref, "start")
    sim(sandbox).simulate_device(cancelled.provider_ref, "cancel")
    sim(sandbox).simulate_device(timed_out.provider_ref, "timeout")

    assert sandbox.fetch_status(cancelled.provider_ref).raw_status == "CANCELED/BUYER_CANCELED"
    assert sandbox.fetch_status(cancelled.provider_ref).outcome is Outcome.CANCELLED
    assert sandbox.fetch_status(timed_out.provider_ref).outcome is Outcome.EXPIRED
    with pytest.raises(ValueError):
        sim(sandbox).simulate_device(cancelled.provider_ref, "complete")


def test_a_pending_checkout_times_out_at_its_deadline(sandbox: SquareAdapter, clock: Clock) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    started = sandbox.create_checkout(checkout_request(idempotency_key="other", reference="KK-3"))
    sim(sandbox).simulate_device(started.provider_ref, "start")

    clock.now += timedelta(minutes=4, seconds=59)
    assert sandbox.fetch_status(checkout.provider_ref).outcome is Outcome.PENDING
    clock.now += timedelta(seconds=1)
    assert sandbox.fetch_status(checkout.provider_ref).outcome is Outcome.EXPIRED
    assert sandbox.fetch_status(started.provider_ref).outcome is Outcome.PENDING  # the buyer is at the device
    assert sim(sandbox).expire_due(clock.now + timedelta(hours=1)) == []


def test_expire_due_times_out_what_is_past_its_deadline(sandbox: SquareAdapter, clock: Clock) -> None:
    checkout = sandbox.create_checkout(checkout_request())

    assert sim(sandbox).expire_due(clock.now + timedelta(minutes=5)) == [checkout.provider_ref]
    assert sim(sandbox).checkout(checkout.provider_ref)["cancel_reason"] == "TIMED_OUT"


def test_the_seller_cancels_a_pending_checkout_but_not_e_money_at_the_device(sandbox: SquareAdapter) -> None:
    pending = sandbox.create_checkout(checkout_request(idempotency_key="a"))
    at_device = sandbox.create_checkout(checkout_request(idempotency_key="b", reference="KK-2"))
    qr_at_device = sandbox.create_checkout(checkout_request(idempotency_key="c", reference="KK-3",
                                                            payment_type="QR_CODE"))
    sim(sandbox).simulate_device(at_device.provider_ref, "start")
    sim(sandbox).simulate_device(qr_at_device.provider_ref, "start")

    sandbox.cancel(pending.provider_ref)
    sandbox.cancel(pending.provider_ref)  # again: already cancelled, nothing to do
    with pytest.raises(PermanentError):
        sandbox.cancel(at_device.provider_ref)
    sandbox.cancel(qr_at_device.provider_ref)

    assert sandbox.fetch_status(pending.provider_ref).raw_status == "CANCELED/SELLER_CANCELED"
    assert sandbox.fetch_status(at_device.provider_ref).outcome is Outcome.PENDING
    assert sandbox.fetch_status(qr_at_device.provider_ref).outcome is Outcome.CANCELLED


def test_the_same_key_answers_the_same_checkout_and_another_payment_under_it_is_refused(
    sandbox: SquareAdapter
) -> None:
    first = sandbox.create_checkout(checkout_request())

    assert sandbox.create_checkout(checkout_request()).provider_ref == first.provider_ref
    with pytest.raises(PermanentError):
        sandbox.create_checkout(checkout_request(amount=400))


def test_concurrent_creates_with_one_key_open_one_checkout(sandbox: SquareAdapter) -> None:
    refs: list[str] = []

    def create() -> None:
        refs.append(sandbox.create_checkout(checkout_request()).provider_ref)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(refs)) == 1 and len(refs) == 8


def test_each_state_change_is_a_signed_notification_the_adapter_verifies(sandbox: SquareAdapter, clock: Clock) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    sim(sandbox).simulate_device(checkout.provider_ref, "start")
    sim(sandbox).simulate_device(checkout.provider_ref, "complete")

    deliveries = sim(sandbox).events_for(checkout.provider_ref, clock.now)
    events = [sandbox.verify_webhook(headers, body, clock.now) for headers, body in deliveries]

    assert [e.outcome for e in events] == [Outcome.PENDING, Outcome.SUCCEEDED]
    assert {e.type for e in events} == {"terminal.checkout.updated"}
    assert {(e.reference, e.provider_ref) for e in events} == {(REF, checkout.provider_ref)}
    assert [h["x-square-hmacsha256-signature"] for h, b in deliveries] == [
        documented_signature(b) for h, b in deliveries]
    again = sim(sandbox).events_for(checkout.provider_ref, clock.now)
    assert [sandbox.verify_webhook(h, b, clock.now).event_id for h, b in again] == [e.event_id for e in events]
    headers, body = sim(sandbox).events_for(checkout.provider_ref, clock.now, notification_url=URL + "x")[-1]
    with pytest.raises(SignatureError):
        sandbox.verify_webhook(headers, body, clock.now)


def test_refunds_through_the_simulator_add_up_to_the_payment_and_settle_on_read(sandbox: SquareAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request(amount=3_000))
    sim(sandbox).simulate_device(checkout.provider_ref, "start")
    sim(sandbox).simulate_device(checkout.provider_ref, "complete")
    sim(sandbox).refunds_pending = True

    first = sandbox.refund(RefundRequest(checkout.provider_ref, 1_000, "過誤納", "r1"))
    assert first.outcome is Outcome.PENDING
    assert sandbox.refund(RefundRequest(checkout.provider_ref, 1_000, "過誤納", "r1")) == first
    later = sandbox.refund(RefundRequest(checkout.provider_ref, 1_000, "過誤納", "r1", refund_ref=first.refund_ref))
    assert (later.refund_ref, later.outcome) == (first.refund_ref, Outcome.SUCCEEDED)
    with pytest.raises(PermanentError):
        sandbox.refund(RefundRequest(checkout.provider_ref, 2_000, "過誤納", "r1"))  # key reused, other amount
    with pytest.raises(PermanentError):
        sandbox.refund(RefundRequest(checkout.provider_ref, 2_001, "過誤納", "r2"))
    assert sandbox.refund(RefundRequest(checkout.provider_ref, 2_000, "過誤納", "r3")).amount == 2_000


@pytest.mark.parametrize(("allowed", "used"), [("FELICA_TRANSPORTATION_GROUP", None),
                                               ("FELICA_ALL", "FELICA_TRANSPORTATION_GROUP")])
def test_the_simulator_refuses_to_refund_transportation_ic(
    sandbox: SquareAdapter, allowed: str, used: str | None
) -> None:
    checkout = sandbox.create_checkout(checkout_request(payment_type=allowed))
    sim(sandbox).simulate_device(checkout.provider_ref, "start")
    sim(sandbox).simulate_device(checkout.provider_ref, "complete", payment_type=used)

    with pytest.raises(PermanentError) as raised:
        sandbox.refund(RefundRequest(checkout.provider_ref, 300, "過誤納", "refund-ic"))

    assert getattr(raised.value, "code", None) == "PAYMENT_NOT_REFUNDABLE"


def test_a_felica_id_checkout_cannot_be_paid_with_another_brand(sandbox: SquareAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request(payment_type="FELICA_ID"))
    sim(sandbox).simulate_device(checkout.provider_ref, "start")

    with pytest.raises(ValueError):
        sim(sandbox).simulate_device(checkout.provider_ref, "complete", payment_type="FELICA_QUICPAY")


def test_the_settlement_report_lists_the_days_payments_in_tokyo_time(sandbox: SquareAdapter, clock: Clock) -> None:
    clock.now = datetime(2026, 3, 31, 14, 59, tzinfo=UTC)  # 23:59 on 31 March in Tokyo
    late = sandbox.create_checkout(checkout_request(idempotency_key="a", reference="KK-LATE"))
    sim(sandbox).simulate_device(late.provider_ref, "start")
    sim(sandbox).simulate_device(late.provider_ref, "complete")
    clock.now = datetime(2026, 3, 31, 15, 1, tzinfo=UTC)  # 00:01 on 1 April in Tokyo
    early = sandbox.create_checkout(checkout_request(idempotency_key="b", reference="KK-EARLY", amount=450,
                                                     payment_type="FELICA_ALL"))
    unpaid = sandbox.create_checkout(checkout_request(idempotency_key="c", reference="KK-UNPAID"))
    sim(sandbox).simulate_device(early.provider_ref, "start")
    sim(sandbox).simulate_device(early.provider_ref, "complete", payment_type="FELICA_QUICPAY")
    sim(sandbox).simulate_device(unpaid.provider_ref, "cancel")

    (row,) = sim(sandbox).settlement_report(date(2026, 4, 1))

    assert row == {"payment_id": sim(sandbox).checkout(early.provider_ref)["payment_ids"][0],
                   "checkout_id": early.provider_ref, "reference_id": "KK-EARLY", "amount": 450,
                   "payment_type": "FELICA_QUICPAY", "created_at": datetime(2026, 3, 31, 15, 1, tzinfo=UTC)}
    assert [r["reference_id"] for r in sim(sandbox).settlement_report(date(2026, 3, 31))] == ["KK-LATE"]


@pytest.mark.parametrize("kind", ["server_error", "rate_limit", "connection"])
def test_an_outage_is_retryable_and_passes(sandbox: SquareAdapter, kind: Any) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    sim(sandbox).simulate_outage(1, kind)

    with pytest.raises(RetryableError):
        sandbox.fetch_status(checkout.provider_ref)
    assert sandbox.fetch_status(checkout.provider_ref).outcome is Outcome.PENDING
