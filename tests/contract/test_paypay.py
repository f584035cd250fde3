"""PayPay adapter against PayPay's documented endpoints (mocked with `responses`) and its simulator.

Payload shapes follow the Dynamic QR API document (https://www.paypay.ne.jp/opa/doc/v1.0/dynamicqrcode)
and the response code lists of PayPay's SDK READMEs. The OPA-Auth header is recomputed here from
the documented algorithm, independently of adapters.paypay.client.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

import adapters.paypay.adapter as paypay_adapter
from adapters.base import (
    Capability,
    Checkout,
    CheckoutRequest,
    Outcome,
    PaymentAdapter,
    PermanentError,
    RefundRequest,
    RetryableError,
    SignatureError,
)
from adapters.paypay import PayPayAdapter, PayPayClient, PayPaySimulator, make_adapter
from adapters.paypay.client import PRODUCTION_BASE_URL, SANDBOX_BASE_URL

BASE = PRODUCTION_BASE_URL
API_KEY = "APIKeyGenerated"
API_SECRET = "APIKeySecretGenerated"
MERCHANT = "354829153762213888"
NONCE = "acd028ef"
EPOCH = 1579843452
NOW = datetime.fromtimestamp(EPOCH, UTC)
TOKEN = "whk-3f9c1e0b7a"
REF = "KK-20240601-000123"
CODE_ID = "04-ttsARm7PuT2ElFoO"
PAYMENT_ID = "04277516716385665024"
OK = {"code": "SUCCESS", "message": "Success", "codeId": "08100001"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW


def documented_authorization(method: str, path: str, content_type: str | None, body: bytes | None,
                             *, secret: str = API_SECRET, epoch: int = EPOCH) -> str:
    """The OPA-Auth value as PayPay's API Authentication section describes it."""
    if body:
        assert content_type
        signed_type = content_type
        digest = base64.b64encode(hashlib.md5(content_type.encode() + body).digest()).decode()
    else:
        signed_type = digest = "empty"
    mac_input = f"{path}\n{method}\n{NONCE}\n{epoch}\n{signed_type}\n{digest}"
    mac = base64.b64encode(hmac.new(secret.encode(), mac_input.encode(), hashlib.sha256).digest()).decode()
    return f"hmac OPA-Auth:{API_KEY}:{mac}:{NONCE}:{epoch}:{digest}"


def result(code: str, message: str = "", code_id: str = "") -> dict[str, Any]:
    return {"resultInfo": {"code": code, "message": message, "codeId": code_id}, "data": None}


def code_created(amount: int = 1234, reference: str = REF) -> dict[str, Any]:
    return {"resultInfo": OK, "data": {
        "codeId": CODE_ID,
        "url": "https://qr.paypay.ne.jp/28180104aBcDeFgHiJkLmNo",
        "deeplink": "paypay://payment?link_key=https%3A%2F%2Fqr.paypay.ne.jp%2F28180104aBcDeFgHiJkLmNo",
        "expiryDate": EPOCH + 600,
        "merchantPaymentId": reference,
        "amount": {"amount": amount, "currency": "JPY"},
        "orderDescription": "特別区民税・都民税 第1期",
        "codeType": "ORDER_QR",
        "requestedAt": EPOCH,
        "redirectUrl": "https://pay.example.lg.jp/return",
        "redirectType": "WEB_LINK",
        "isAuthorization": False,
        "authorizationExpiry": None,
    }}


def payment_details(status: str, *, amount: int = 1234, refunds: list[dict[str, Any]] | None = None,
                    accepted_at: int = 0, paid: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": status, "acceptedAt": accepted_at, "refunds": {"data": refunds or []},
        "merchantPaymentId": REF, "amount": {"amount": amount, "currency": "JPY"}, "requestedAt": EPOCH,
        "expiresAt": None, "canceledAt": None, "storeId": None, "terminalId": None,
        "orderReceiptNumber": None, "orderDescription": "特別区民税・都民税 第1期", "orderItems": None,
    }
    if paid:
        data["paymentId"] = PAYMENT_ID
    return {"resultInfo": OK, "data": data}


