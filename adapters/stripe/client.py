"""A thin client for the part of Stripe's API the adapter uses, on the official SDK.

Every call goes through `stripe.StripeClient` and its RequestsClient; sandbox mode hands it
a `requests` session mounted on the simulator, so both modes run the same SDK code. SDK exceptions are
translated to RetryableError / PermanentError here and nowhere else. Returned objects are
plain dicts of Stripe's JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import requests
import stripe

from adapters.base import PermanentError, RetryableError

PRODUCTION_BASE_URL = stripe.DEFAULT_API_BASE
SANDBOX_BASE_URL = "https://api.stripe.test"  # never resolved: the simulator answers in-process
DEFAULT_TIMEOUT = (5.0, 15.0)  # connect, read (s): a resident is waiting for the redirect
DEFAULT_MAX_NETWORK_RETRIES = 1  # the SDK retries with the same Idempotency-Key, so it is safe
SESSION_EXPAND = ["payment_intent.latest_charge"]  # card brand/last4 live on the charge


class StripeApi:
    """Checkout Sessions and refunds on one Stripe account."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        session: requests.Session | None = None,
        max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        # Telemetry would send Stripe this host's platform string and write an id file
        # under ~/.config; a ward's server has no reason to do either.
        stripe.enable_telemetry = False
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base or PRODUCTION_BASE_URL},
            http_client=stripe.RequestsClient(timeout=timeout, session=session),
            max_network_retries=max_network_retries,
        )

    def create_checkout_session(
        self,
        *,
        reference: str,
        amount: int,
        description: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
        expires_at: int | None = None,
    ) -> dict[str, Any]:
        """Open a hosted card-payment page for `amount` yen; idempotent on `idempotency_key`.

        JPY is zero-decimal at Stripe: unit_amount 1234 is 1,234 yen. Stripe replays the
        first response for a repeated key with identical parameters and refuses the key
        with different ones (PermanentError).
        """
        params: dict[str, Any] = {
            "mode": "payment",
            "payment_method_types": ["card"],
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {"currency": "jpy", "unit_amount": amount, "product_data": {"name": description}},
                }
            ],
            "client_reference_id": reference,
            "metadata": {"reference": reference},
            "payment_intent_data": {"metadata": {"reference": reference}},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if expires_at is not None:
            params["expires_at"] = expires_at
        with _translated("create checkout session"):
            session = self._client.v1.checkout.sessions.create(
                params=cast(Any, params), options={"idempotency_key": idempotency_key}
            )
        return session.to_dict()

    def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        """Return the session with its payment intent and latest charge expanded."""
        with _translated("retrieve checkout session"):
            session = self._client.v1.checkout.sessions.retrieve(session_id, params={"expand": SESSION_EXPAND})
        return session.to_dict()

    def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        """Close an open session so it can no longer be paid; Stripe refuses a non-open one."""
        with _translated("expire checkout session"):
            session = self._client.v1.checkout.sessions.expire(session_id)
        return session.to_dict()

    def create_refund(
        self, *, payment_intent: str, amount: int, metadata: Mapping[str, str], idempotency_key: str
    ) -> dict[str, Any]:
        """Refund `amount` yen of a payment intent; idempotent on `idempotency_key`."""
        params: dict[str, Any] = {"payment_intent": payment_intent, "amount": amount, "metadata": dict(metadata)}
        with _translated("create refund"):
            refund = self._client.v1.refunds.create(
                params=cast(Any, params), options={"idempotency_key": idempotency_key}
            )
        return refund.to_dict()

    def list_charge_transactions(self, created_gte: int, created_lt: int,
                                 starting_after: str | None = None) -> dict[str, Any]:
        """One page (100) of charge balance transactions in [gte, lt), each with its charge expanded."""
        params: dict[str, Any] = {"created": {"gte": created_gte, "lt": created_lt}, "type": "charge", "limit": 100,
                                  "expand": ["data.source"]}
        if starting_after:
            params["starting_after"] = starting_after
        with _translated("list balance transactions"):
            return self._client.v1.balance_transactions.list(params=cast(Any, params)).to_dict()

    def retrieve_refund(self, refund_id: str) -> dict[str, Any]:
        """Return a refund as it stands now (a pending one settles later)."""
        with _translated("retrieve refund"):
            return self._client.v1.refunds.retrieve(refund_id).to_dict()


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Turn SDK exceptions into ours; retryable means the same call may succeed later."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise RetryableError(_describe(operation, exc)) from exc
    except stripe.APIError as exc:
        status = exc.http_status
        # 409: a concurrent request with the same Idempotency-Key is still running.
        if status is None or status >= 500 or status == 409:
            raise RetryableError(_describe(operation, exc)) from exc
        raise PermanentError(_describe(operation, exc)) from exc
    except stripe.StripeError as exc:
        # InvalidRequestError, IdempotencyError, AuthenticationError, PermissionError,
        # CardError (not raised by Checkout: a decline happens on Stripe's page).
        raise PermanentError(_describe(operation, exc)) from exc


def _describe(operation: str, exc: stripe.StripeError) -> str:
    status = f" HTTP {exc.http_status}" if exc.http_status else ""
    code = f" [{exc.code}]" if exc.code else ""
    request_id = f" (request {exc.request_id})" if exc.request_id else ""
    return f"stripe {operation}: {type(exc).__name__}{status}{code}: {exc.user_message or exc}{request_id}"
