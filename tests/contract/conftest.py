"""The adapters under contract, each in sandbox mode with its simulator.

To put an adapter under the contract suite, add ONE entry to CONTRACT_ADAPTERS: its name,
a factory that builds it in sandbox mode, and a driver class that plays the resident (and
the provider) against that adapter's simulator. A long driver may live in its own module
(`tests/contract/<name>_driver.py`) and be imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import pytest

from adapters.base import Outcome, PaymentAdapter
from adapters.paypay import PayPayAdapter
from adapters.paypay import make_adapter as make_paypay_adapter
from adapters.square import SquareAdapter
from adapters.square import make_adapter as make_square_adapter
from adapters.stripe import StripeAdapter
from adapters.stripe import make_adapter as make_stripe_adapter


class ContractDriver(Protocol):
    """Tells an adapter's simulator what the resident did; knows the provider's own words."""

    outcome_after_decline: Outcome  # what fetch_status says after one declined payment
    unknown_provider_ref: str  # well-formed for the provider, but no such checkout exists

    def pay(self, provider_ref: str) -> None:
        """The resident pays the checkout in full."""

    def decline(self, provider_ref: str) -> None:
        """The resident's payment is declined (card refused, balance short, ...)."""

    def abandon(self, provider_ref: str) -> None:
        """The resident walks away until the checkout expires."""

    def paid_notification(
        self, provider_ref: str, signed_at: datetime, secret: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The provider's signed notification that the checkout was paid (WEBHOOK only).

        Signed at `signed_at` with the adapter's webhook secret, or with `secret` if given.
        """

    def settle_refunds_later(self) -> None:
        """From now on the provider accepts refunds as pending and finishes them afterwards."""


@dataclass(frozen=True)
class ContractAdapter:
    name: str
    build: Callable[[], PaymentAdapter]  # the adapter in sandbox mode
    driver: Callable[[PaymentAdapter], ContractDriver]


class StripeDriver:
    """Plays the resident on the simulated Stripe Checkout page."""

    outcome_after_decline = Outcome.PENDING  # Checkout keeps the page open for another card
    unknown_provider_ref = "cs_test_" + "0" * 58

    def __init__(self, adapter: PaymentAdapter) -> None:
        assert isinstance(adapter, StripeAdapter) and adapter.simulator is not None
        self.simulator = adapter.simulator

    def pay(self, provider_ref: str) -> None:
        self.simulator.simulate_payment(provider_ref, "paid", card_brand="visa", last4="4242")

    def decline(self, provider_ref: str) -> None:
        self.simulator.simulate_payment(provider_ref, "declined", card_brand="mastercard", last4="0002")

    def abandon(self, provider_ref: str) -> None:
        self.simulator.simulate_payment(provider_ref, "expire")

    def paid_notification(
        self, provider_ref: str, signed_at: datetime, secret: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        deliveries = self.simulator.events_for(provider_ref, signed_at, secret=secret)
        kinds = self.simulator.event_types(provider_ref)
        return deliveries[kinds.index("checkout.session.completed")]

    def settle_refunds_later(self) -> None:
        self.simulator.refunds_pending = True


class PayPayDriver:
    """Plays the resident in the PayPay app against the simulated PayPay OPA."""

    outcome_after_decline = Outcome.FAILED  # a dynamic QR payment that fails ends FAILED
    unknown_provider_ref = "KOKIN-UNKNOWN-000000"

    def __init__(self, adapter: PaymentAdapter) -> None:
        assert isinstance(adapter, PayPayAdapter) and adapter.simulator is not None
        self.simulator = adapter.simulator

    def pay(self, provider_ref: str) -> None:
        self.simulator.simulate_payment(provider_ref, "COMPLETED")

    def decline(self, provider_ref: str) -> None:
        self.simulator.simulate_payment(provider_ref, "FAILED")

    def abandon(self, provider_ref: str) -> None:
        self.simulator.simulate_payment(provider_ref, "EXPIRED")

    def paid_notification(
        self, provider_ref: str, signed_at: datetime, secret: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        return self.simulator.notification(provider_ref, sent_at=signed_at, token=secret)

    def settle_refunds_later(self) -> None:
        pass  # PayPay answers a refund CREATED and finishes it afterwards (REFUNDED)


class SquareDriver:
    """Plays the buyer at the simulated Square Terminal."""

    outcome_after_decline = Outcome.PENDING  # the device asks for another touch; the checkout stays open
    unknown_provider_ref = "dhgENdnFOPXqO"

    def __init__(self, adapter: PaymentAdapter) -> None:
        assert isinstance(adapter, SquareAdapter) and adapter.simulator is not None
        self.simulator = adapter.simulator

    def pay(self, provider_ref: str) -> None:
        self.simulator.simulate_device(provider_ref, "start")
        self.simulator.simulate_device(provider_ref, "complete")

    def decline(self, provider_ref: str) -> None:
        self.simulator.simulate_device(provider_ref, "decline")

    def abandon(self, provider_ref: str) -> None:
        self.simulator.simulate_device(provider_ref, "timeout")

    def paid_notification(
        self, provider_ref: str, signed_at: datetime, secret: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        deliveries = self.simulator.events_for(provider_ref, signed_at, secret=secret)
        return next(d for d in deliveries if b'"status":"COMPLETED"' in d[1])

    def settle_refunds_later(self) -> None:
        self.simulator.refunds_pending = True


CONTRACT_ADAPTERS: list[ContractAdapter] = [
    ContractAdapter(
        name="stripe",
        build=lambda: make_stripe_adapter(
            {"sandbox": True, "secret_key": "sk_test_contract", "webhook_secret": "whsec_contract"}
        ),
        driver=StripeDriver,
    ),
    ContractAdapter(
        name="paypay",
        build=lambda: make_paypay_adapter({"sandbox": True, "webhook_token": "contract-webhook-token"}),
        driver=PayPayDriver,
    ),
    ContractAdapter(
        name="square",
        build=lambda: make_square_adapter(
            {"sandbox": True, "signature_key": "contract-signature-key",
             "device_id": "sandbox-device-counter-1", "payment_type": "FELICA_ID"}
        ),
        driver=SquareDriver,
    ),
]


@pytest.fixture(params=CONTRACT_ADAPTERS, ids=lambda entry: entry.name)
def contract_entry(request: pytest.FixtureRequest) -> ContractAdapter:
    entry: ContractAdapter = request.param
    return entry


@pytest.fixture
def adapter(contract_entry: ContractAdapter) -> PaymentAdapter:
    return contract_entry.build()


@pytest.fixture
def driver(contract_entry: ContractAdapter, adapter: PaymentAdapter) -> ContractDriver:
    return contract_entry.driver(adapter)