def refund_record(merchant_refund_id: str, amount: int, status: str) -> dict[str, Any]:
    return {"status": status, "acceptedAt": EPOCH + 60 if status == "REFUNDED" else 0,
            "merchantRefundId": merchant_refund_id, "paymentId": PAYMENT_ID,
            "amount": {"amount": amount, "currency": "JPY"}, "requestedAt": EPOCH, "reason": "overpaid"}


def checkout_request(reference: str = REF, amount: int = 1234) -> CheckoutRequest:
    return CheckoutRequest(reference=reference, amount=amount, description="特別区民税・都民税 第1期",
                           return_url="https://pay.example.lg.jp/return", cancel_url="https://pay.example.lg.jp/cancel",
                           idempotency_key="7c0e5f0e-3a44-4d7b-9d51-0b3c2b8f6a11")


@pytest.fixture
def rsps() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def adapter(clock: Clock) -> PayPayAdapter:
    client = PayPayClient(base_url=BASE, api_key=API_KEY, api_secret=API_SECRET, merchant_id=MERCHANT,
                          clock=lambda: EPOCH, nonce_factory=lambda: NONCE)
    return PayPayAdapter(client, webhook_token=TOKEN, clock=lambda: clock.now)


def sent(rsps: Any, index: int) -> requests.PreparedRequest:
    return rsps.calls[index].request


# -- shape and signature of requests --------------------------------------------------------------

def test_the_adapter_declares_qr_polling_webhook_cancel_and_refunds(adapter: PayPayAdapter) -> None:
    assert isinstance(adapter, PaymentAdapter)
    assert adapter.name == "paypay"
    assert adapter.capabilities == (Capability.QR | Capability.POLL | Capability.WEBHOOK | Capability.CANCEL
                                    | Capability.REFUND | Capability.PARTIAL_REFUND)


def test_a_checkout_is_an_order_qr_for_integer_yen_under_the_attempt_reference(
        rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)

    checkout = adapter.create_checkout(checkout_request())

    body = json.loads(sent(rsps, 0).body)
    assert body["codeType"] == "ORDER_QR"
    assert body["merchantPaymentId"] == REF
    assert body["amount"] == {"amount": 1234, "currency": "JPY"}
    assert type(body["amount"]["amount"]) is int and b'"amount":1234,' in sent(rsps, 0).body
    assert body["orderDescription"] == "特別区民税・都民税 第1期"
    assert body["redirectUrl"] == "https://pay.example.lg.jp/return"
    assert body["redirectType"] == "WEB_LINK"
    assert body["requestedAt"] == EPOCH
    assert body["codeValidityPeriodSecs"] == 600
    assert checkout == Checkout(provider_ref=REF, qr_payload="https://qr.paypay.ne.jp/28180104aBcDeFgHiJkLmNo",
                                expires_at=NOW + timedelta(seconds=600))


def test_a_create_is_signed_over_content_type_and_body_byte_for_byte(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)

    adapter.create_checkout(checkout_request())

    request = sent(rsps, 0)
    assert request.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert request.headers["Authorization"] == documented_authorization(
        "POST", "/v2/codes", request.headers["Content-Type"], request.body)
    assert request.headers["X-ASSUME-MERCHANT"] == MERCHANT


def test_a_poll_has_no_body_and_is_signed_with_the_word_empty(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))

    adapter.fetch_status(REF)

    request = sent(rsps, 0)
    assert not request.body
    assert "Content-Type" not in request.headers
    assert request.headers["Authorization"] == documented_authorization("GET", f"/v2/codes/payments/{REF}", None, None)
    assert request.headers["Authorization"].endswith(":empty")
    assert request.headers["X-ASSUME-MERCHANT"] == MERCHANT


