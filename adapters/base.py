"""The adapter protocol: what the payment core asks of every provider, in its own terms.

Value objects are frozen dataclasses; amounts are integer yen. A decline is a result
(`Outcome.FAILED`), never an exception; exceptions mean the transport or the contract
failed, and say whether trying again may help (`RetryableError`) or not (`PermanentError`).
Capabilities are declared as flags, never discovered by trying.
"""
from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from domain.inputs import MAX_JSON_DEPTH, json_too_deep


class Capability(enum.Flag):
    NONE = 0
    HOSTED_PAGE = enum.auto()  # redirect the resident to the provider's page
    QR = enum.auto()  # show a QR / deep link the resident opens in an app
    TERMINAL = enum.auto()  # a device at the counter
    POLL = enum.auto()  # fetch_status tells the truth about an attempt
    WEBHOOK = enum.auto()  # the provider notifies us; verify_webhook authenticates the sender
    SIGNED_WEBHOOK = enum.auto()  # ... and the body itself is signed: tampering is detected.
    # Without SIGNED_WEBHOOK a notification is only a hint to poll (PayPay): it never
    # changes money by what its body says.
    CANCEL = enum.auto()  # an open attempt can be cancelled
    REFUND = enum.auto()  # a completed payment can be refunded in full
    PARTIAL_REFUND = enum.auto()  # ... or in part
    SETTLEMENT_REPORT = enum.auto()  # settlement_report(day) lists the payments the provider settled


class Outcome(enum.Enum):
    PENDING = "pending"  # the resident has not finished
    SUCCEEDED = "succeeded"  # money accepted by the provider
    FAILED = "failed"  # declined or errored; a new attempt may follow
    EXPIRED = "expired"  # abandoned; the provider will not accept it any more
    CANCELLED = "cancelled"  # cancelled by us or the resident
    UNKNOWN = "unknown"  # the provider could not say; ask again later


@dataclass(frozen=True)
class CheckoutRequest:
    reference: str  # our attempt's reference, unique, <= 64 ASCII characters
    amount: int  # yen, including any system usage fee charged to the payer
    description: str  # shown to the resident, no personal data
    return_url: str  # where the resident comes back to
    cancel_url: str
    idempotency_key: str  # the same key never creates a second checkout
    # TERMINAL only (a device at the counter); other adapters ignore both:
    device_id: str | None = None  # the provider's id of the paired device to take the payment
    payment_type: str | None = None  # the provider's word for what the device takes (e.g. FELICA_ID)


@dataclass(frozen=True)
class Checkout:
    provider_ref: str  # the provider's id of this checkout
    redirect_url: str | None = None  # HOSTED_PAGE
    qr_payload: str | None = None  # QR: the text to encode or the deep link
    expires_at: datetime | None = None


@dataclass(frozen=True)
class PaymentStatus:
    provider_ref: str
    outcome: Outcome
    amount: int | None = None  # what the provider accepted, yen
    paid_at: datetime | None = None  # when the provider accepted it (timezone-aware)
    card_brand: str | None = None  # never more of a card than brand and last four
    card_last4: str | None = None
    raw_status: str = ""  # the provider's own word, for people reading logs


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str  # the provider's id of this notification: dedupe on (adapter, event_id)
    type: str  # the provider's event type
    reference: str | None  # our attempt reference, when the event names it
    provider_ref: str | None
    outcome: Outcome | None  # what the event says, if anything; poll when None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RefundRequest:
    provider_ref: str  # of the payment to refund
    amount: int  # yen; the full amount or, with PARTIAL_REFUND, less
    reason: str
    idempotency_key: str
    # The provider's id of this refund from an earlier call that left it pending (or whose
    # answer was lost): the adapter reports where that refund stands and never refunds again.
    refund_ref: str | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_ref: str
    outcome: Outcome  # SUCCEEDED, PENDING or FAILED
    amount: int


@dataclass(frozen=True)
class SettledPayment:
    """A payment as the provider's settlement report lists it (SETTLEMENT_REPORT)."""

    provider_payment_id: str
    reference: str | None  # our attempt reference, when the provider carries it
    amount: int  # yen, gross
    payment_type: str  # the brand or method actually used
    settled_at: datetime
    fee: int = 0  # yen the provider keeps out of its payout (public funds expect gross: an exception)


WEBHOOK_TOLERANCE_SECONDS = 300  # a notification's signed time may be this far from now


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Return a header's value whatever the case of its name (HTTP names are case-insensitive)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def load_json(body: bytes, what: str) -> Any:
    """Parse a verified notification body; PermanentError when it is not JSON or nests absurdly deep.

    The depth is checked on the bytes before parsing (domain.inputs): Python's parser
    recurses once per level and a body nested thousands deep would exhaust the stack.
    """
    if json_too_deep(body):
        raise PermanentError(f"{what}: notification body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PermanentError(f"{what}: notification body is not JSON") from exc


class AdapterError(Exception):
    """The provider could not be used as agreed."""

    retryable = False


class RetryableError(AdapterError):
    """Timeout, 5xx, rate limit: the same call may succeed later."""

    retryable = True


class PermanentError(AdapterError):
    """Bad request, bad credentials, unknown reference: trying again will not help."""


class SignatureError(PermanentError):
    """A notification whose signature, secret or timestamp does not verify."""


@runtime_checkable
class PaymentAdapter(Protocol):
    name: str
    capabilities: Capability

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Open a checkout at the provider; idempotent on request.idempotency_key."""
        ...

    def fetch_status(self, provider_ref: str) -> PaymentStatus:
        """Ask the provider what became of a checkout (POLL)."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """Verify the raw bytes' signature in constant time, then parse (WEBHOOK).

        Raises SignatureError for a bad signature, wrong secret or a timestamp more than
        300 s from `now`; nothing is parsed before the signature holds.
        """
        ...

    def cancel(self, provider_ref: str) -> None:
        """Cancel an open checkout (CANCEL)."""
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund a completed payment in full or in part (REFUND, PARTIAL_REFUND)."""
        ...

    def settlement_report(self, day: date) -> list[SettledPayment]:
        """The payments completed on `day` (Asia/Tokyo) as the provider will settle them (SETTLEMENT_REPORT)."""
        ...


class AdapterFactory(Protocol):
    def __call__(self, config: Mapping[str, Any]) -> PaymentAdapter: ...
