"""The Stripe adapter on its production code path, HTTP mocked by `responses`.

Requests go to the real api.stripe.com URLs through the official SDK and the requests
library; `responses` answers with payloads shaped like Stripe's documented JSON and
refuses anything unregistered, so nothing reaches the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
import stripe
from responses import matchers

from adapters.base import Capability, Outcome, PermanentError, RefundRequest, RetryableError
from adapters.stripe import StripeAdapter, make_adapter
from tests.contract.stripe_payloads import (
    API,
    CHARGE_ID,
    CREATED,
    INTENT_ID,
    SECRET,
    SESSION_ID,
    charge_json,
    checkout_request,
    error_json,
    intent_json,
    production_adapter,
    session_json,
)


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def stripe_adapter() -> StripeAdapter:
    return production_adapter()


def sent_form(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


# -- creating a checkout -------------------------------------------------------------------


def test_a_checkout_carries_the_idempotency_key_the_amount_in_yen_and_our_reference(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    http.post(f"{API}/checkout/sessions", json=session_json())

    checkout = stripe_adapter.create_checkout(checkout_request())

    request = http.calls[0].request
    form = sent_form(http.calls[0])
    assert request.headers["Idempotency-Key"] == "attempt-0001-key"
    assert form["line_items[0][price_data][unit_amount]"] == "1234"  # zero-decimal: 1,234 yen
    assert form["line_items[0][price_data][currency]"] == "jpy"
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][product_data][name]"] == "住民税 令和8年度 第1期"
    assert form["client_reference_id"] == "KOKIN-0001"
    assert form["metadata[reference]"] == "KOKIN-0001"
    assert form["payment_intent_data[metadata][reference]"] == "KOKIN-0001"
    assert form["mode"] == "payment" and form["payment_method_types[0]"] == "card"
    assert form["success_url"] == "https://pay.example.lg.jp/return"
    assert form["cancel_url"] == "https://pay.example.lg.jp/cancel"
    assert checkout.provider_ref == SESSION_ID
    assert checkout.redirect_url == f"https://checkout.stripe.com/c/pay/{SESSION_ID}"
    assert checkout.expires_at == datetime.fromtimestamp(CREATED + 86_400, UTC)


def test_a_retried_checkout_sends_exactly_the_same_parameters(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    http.post(f"{API}/checkout/sessions", json=session_json())
    http.post(f"{API}/checkout/sessions", json=session_json(), headers={"Idempotent-Replayed": "true"})

    stripe_adapter.create_checkout(checkout_request())
    stripe_adapter.create_checkout(checkout_request())

    first, second = http.calls[0].request, http.calls[1].request
    assert first.body == second.body  # Stripe refuses a reused key with other parameters
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


def test_the_secret_key_is_a_bearer_token_and_the_api_version_is_the_sdks(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    http.post(f"{API}/checkout/sessions", json=session_json())

    stripe_adapter.create_checkout(checkout_request())

    headers = http.calls[0].request.headers
    assert headers["Authorization"] == "Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc"
    assert headers["Stripe-Version"] == stripe.api_version
    assert "X-Stripe-Client-Telemetry" not in headers
    assert "telemetry_id" not in json.loads(headers["X-Stripe-Client-User-Agent"])


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, error_json("api_error", "Something went wrong on Stripe's end.")),
        (503, error_json("api_error", "Service unavailable.")),
        (429, error_json("invalid_request_error", "Too many requests.", code="rate_limit")),
        (409, error_json("idempotency_error", "A request with this key is already in progress.")),
    ],
    ids=["500", "503", "429", "409"],
)
def test_a_server_error_or_rate_limit_is_retryable(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter, status: int, body: dict[str, Any]
) -> None:
    http.post(f"{API}/checkout/sessions", json=body, status=status)

    with pytest.raises(RetryableError):
        stripe_adapter.create_checkout(checkout_request())


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectionError("connection refused"), requests.ReadTimeout("read timed out")],
    ids=["connection-refused", "read-timeout"],
)
def test_a_connection_failure_is_retryable(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter, failure: Exception
) -> None:
    http.post(f"{API}/checkout/sessions", body=failure)

    with pytest.raises(RetryableError):
        stripe_adapter.create_checkout(checkout_request())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            error_json(
                "invalid_request_error", "Invalid integer: 12.5", param="line_items[0][price_data][unit_amount]"
            ),
        ),
        (
            400,
            error_json("idempotency_error", "Keys for idempotent requests can only be used with the same parameters."),
        ),
        (401, error_json("invalid_request_error", "Invalid API Key provided: sk_test_****dc")),
        (403, error_json("invalid_request_error", "The provided key does not have access to this resource.")),
    ],
    ids=["bad-request", "idempotency-conflict", "bad-key", "forbidden"],
)
def test_a_refused_request_is_permanent(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter, status: int, body: dict[str, Any]
) -> None:
    http.post(f"{API}/checkout/sessions", json=body, status=status)

    with pytest.raises(PermanentError) as raised:
        stripe_adapter.create_checkout(checkout_request())
    assert not isinstance(raised.value, RetryableError)


def test_the_sdk_retries_a_server_error_with_the_same_idempotency_key(http: responses.RequestsMock) -> None:
    adapter = make_adapter({"secret_key": "sk_test_x", "webhook_secret": SECRET, "max_network_retries": 1})
    http.post(f"{API}/checkout/sessions", json=error_json("api_error", "Try again."), status=503)
    http.post(f"{API}/checkout/sessions", json=session_json())

    checkout = adapter.create_checkout(checkout_request())

    assert checkout.provider_ref == SESSION_ID
    keys = {call.request.headers["Idempotency-Key"] for call in http.calls}
    assert keys == {"attempt-0001-key"}


def test_an_unknown_session_is_a_permanent_error(http: responses.RequestsMock, stripe_adapter: StripeAdapter) -> None:
    missing = error_json("invalid_request_error", f"No such checkout.session: '{SESSION_ID}'", code="resource_missing")
    http.get(f"{API}/checkout/sessions/{SESSION_ID}", json=missing, status=404)

    with pytest.raises(PermanentError):
        stripe_adapter.fetch_status(SESSION_ID)


@pytest.mark.parametrize("ref", ["", "pi_3PqWd2LkdIwHu7ix", "cs_test_abc/../../v1/charges", "cs_test_ａｂｃ"])
def test_a_reference_that_is_not_a_checkout_session_is_refused_before_any_request(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter, ref: str
) -> None:
    with pytest.raises(PermanentError):
        stripe_adapter.fetch_status(ref)
    assert len(http.calls) == 0


# -- status --------------------------------------------------------------------------------


def expect_session(http: responses.RequestsMock, body: dict[str, Any]) -> None:
    http.get(
        f"{API}/checkout/sessions/{SESSION_ID}",
        json=body,
        match=[matchers.query_param_matcher({"expand[0]": "payment_intent.latest_charge"})],
    )


def test_a_paid_session_reports_amount_paid_time_brand_and_last_four(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    expect_session(
        http, session_json("complete", "paid", intent_json("succeeded", charge_json(brand="jcb", last4="0000")))
    )

    status = stripe_adapter.fetch_status(SESSION_ID)

    assert status.outcome is Outcome.SUCCEEDED
    assert status.amount == 1234
    assert status.paid_at == datetime.fromtimestamp(CREATED + 30, UTC)
    assert (status.card_brand, status.card_last4) == ("jcb", "0000")
    assert status.raw_status == "complete/paid"


@pytest.mark.parametrize(
    ("session", "outcome"),
    [
        (session_json("open"), Outcome.PENDING),
        (session_json("open", intent=intent_json("requires_payment_method", charge_json("failed"))), Outcome.PENDING),
        (session_json("expired"), Outcome.EXPIRED),
        (session_json("complete", "unpaid", intent_json("requires_action")), Outcome.PENDING),
        (session_json("complete", "unpaid", intent_json("requires_payment_method")), Outcome.FAILED),
        (session_json("complete", "paid", intent_json("succeeded", charge_json())), Outcome.SUCCEEDED),
        (session_json("mystery"), Outcome.UNKNOWN),
    ],
    ids=["open", "declined-but-open", "expired", "async-settling", "async-failed", "paid", "unknown-status"],
)
def test_session_states_map_to_outcomes(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter, session: dict[str, Any], outcome: Outcome
) -> None:
    expect_session(http, session)

    status = stripe_adapter.fetch_status(SESSION_ID)

    assert status.outcome is outcome
    assert (status.amount is None) == (outcome is not Outcome.SUCCEEDED)


def test_a_session_in_another_currency_is_refused(http: responses.RequestsMock, stripe_adapter: StripeAdapter) -> None:
    expect_session(http, session_json("complete", "paid", currency="usd"))

    with pytest.raises(PermanentError):
        stripe_adapter.fetch_status(SESSION_ID)


# -- cancel and refund ---------------------------------------------------------------------


def test_cancelling_expires_the_session(http: responses.RequestsMock, stripe_adapter: StripeAdapter) -> None:
    http.post(f"{API}/checkout/sessions/{SESSION_ID}/expire", json=session_json("expired"))

    stripe_adapter.cancel(SESSION_ID)

    assert http.calls[0].request.headers["Idempotency-Key"]


def test_cancelling_a_session_that_already_expired_is_not_an_error(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    refused = error_json("invalid_request_error", 'Only Checkout Sessions with a status in ["open"] can be expired.')
    http.post(f"{API}/checkout/sessions/{SESSION_ID}/expire", json=refused, status=400)
    expect_session(http, session_json("expired"))

    stripe_adapter.cancel(SESSION_ID)


def test_cancelling_a_paid_session_is_a_permanent_error(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    refused = error_json("invalid_request_error", 'Only Checkout Sessions with a status in ["open"] can be expired.')
    http.post(f"{API}/checkout/sessions/{SESSION_ID}/expire", json=refused, status=400)
    expect_session(http, session_json("complete", "paid", intent_json("succeeded", charge_json())))

    with pytest.raises(PermanentError):
        stripe_adapter.cancel(SESSION_ID)


def test_a_partial_refund_goes_to_the_sessions_payment_intent_with_the_idempotency_key(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    expect_session(http, session_json("complete", "paid", intent_json("succeeded", charge_json())))
    http.post(
        f"{API}/refunds",
        json={
            "id": "re_3PqWd2",
            "object": "refund",
            "amount": 234,
            "charge": CHARGE_ID,
            "currency": "jpy",
            "payment_intent": INTENT_ID,
            "status": "pending",
        },
    )

    result = stripe_adapter.refund(RefundRequest(SESSION_ID, 234, "過誤納付の還付", "refund-0001-key"))

    form = sent_form(http.calls[1])
    assert http.calls[1].request.headers["Idempotency-Key"] == "refund-0001-key"
    assert form["payment_intent"] == INTENT_ID and form["amount"] == "234"
    assert form["metadata[reason]"] == "過誤納付の還付"
    assert (result.refund_ref, result.outcome, result.amount) == ("re_3PqWd2", Outcome.PENDING, 234)


def test_a_refund_above_what_remains_is_a_permanent_error(
    http: responses.RequestsMock, stripe_adapter: StripeAdapter
) -> None:
    expect_session(http, session_json("complete", "paid", intent_json("succeeded", charge_json())))
    too_much = error_json(
        "invalid_request_error",
        "Refund amount (¥2,000) is greater than unrefunded amount on charge (¥1,234)",
        param="amount",
    )
    http.post(f"{API}/refunds", json=too_much, status=400)

    with pytest.raises(PermanentError):
        stripe_adapter.refund(RefundRequest(SESSION_ID, 2_000, "過誤納", "refund-0002-key"))


# -- configuration -------------------------------------------------------------------------


def test_the_adapter_declares_hosted_page_polling_webhooks_cancel_and_refunds(stripe_adapter: StripeAdapter) -> None:
    assert stripe_adapter.name == "stripe"
    assert stripe_adapter.capabilities == (
        Capability.HOSTED_PAGE
        | Capability.POLL
        | Capability.WEBHOOK
        | Capability.SIGNED_WEBHOOK
        | Capability.CANCEL
        | Capability.REFUND
        | Capability.PARTIAL_REFUND
        | Capability.SETTLEMENT_REPORT
    )
    assert stripe_adapter.simulator is None


@pytest.mark.parametrize(
    "config",
    [
        {"secret_key": "sk_test_x"},
        {"webhook_secret": SECRET},
        {"secret_key": "", "webhook_secret": SECRET},
        {"sandbox": "maybe"},
        {"sandbox": True, "secret_key": "sk_live_51Hxxx"},
    ],
    ids=["no-webhook-secret", "no-secret-key", "empty-secret-key", "sandbox-not-a-boolean", "live-key-in-sandbox"],
)
def test_a_bad_configuration_fails_at_start_up(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_adapter(config)


@pytest.mark.parametrize(("value", "sandbox"), [(True, True), ("true", True), ("0", False), (False, False)])
def test_the_sandbox_flag_may_come_from_the_environment_as_text(value: Any, sandbox: bool) -> None:
    adapter = make_adapter({"sandbox": value, "secret_key": "sk_test_x", "webhook_secret": SECRET})

    assert (adapter.simulator is not None) == sandbox