def test_deleting_a_code_is_signed_with_the_word_empty(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.DELETE, f"{BASE}/v2/codes/{CODE_ID}", json={"resultInfo": OK, "data": {"qrStatus": "DELETED"}})
    adapter.create_checkout(checkout_request())

    adapter.cancel(REF)

    request = sent(rsps, 1)
    assert request.headers["Authorization"] == documented_authorization("DELETE", f"/v2/codes/{CODE_ID}", None, None)
    assert request.headers["X-ASSUME-MERCHANT"] == MERCHANT


def test_a_signature_made_with_another_secret_does_not_match(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))

    adapter.fetch_status(REF)

    path = f"/v2/codes/payments/{REF}"
    assert sent(rsps, 0).headers["Authorization"] != documented_authorization("GET", path, None, None, secret="x")


@pytest.mark.parametrize(("reference", "amount"), [
    ("K" * 65, 1000), ("has space", 1000), ("スラッシュ", 1000), ("ok-ref", 0), ("ok-ref", -5), ("ok-ref", True),
])
def test_a_reference_or_amount_paypay_cannot_take_is_refused_before_any_request(
        rsps: Any, adapter: PayPayAdapter, reference: str, amount: int) -> None:
    with pytest.raises(PermanentError):
        adapter.create_checkout(checkout_request(reference, amount))
    assert len(rsps.calls) == 0


# -- idempotency ----------------------------------------------------------------------------------

def test_a_second_create_with_the_same_reference_returns_the_same_checkout(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.POST, f"{BASE}/v2/codes", status=400,
             json=result("DUPLICATE_DYNAMIC_QR_REQUEST", "Duplicate Dynamic QR request error", "01652073"))

    first = adapter.create_checkout(checkout_request())
    second = adapter.create_checkout(checkout_request())

    assert second == first


def test_a_reused_reference_with_another_amount_is_refused(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.POST, f"{BASE}/v2/codes", status=400, json=result("DUPLICATE_DYNAMIC_QR_REQUEST"))
    adapter.create_checkout(checkout_request())

    with pytest.raises(PermanentError, match="another amount"):
        adapter.create_checkout(checkout_request(amount=999))


def test_a_duplicate_whose_link_this_process_never_saw_is_refused_not_shown_blank(
        rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", status=400, json=result("DUPLICATE_DYNAMIC_QR_REQUEST"))
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))

    with pytest.raises(PermanentError, match="new reference"):
        adapter.create_checkout(checkout_request())


def test_a_duplicate_that_is_already_paid_returns_a_checkout_to_poll(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", status=400, json=result("DUPLICATE_DYNAMIC_QR_REQUEST"))
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}",
             json=payment_details("COMPLETED", accepted_at=EPOCH + 30))

    assert adapter.create_checkout(checkout_request()) == Checkout(provider_ref=REF)


# -- polling --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "outcome"), [
    ("CREATED", Outcome.PENDING),
    ("COMPLETED", Outcome.SUCCEEDED),
    ("REFUNDED", Outcome.SUCCEEDED),
    ("FAILED", Outcome.FAILED),
    ("CANCELED", Outcome.CANCELLED),
    ("EXPIRED", Outcome.EXPIRED),
    ("AUTHORIZED", Outcome.UNKNOWN),
    ("REAUTHORIZING", Outcome.UNKNOWN),
    ("SOMETHING_NEW", Outcome.UNKNOWN),
])
def test_each_polled_status_maps_to_one_outcome(
        rsps: Any, adapter: PayPayAdapter, status: str, outcome: Outcome) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details(status, accepted_at=EPOCH + 30))

    polled = adapter.fetch_status(REF)

    assert (polled.provider_ref, polled.outcome, polled.raw_status) == (REF, outcome, status)


def test_a_completed_payment_reports_the_accepted_amount_and_time(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}",
             json=payment_details("COMPLETED", amount=1234, accepted_at=EPOCH + 42))

    polled = adapter.fetch_status(REF)

    assert polled.amount == 1234
    assert polled.paid_at == NOW + timedelta(seconds=42)
    assert polled.card_brand is None and polled.card_last4 is None


