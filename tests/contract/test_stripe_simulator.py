"""The sandbox simulator: behaves as Stripe does, signs as the SDK verifies, never uses the network."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses
import stripe

from adapters.base import CheckoutRequest, Outcome, PermanentError, RefundRequest, RetryableError
from adapters.stripe import StripeAdapter, StripeSimulator, make_adapter
from adapters.stripe.client import SANDBOX_BASE_URL, StripeApi
from tests.contract.stripe_payloads import NOW, SECRET, checkout_request


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def sandbox() -> StripeAdapter:
    return make_adapter({"sandbox": True, "secret_key": "sk_test_sandbox", "webhook_secret": SECRET})


def test_the_sandbox_never_makes_an_http_request(http: responses.RequestsMock, sandbox: StripeAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    assert sandbox.simulator is not None
    sandbox.simulator.simulate_payment(checkout.provider_ref)
    sandbox.fetch_status(checkout.provider_ref)
    sandbox.refund(RefundRequest(checkout.provider_ref, 100, "test", "r-1"))
    sandbox.create_checkout(checkout_request("another-key"))

    assert len(http.calls) == 0
    assert checkout.redirect_url == f"https://checkout.stripe.test/c/pay/{checkout.provider_ref}"


def test_the_simulator_signs_deliveries_as_the_stripe_sdk_verifies_them(sandbox: StripeAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    assert sandbox.simulator is not None
    sandbox.simulator.simulate_payment(checkout.provider_ref)

    for headers, body in sandbox.simulator.events_for(checkout.provider_ref, int(time.time())):
        assert stripe.WebhookSignature.verify_header(body, headers["Stripe-Signature"], SECRET, tolerance=300)


def test_the_simulator_sessions_carry_the_fields_the_adapter_sent(sandbox: StripeAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    assert sandbox.simulator is not None

    session = sandbox.simulator.checkout_session(checkout.provider_ref)

    assert session["object"] == "checkout.session" and session["id"].startswith("cs_test_")
    assert (session["amount_total"], session["currency"], session["mode"]) == (1234, "jpy", "payment")
    assert session["client_reference_id"] == "KOKIN-0001"
    assert session["metadata"] == {"reference": "KOKIN-0001"}
    assert (session["status"], session["payment_status"], session["payment_intent"]) == ("open", "unpaid", None)


def test_reusing_an_idempotency_key_for_another_checkout_is_refused_as_stripe_does(sandbox: StripeAdapter) -> None:
    sandbox.create_checkout(checkout_request("shared-key"))
    other = CheckoutRequest(
        "KOKIN-0002", 5_000, "固定資産税", "https://x.example/r", "https://x.example/c", "shared-key"
    )

    with pytest.raises(PermanentError, match="idempotent"):
        sandbox.create_checkout(other)


def test_a_declined_card_leaves_the_session_open_and_another_card_may_pay(sandbox: StripeAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    simulator = sandbox.simulator
    assert simulator is not None

    simulator.simulate_payment(checkout.provider_ref, "declined", card_brand="visa", last4="0002")
    after_decline = sandbox.fetch_status(checkout.provider_ref)
    simulator.simulate_payment(checkout.provider_ref, "paid", card_brand="amex", last4="8431")
    after_payment = sandbox.fetch_status(checkout.provider_ref)

    assert after_decline.outcome is Outcome.PENDING
    assert (after_payment.outcome, after_payment.card_brand, after_payment.card_last4) == (
        Outcome.SUCCEEDED,
        "amex",
        "8431",
    )
    assert simulator.event_types(checkout.provider_ref) == [
        "charge.failed",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


def test_an_expired_session_can_no_longer_be_paid(sandbox: StripeAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    assert sandbox.simulator is not None
    sandbox.cancel(checkout.provider_ref)

    with pytest.raises(ValueError):
        sandbox.simulator.simulate_payment(checkout.provider_ref)
    assert sandbox.simulator.event_types(checkout.provider_ref) == ["checkout.session.expired"]
    sandbox.cancel(checkout.provider_ref)  # again: already expired is fine


def _simulated_api(simulator: StripeSimulator) -> StripeApi:
    session = requests.Session()
    simulator.mount(session, SANDBOX_BASE_URL)
    return StripeApi("sk_test_x", api_base=SANDBOX_BASE_URL, session=session, max_network_retries=0)


def test_a_session_expires_on_its_own_after_24_hours() -> None:
    now = [datetime(2026, 4, 1, 9, 0, tzinfo=UTC)]
    simulator = StripeSimulator(SECRET, clock=lambda: now[0])
    adapter = StripeAdapter(_simulated_api(simulator), SECRET)
    checkout = adapter.create_checkout(checkout_request())

    now[0] += timedelta(hours=23, minutes=59)
    assert adapter.fetch_status(checkout.provider_ref).outcome is Outcome.PENDING
    now[0] += timedelta(minutes=1)
    assert adapter.fetch_status(checkout.provider_ref).outcome is Outcome.EXPIRED


@pytest.mark.parametrize("kind", ["connection", "server_error", "rate_limit"])
def test_a_simulated_outage_surfaces_as_a_retryable_error(sandbox: StripeAdapter, kind: Any) -> None:
    assert sandbox.simulator is not None
    sandbox.simulator.simulate_outage(1, kind)

    with pytest.raises(RetryableError):
        sandbox.create_checkout(checkout_request())
    assert sandbox.create_checkout(checkout_request()).provider_ref  # the outage is over


def test_the_simulator_takes_the_amounts_stripe_takes_in_yen(sandbox: StripeAdapter) -> None:
    def request(amount: int) -> CheckoutRequest:
        return CheckoutRequest("R", amount, "x", "https://x/r", "https://x/c", f"k-{amount}")

    for amount in (50, 99_999_999):
        assert sandbox.create_checkout(request(amount)).provider_ref
    for amount in (49, 100_000_000):
        with pytest.raises(PermanentError):
            sandbox.create_checkout(request(amount))


def test_concurrent_requests_with_one_idempotency_key_open_one_session(sandbox: StripeAdapter) -> None:
    refs: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        refs.append(sandbox.create_checkout(checkout_request("concurrent-key")).provider_ref)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(refs) == 8 and len(set(refs)) == 1


def test_refund_events_reach_the_sessions_deliveries(sandbox: StripeAdapter) -> None:
    checkout = sandbox.create_checkout(checkout_request())
    assert sandbox.simulator is not None
    sandbox.simulator.simulate_payment(checkout.provider_ref)
    sandbox.refund(RefundRequest(checkout.provider_ref, 1234, "還付", "refund-all"))

    headers, body = sandbox.simulator.events_for(checkout.provider_ref, NOW)[-1]
    event = sandbox.verify_webhook(headers, body, NOW)

    assert (event.type, event.outcome, event.reference) == ("charge.refunded", None, "KOKIN-0001")
    assert json.loads(body)["data"]["object"]["refunded"] is True