def test_an_unpaid_code_reads_created_until_a_grace_minute_past_its_expiry(
        rsps: Any, adapter: PayPayAdapter, clock: Clock) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))
    adapter.create_checkout(checkout_request())

    clock.now = NOW + timedelta(seconds=600 + 59)
    assert adapter.fetch_status(REF).outcome is Outcome.PENDING
    clock.now = NOW + timedelta(seconds=600 + 61)
    assert adapter.fetch_status(REF).outcome is Outcome.EXPIRED


def test_a_deleted_code_that_still_reads_created_is_reported_cancelled(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.DELETE, f"{BASE}/v2/codes/{CODE_ID}", json={"resultInfo": OK, "data": {"qrStatus": "DELETED"}})
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))
    adapter.create_checkout(checkout_request())
    adapter.cancel(REF)

    assert adapter.fetch_status(REF).outcome is Outcome.CANCELLED


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply", [
    {"status": 500, "json": result("INTERNAL_SERVER_ERROR", "Something went wrong on PayPay service side", "08101000")},
    {"status": 503, "json": result("MAINTENANCE_MODE", "Sorry, we are down for scheduled maintenance", "08100999")},
    {"status": 502, "body": "<html>Bad Gateway</html>"},
    {"status": 429, "json": result("RATE_LIMIT", "Too many requests", "08100998")},
    {"body": requests.exceptions.ConnectTimeout("connect timed out")},
    {"body": requests.exceptions.ReadTimeout("read timed out")},
    {"body": requests.exceptions.ConnectionError("connection reset")},
    {"status": 200, "body": "not json"},
], ids=["500", "503", "502-html", "429", "connect-timeout", "read-timeout", "connection-error", "2xx-unreadable"])
def test_server_errors_rate_limits_and_timeouts_are_retryable(
        rsps: Any, adapter: PayPayAdapter, reply: dict[str, Any]) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", **reply)

    with pytest.raises(RetryableError):
        adapter.fetch_status(REF)


@pytest.mark.parametrize(("status", "code"), [
    (400, "INVALID_REQUEST_PARAMS"),
    (400, "DYNAMIC_QR_BAD_REQUEST"),
    (401, "UNAUTHORIZED"),
    (401, "OP_OUT_OF_SCOPE"),
    (404, "DYNAMIC_QR_PAYMENT_NOT_FOUND"),
    (404, "OPA_CLIENT_NOT_FOUND"),
    (200, "SOMETHING_ELSE"),
])
def test_client_errors_and_unsuccessful_results_are_permanent(
        rsps: Any, adapter: PayPayAdapter, status: int, code: str) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", status=status, json=result(code, "no", "00000000"))

    with pytest.raises(PermanentError) as caught:
        adapter.fetch_status(REF)
    assert not isinstance(caught.value, RetryableError)
    assert caught.value.code == code  # type: ignore[attr-defined]


# -- notifications --------------------------------------------------------------------------------

def transaction_event(state: str = "COMPLETED", **extra: Any) -> bytes:
    event = {"notification_type": "Transaction", "merchant_id": MERCHANT, "store_id": "", "pos_id": "",
             "order_id": PAYMENT_ID, "merchant_order_id": REF, "authorized_at": None, "expires_at": None,
             "paid_at": "2020-01-24T05:24:30Z", "order_amount": 1234, "state": state, **extra}
    return json.dumps(event).encode()


def test_a_notification_without_the_token_is_rejected(adapter: PayPayAdapter) -> None:
    with pytest.raises(SignatureError):
        adapter.verify_webhook({"Content-Type": "application/json"}, transaction_event(), NOW)


def test_a_notification_with_a_wrong_token_is_rejected_before_its_body_is_read(adapter: PayPayAdapter) -> None:
    with pytest.raises(SignatureError):
        adapter.verify_webhook({"X-Kokin-Webhook-Token": TOKEN + "x"}, b"\xff not json", NOW)
    with pytest.raises(SignatureError):
        adapter.verify_webhook({"X-Kokin-Webhook-Token": ""}, transaction_event(), NOW)


def test_the_token_is_compared_in_constant_time(adapter: PayPayAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(paypay_adapter.hmac, "compare_digest", spy)
    adapter.verify_webhook({"X-Kokin-Webhook-Token": TOKEN}, transaction_event(), NOW)
    with pytest.raises(SignatureError):
        adapter.verify_webhook({"X-Kokin-Webhook-Token": "guess"}, transaction_event(), NOW)

    assert compared == [(TOKEN.encode(), TOKEN.encode()), (b"guess", TOKEN.encode())]


def test_a_genuine_notification_is_only_a_hint_to_poll_with_a_stable_id(adapter: PayPayAdapter) -> None:
    body = transaction_event("COMPLETED")

    event = adapter.verify_webhook({"x-kokin-webhook-token": TOKEN}, body, NOW)
    again = adapter.verify_webhook({"X-Kokin-Webhook-Token": TOKEN}, body, NOW)
    refunded = adapter.verify_webhook({"X-Kokin-Webhook-Token": TOKEN}, transaction_event("REFUNDED"), NOW)

    assert event.outcome is None
    assert (event.reference, event.provider_ref, event.type) == (REF, REF, "Transaction.COMPLETED")
    assert event.event_id == "sha256:" + hashlib.sha256(body).hexdigest() == again.event_id
    assert refunded.event_id != event.event_id
    assert event.occurred_at == datetime(2020, 1, 24, 5, 24, 30, tzinfo=UTC)
    assert refunded.type == "Transaction.REFUNDED"


def test_a_notification_id_is_the_event_id_when_paypay_sends_one(adapter: PayPayAdapter) -> None:
    body = transaction_event(notification_id="9f1c2e44-8b6a-4f7e-a1d5-0c3b2a1f9e8d")

    event = adapter.verify_webhook({"X-Kokin-Webhook-Token": TOKEN}, body, NOW)

    assert event.event_id == "9f1c2e44-8b6a-4f7e-a1d5-0c3b2a1f9e8d"


def test_a_payment_notification_dated_more_than_300_seconds_from_now_is_refused(adapter: PayPayAdapter) -> None:
    paid_at = datetime(2020, 1, 24, 5, 24, 30, tzinfo=UTC)
    headers = {"X-Kokin-Webhook-Token": TOKEN}

    adapter.verify_webhook(headers, transaction_event(), paid_at + timedelta(seconds=300))
    adapter.verify_webhook(headers, transaction_event(), paid_at - timedelta(seconds=300))
    for skew in (301, -301):
        with pytest.raises(SignatureError, match="300 s"):
            adapter.verify_webhook(headers, transaction_event(), paid_at + timedelta(seconds=skew))


def test_a_later_event_is_not_dated_by_the_original_payment_time(adapter: PayPayAdapter) -> None:
    # paid_at dates COMPLETED only; a REFUNDED event days later still carries it.
    event = adapter.verify_webhook({"X-Kokin-Webhook-Token": TOKEN}, transaction_event("REFUNDED"),
                                   NOW + timedelta(days=2))

    assert (event.outcome, event.reference, event.occurred_at) == (None, REF, None)


def test_a_body_that_is_not_json_behind_a_good_token_is_permanent_not_a_signature_failure(
        adapter: PayPayAdapter) -> None:
    with pytest.raises(PermanentError) as caught:
        adapter.verify_webhook({"X-Kokin-Webhook-Token": TOKEN}, b"<xml/>", NOW)
    assert not isinstance(caught.value, SignatureError)


# -- refunds --------------------------------------------------------------------------------------

def test_a_full_refund_posts_the_payment_id_and_integer_yen(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("COMPLETED", accepted_at=EPOCH))
    rsps.add(responses.POST, f"{BASE}/v2/refunds",
             json={"resultInfo": OK, "data": refund_record("rf-0001", 1234, "CREATED")})

    refunded = adapter.refund(RefundRequest(REF, 1234, "overpaid", "rf-0001"))

    request = sent(rsps, 1)
    assert json.loads(request.body) == {"merchantRefundId": "rf-0001", "paymentId": PAYMENT_ID,
                                        "amount": {"amount": 1234, "currency": "JPY"},
                                        "requestedAt": EPOCH, "reason": "overpaid"}
    assert request.headers["Authorization"] == documented_authorization(
        "POST", "/v2/refunds", request.headers["Content-Type"], request.body)
    assert (refunded.refund_ref, refunded.outcome, refunded.amount) == ("rf-0001", Outcome.PENDING, 1234)


def test_a_partial_refund_refunds_only_part_and_reports_paypays_state(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details(
        "COMPLETED", refunds=[refund_record("rf-0001", 200, "REFUNDED")]))
    rsps.add(responses.POST, f"{BASE}/v2/refunds",
             json={"resultInfo": OK, "data": refund_record("rf-0002", 234, "REFUNDED")})

    refunded = adapter.refund(RefundRequest(REF, 234, "overpaid", "rf-0002"))

    assert json.loads(sent(rsps, 1).body)["amount"] == {"amount": 234, "currency": "JPY"}
    assert (refunded.outcome, refunded.amount) == (Outcome.SUCCEEDED, 234)


def test_a_refund_larger_than_what_remains_is_refused_without_posting(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details(
        "COMPLETED", refunds=[refund_record("rf-0001", 1000, "REFUNDED")]))

    with pytest.raises(PermanentError, match="exceeds"):
        adapter.refund(RefundRequest(REF, 235, "overpaid", "rf-0002"))


def test_a_repeated_refund_key_is_answered_from_the_payment_without_a_second_post(
        rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details(
        "REFUNDED", refunds=[refund_record("rf-0001", 1234, "REFUNDED")]))

    refunded = adapter.refund(RefundRequest(REF, 1234, "overpaid", "rf-0001"))

    assert (refunded.refund_ref, refunded.outcome, refunded.amount) == ("rf-0001", Outcome.SUCCEEDED, 1234)


def test_an_unpaid_checkout_cannot_be_refunded(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))

    with pytest.raises(PermanentError, match="not a completed payment"):
        adapter.refund(RefundRequest(REF, 1234, "overpaid", "rf-0001"))


def test_a_refund_paypay_reports_as_transaction_failed_is_a_failed_result(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("COMPLETED"))
    rsps.add(responses.POST, f"{BASE}/v2/refunds", status=500,
             json=result("TRANSACTION_FAILED", "Balance exceeded", "00800017"))

    refunded = adapter.refund(RefundRequest(REF, 1234, "overpaid", "rf-0001"))

    assert refunded.outcome is Outcome.FAILED


def test_an_idempotency_key_paypay_cannot_take_becomes_a_stable_refund_id(rsps: Any, adapter: PayPayAdapter) -> None:
    key = "refund:slip/2024/000123#1"
    for _ in range(2):
        rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("COMPLETED"))
        rsps.add(responses.POST, f"{BASE}/v2/refunds", json={"resultInfo": OK, "data": None})

    first = adapter.refund(RefundRequest(REF, 100, "overpaid", key))
    second = adapter.refund(RefundRequest(REF, 100, "overpaid", key))

    ids = [json.loads(sent(rsps, i).body)["merchantRefundId"] for i in (1, 3)]
    assert ids[0] == ids[1] == first.refund_ref == second.refund_ref
    assert len(ids[0]) <= 64 and ids[0].replace("-", "").replace("_", "").isalnum()


# -- cancel ---------------------------------------------------------------------------------------

def test_cancelling_a_code_this_process_created_deletes_it_by_code_id_once(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.DELETE, f"{BASE}/v2/codes/{CODE_ID}", json={"resultInfo": OK, "data": {"qrStatus": "DELETED"}})
    adapter.create_checkout(checkout_request())

    adapter.cancel(REF)
    adapter.cancel(REF)

    assert [call.request.method for call in rsps.calls] == ["POST", "DELETE"]


def test_cancelling_a_code_paypay_already_forgot_is_harmless(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.DELETE, f"{BASE}/v2/codes/{CODE_ID}", status=404,
             json=result("DYNAMIC_QR_NOT_FOUND", "Dynamic qr code not found", "01652072"))
    adapter.create_checkout(checkout_request())

    adapter.cancel(REF)


def test_cancelling_a_code_the_resident_already_paid_is_permanent(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.DELETE, f"{BASE}/v2/codes/{CODE_ID}", status=400,
             json=result("DYNAMIC_QR_ALREADY_PAID", "Dynamic QR already paid", "01652074"))
    adapter.create_checkout(checkout_request())

    with pytest.raises(PermanentError, match="refund"):
        adapter.cancel(REF)


def test_cancelling_a_code_another_process_created_cancels_the_payment_by_reference(
        rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))
    rsps.add(responses.DELETE, f"{BASE}/v2/payments/{REF}", status=202,
             json=result("REQUEST_ACCEPTED", "Request accepted", "08100001"))

    adapter.cancel(REF)

    request = sent(rsps, 1)
    assert request.headers["Authorization"] == documented_authorization("DELETE", f"/v2/payments/{REF}", None, None)


def test_cancelling_a_paid_payment_another_process_created_cancels_nothing(rsps: Any, adapter: PayPayAdapter) -> None:
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("COMPLETED", accepted_at=EPOCH))

    with pytest.raises(PermanentError, match="refund"):
        adapter.cancel(REF)
    assert len(rsps.calls) == 1


# -- factory and sandbox --------------------------------------------------------------------------

@pytest.mark.parametrize("config", [{}, {"sandbox": "yes"}, {"sandbox": None}])
def test_the_sandbox_flag_must_be_given_explicitly(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="sandbox"):
        make_adapter(config)


@pytest.mark.parametrize("missing", ["api_key", "api_secret", "merchant_id", "webhook_token"])
def test_production_needs_every_credential(missing: str) -> None:
    config = {"sandbox": False, "api_key": "k", "api_secret": "s", "merchant_id": "m", "webhook_token": "t"}
    config[missing] = ""

    with pytest.raises(ValueError, match=missing):
        make_adapter(config)


def test_production_talks_to_paypays_production_host_and_sandbox_to_none() -> None:
    config = {"api_key": "k", "api_secret": "s", "merchant_id": "m", "webhook_token": "t"}

    production = make_adapter({"sandbox": False, **config})
    sandbox = make_adapter({"sandbox": True})

    assert (production.client.base_url, production.simulator) == (PRODUCTION_BASE_URL, None)
    assert sandbox.client.base_url == SANDBOX_BASE_URL and isinstance(sandbox.simulator, PayPaySimulator)
    with pytest.raises(requests.ConnectionError, match="sandbox mode"):
        sandbox.client.session.get("https://api.paypay.ne.jp/v2/codes", timeout=1)


def test_the_sandbox_runs_pay_poll_notify_and_refund_in_process() -> None:
    adapter = make_adapter({"sandbox": True, "webhook_token": TOKEN})
    checkout = adapter.create_checkout(checkout_request())
    assert adapter.fetch_status(REF).outcome is Outcome.PENDING

    adapter.simulator.simulate_payment(REF)
    [delivery] = adapter.simulator.take_notifications()
    event = adapter.verify_webhook(delivery.headers, delivery.body, datetime.now(UTC))
    polled = adapter.fetch_status(REF)
    partial = adapter.refund(RefundRequest(REF, 234, "overpaid", "rf-1"))
    settled = adapter.refund(RefundRequest(REF, 234, "overpaid", "rf-1"))

    assert checkout.qr_payload and checkout.expires_at
    assert (event.reference, event.outcome) == (REF, None)
    assert (polled.outcome, polled.amount) == (Outcome.SUCCEEDED, 1234)
    assert (partial.outcome, settled.outcome) == (Outcome.PENDING, Outcome.SUCCEEDED)
    with pytest.raises(PermanentError, match="exceeds"):
        adapter.refund(RefundRequest(REF, 1001, "overpaid", "rf-2"))


@pytest.mark.parametrize(("outcome", "expected"), [("FAILED", Outcome.FAILED), ("EXPIRED", Outcome.EXPIRED)])
def test_a_resident_who_fails_or_walks_away_is_polled_as_such(outcome: str, expected: Outcome) -> None:
    adapter = make_adapter({"sandbox": True})
    adapter.create_checkout(checkout_request())

    adapter.simulator.simulate_payment(REF, outcome)

    assert adapter.fetch_status(REF).outcome is expected


def test_the_simulator_refuses_a_request_signed_with_another_secret() -> None:
    adapter = make_adapter({"sandbox": True, "api_secret": "right"})
    wrong = PayPayClient(base_url=SANDBOX_BASE_URL, api_key="sandbox-api-key", api_secret="wrong",
                         merchant_id="sandbox-merchant", session=adapter.client.session)

    with pytest.raises(PermanentError) as caught:
        wrong.request("GET", f"/v2/codes/payments/{REF}")
    assert (caught.value.status, caught.value.code) == (401, "UNAUTHORIZED")  # type: ignore[attr-defined]


def test_the_simulator_refuses_a_duplicate_merchant_payment_id() -> None:
    adapter = make_adapter({"sandbox": True})
    adapter.create_checkout(checkout_request())

    with pytest.raises(PermanentError) as caught:
        adapter.client.request("POST", "/v2/codes", {"merchantPaymentId": REF, "codeType": "ORDER_QR",
                                                     "amount": {"amount": 1234, "currency": "JPY"},
                                                     "requestedAt": EPOCH})
    assert caught.value.code == "DUPLICATE_DYNAMIC_QR_REQUEST"  # type: ignore[attr-defined]


def test_cancelling_in_the_sandbox_makes_the_code_unpayable() -> None:
    adapter = make_adapter({"sandbox": True})
    adapter.create_checkout(checkout_request())

    adapter.cancel(REF)

    with pytest.raises(ValueError, match="deleted"):
        adapter.simulator.simulate_payment(REF)
    assert adapter.fetch_status(REF).outcome is Outcome.CANCELLED


def test_a_simulated_outage_is_retryable() -> None:
    adapter = make_adapter({"sandbox": True})
    adapter.simulator.fail_next(503, "MAINTENANCE_MODE", "Sorry, we are down for scheduled maintenance", "08100999")

    with pytest.raises(RetryableError):
        adapter.fetch_status(REF)


def test_concurrent_creates_of_one_reference_yield_one_code_and_one_checkout() -> None:
    adapter = make_adapter({"sandbox": True})
    results: list[Checkout] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            results.append(adapter.create_checkout(checkout_request()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 8 and len(set(results)) == 1
    assert [call for call in adapter.simulator.calls if call[0] == "POST"] == [("POST", "/v2/codes")] * 8


def test_codes_are_forgotten_a_day_after_expiry_and_cancel_then_falls_back_by_reference(
        rsps: Any, adapter: PayPayAdapter, clock: Clock) -> None:
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(), status=201)
    rsps.add(responses.POST, f"{BASE}/v2/codes", json=code_created(reference="KK-LATER"), status=201)
    rsps.add(responses.GET, f"{BASE}/v2/codes/payments/{REF}", json=payment_details("CREATED", paid=False))
    rsps.add(responses.DELETE, f"{BASE}/v2/payments/{REF}", status=202, json=result("REQUEST_ACCEPTED"))
    adapter.create_checkout(checkout_request())
    clock.now = NOW + timedelta(seconds=600) + timedelta(days=1, seconds=1)
    adapter.create_checkout(checkout_request("KK-LATER"))

    adapter.cancel(REF)

    assert [(c.request.method, c.request.path_url) for c in rsps.calls][2:] == [
        ("GET", f"/v2/codes/payments/{REF}"), ("DELETE", f"/v2/payments/{REF}")]
