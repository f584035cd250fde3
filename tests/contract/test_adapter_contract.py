"""One contract, every adapter: what the payment core may rely on, whatever the provider.

Each test runs once per entry in conftest.CONTRACT_ADAPTERS, against the adapter in
sandbox mode; the driver plays the resident on the provider's simulator. Tests of a
capability an adapter does not declare are skipped for it, never passed vacuously.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.base import (
    Capability,
    Checkout,
    CheckoutRequest,
    Outcome,
    PaymentAdapter,
    PermanentError,
    RefundRequest,
    SignatureError,
)
from domain.identifiers import make_attempt_reference, ward_code_of_reference
from tests.contract.conftest import ContractAdapter, ContractDriver

TOKYO = ZoneInfo("Asia/Tokyo")

SIGNED_AT = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
_serial = itertools.count(1)


def checkout_request(amount: int = 3_000, key: str | None = None) -> CheckoutRequest:
    serial = next(_serial)
    return CheckoutRequest(
        reference=f"KOKIN-CONTRACT-{serial:06d}",
        amount=amount,
        description="住民税 令和8年度 第1期",
        return_url="https://pay.example.lg.jp/return",
        cancel_url="https://pay.example.lg.jp/cancel",
        idempotency_key=key or f"contract-{serial:06d}",
    )


def require(adapter: PaymentAdapter, capability: Capability) -> None:
    if capability not in adapter.capabilities:
        pytest.skip(f"{adapter.name} does not declare {capability.name}")


def paid_checkout(
    adapter: PaymentAdapter, driver: ContractDriver, amount: int = 3_000
) -> tuple[Checkout, CheckoutRequest]:
    request = checkout_request(amount)
    checkout = adapter.create_checkout(request)
    driver.pay(checkout.provider_ref)
    return checkout, request


def test_the_adapter_satisfies_the_protocol_and_declares_capabilities_as_flags(adapter: PaymentAdapter) -> None:
    assert isinstance(adapter, PaymentAdapter)
    assert isinstance(adapter.capabilities, Capability)
    assert adapter.capabilities != Capability.NONE


def test_the_adapter_is_named_as_its_entry_point(adapter: PaymentAdapter, contract_entry: ContractAdapter) -> None:
    assert adapter.name == contract_entry.name


def test_the_adapter_shows_the_resident_a_page_or_a_code(adapter: PaymentAdapter) -> None:
    checkout = adapter.create_checkout(checkout_request())

    assert checkout.provider_ref
    if Capability.HOSTED_PAGE in adapter.capabilities:
        assert checkout.redirect_url and checkout.redirect_url.startswith("https://")
    if Capability.QR in adapter.capabilities:
        assert checkout.qr_payload
    if checkout.expires_at is not None:
        assert checkout.expires_at.tzinfo is not None


def test_the_same_idempotency_key_never_opens_a_second_checkout(adapter: PaymentAdapter) -> None:
    request = checkout_request()

    first = adapter.create_checkout(request)
    second = adapter.create_checkout(request)

    assert second.provider_ref == first.provider_ref
    assert second.redirect_url == first.redirect_url
    assert second.qr_payload == first.qr_payload


def test_another_idempotency_key_opens_another_checkout(adapter: PaymentAdapter) -> None:
    first = adapter.create_checkout(checkout_request())
    second = adapter.create_checkout(checkout_request())

    assert second.provider_ref != first.provider_ref


def test_a_new_checkout_is_pending(adapter: PaymentAdapter) -> None:
    checkout = adapter.create_checkout(checkout_request())

    status = adapter.fetch_status(checkout.provider_ref)

    assert status.outcome is Outcome.PENDING
    assert status.provider_ref == checkout.provider_ref


def test_a_paid_checkout_succeeds_with_the_amount_in_whole_yen(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    checkout, request = paid_checkout(adapter, driver, amount=12_345)

    status = adapter.fetch_status(checkout.provider_ref)

    assert status.outcome is Outcome.SUCCEEDED
    assert status.amount == 12_345 and type(status.amount) is int
    assert status.paid_at is not None and status.paid_at.tzinfo is not None


def test_a_declined_payment_is_a_result_not_an_exception(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    checkout = adapter.create_checkout(checkout_request())
    driver.decline(checkout.provider_ref)

    status = adapter.fetch_status(checkout.provider_ref)

    assert status.outcome is driver.outcome_after_decline
    assert status.outcome in (Outcome.FAILED, Outcome.PENDING)


def test_an_abandoned_checkout_expires(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    checkout = adapter.create_checkout(checkout_request())
    driver.abandon(checkout.provider_ref)

    assert adapter.fetch_status(checkout.provider_ref).outcome is Outcome.EXPIRED


def test_a_cancelled_checkout_is_no_longer_pending(adapter: PaymentAdapter) -> None:
    require(adapter, Capability.CANCEL)
    checkout = adapter.create_checkout(checkout_request())

    adapter.cancel(checkout.provider_ref)

    assert adapter.fetch_status(checkout.provider_ref).outcome in (Outcome.CANCELLED, Outcome.EXPIRED)


def test_an_unknown_provider_reference_is_a_permanent_error(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    with pytest.raises(PermanentError):
        adapter.fetch_status(driver.unknown_provider_ref)


def test_a_correctly_signed_notification_is_verified_and_names_the_checkout(
    adapter: PaymentAdapter, driver: ContractDriver
) -> None:
    require(adapter, Capability.WEBHOOK)
    checkout, request = paid_checkout(adapter, driver)
    headers, body = driver.paid_notification(checkout.provider_ref, SIGNED_AT)

    event = adapter.verify_webhook(headers, body, SIGNED_AT + timedelta(seconds=5))

    assert event.event_id
    assert event.reference == request.reference or event.provider_ref == checkout.provider_ref
    assert event.outcome in (Outcome.SUCCEEDED, None)


def test_our_attempt_reference_naming_its_ward_opens_a_checkout_and_comes_back_in_its_notification(
    adapter: PaymentAdapter, driver: ContractDriver
) -> None:
    """The gateway sends `kk-<municipality code>-<hex>` as reference and idempotency key (domain.identifiers)."""
    require(adapter, Capability.WEBHOOK)
    reference = make_attempt_reference("131075")
    request = replace(checkout_request(), reference=reference, idempotency_key=reference)
    checkout = adapter.create_checkout(request)
    driver.pay(checkout.provider_ref)
    headers, body = driver.paid_notification(checkout.provider_ref, SIGNED_AT)

    event = adapter.verify_webhook(headers, body, SIGNED_AT + timedelta(seconds=5))

    assert event.reference == reference and ward_code_of_reference(event.reference) == "131075"
    assert adapter.fetch_status(checkout.provider_ref).outcome is Outcome.SUCCEEDED


def test_a_notification_is_accepted_300_seconds_either_side_of_now(
    adapter: PaymentAdapter, driver: ContractDriver
) -> None:
    require(adapter, Capability.WEBHOOK)
    checkout, _ = paid_checkout(adapter, driver)
    headers, body = driver.paid_notification(checkout.provider_ref, SIGNED_AT)

    adapter.verify_webhook(headers, body, SIGNED_AT + timedelta(seconds=300))
    adapter.verify_webhook(headers, body, SIGNED_AT - timedelta(seconds=300))


def test_a_notification_with_a_tampered_body_is_refused(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    require(adapter, Capability.SIGNED_WEBHOOK)
    checkout, _ = paid_checkout(adapter, driver)
    headers, body = driver.paid_notification(checkout.provider_ref, SIGNED_AT)
    tampered = body.replace(b"3000", b"3001", 1) if b"3000" in body else body + b" "

    with pytest.raises(SignatureError):
        adapter.verify_webhook(headers, tampered, SIGNED_AT)


def test_an_unsigned_notification_is_only_a_hint_to_poll(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    require(adapter, Capability.WEBHOOK)
    if Capability.SIGNED_WEBHOOK in adapter.capabilities:
        pytest.skip("signed notifications may carry an outcome")
    checkout, _ = paid_checkout(adapter, driver)
    headers, body = driver.paid_notification(checkout.provider_ref, SIGNED_AT)

    assert adapter.verify_webhook(headers, body, SIGNED_AT).outcome is None


def test_a_notification_signed_with_another_secret_is_refused(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    require(adapter, Capability.WEBHOOK)
    checkout, _ = paid_checkout(adapter, driver)
    headers, body = driver.paid_notification(checkout.provider_ref, SIGNED_AT, secret="whsec_someone_else")

    with pytest.raises(SignatureError):
        adapter.verify_webhook(headers, body, SIGNED_AT)


def test_a_notification_signed_301_seconds_away_from_now_is_refused(
    adapter: PaymentAdapter, driver: ContractDriver
) -> None:
    require(adapter, Capability.WEBHOOK)
    checkout, _ = paid_checkout(adapter, driver)
    headers, body = driver.paid_notification(checkout.provider_ref, SIGNED_AT)

    with pytest.raises(SignatureError):
        adapter.verify_webhook(headers, body, SIGNED_AT + timedelta(seconds=301))
    with pytest.raises(SignatureError):
        adapter.verify_webhook(headers, body, SIGNED_AT - timedelta(seconds=301))


def test_a_paid_checkout_can_be_refunded_in_full(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    require(adapter, Capability.REFUND)
    checkout, request = paid_checkout(adapter, driver)

    result = adapter.refund(RefundRequest(checkout.provider_ref, request.amount, "二重納付", "refund-full"))

    assert result.outcome in (Outcome.SUCCEEDED, Outcome.PENDING)
    assert result.amount == request.amount and result.refund_ref


def test_a_repeated_refund_request_refunds_once(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    require(adapter, Capability.PARTIAL_REFUND)
    checkout, _ = paid_checkout(adapter, driver, amount=3_000)
    request = RefundRequest(checkout.provider_ref, 1_000, "過誤納", "refund-once")

    first = adapter.refund(request)
    second = adapter.refund(request)
    rest = adapter.refund(RefundRequest(checkout.provider_ref, 2_000, "過誤納", "refund-rest"))

    assert second.refund_ref == first.refund_ref
    assert rest.amount == 2_000


def test_a_pending_refund_asked_after_by_its_ref_reports_where_it_stands_and_refunds_nothing_more(
    adapter: PaymentAdapter, driver: ContractDriver
) -> None:
    require(adapter, Capability.PARTIAL_REFUND)
    checkout, _ = paid_checkout(adapter, driver, amount=3_000)
    driver.settle_refunds_later()
    request = RefundRequest(checkout.provider_ref, 1_000, "過誤納", "refund-later")

    first = adapter.refund(request)
    later = adapter.refund(RefundRequest(**{**vars(request), "refund_ref": first.refund_ref}))

    assert first.outcome is Outcome.PENDING
    assert (later.refund_ref, later.outcome, later.amount) == (first.refund_ref, Outcome.SUCCEEDED, 1_000)
    with pytest.raises(PermanentError):  # the 1,000 yen were refunded once: 2,000 remain
        adapter.refund(RefundRequest(checkout.provider_ref, 2_001, "過誤納", "refund-too-much"))
    assert adapter.refund(RefundRequest(checkout.provider_ref, 2_000, "過誤納", "refund-rest")).amount == 2_000


def test_partial_refunds_may_add_up_to_the_amount_paid(adapter: PaymentAdapter, driver: ContractDriver) -> None:
    require(adapter, Capability.PARTIAL_REFUND)
    checkout, _ = paid_checkout(adapter, driver, amount=3_000)

    first = adapter.refund(RefundRequest(checkout.provider_ref, 1_200, "過誤納", "refund-part-1"))
    second = adapter.refund(RefundRequest(checkout.provider_ref, 1_800, "過誤納", "refund-part-2"))

    assert (first.amount, second.amount) == (1_200, 1_800)
    assert first.refund_ref != second.refund_ref


def test_a_partial_refund_above_the_remaining_amount_is_a_permanent_error(
    adapter: PaymentAdapter, driver: ContractDriver
) -> None:
    require(adapter, Capability.PARTIAL_REFUND)
    checkout, _ = paid_checkout(adapter, driver, amount=3_000)
    adapter.refund(RefundRequest(checkout.provider_ref, 2_000, "過誤納", "refund-first"))

    with pytest.raises(PermanentError):
        adapter.refund(RefundRequest(checkout.provider_ref, 1_001, "過誤納", "refund-too-much"))


def test_refunding_a_checkout_that_was_never_paid_is_a_permanent_error(adapter: PaymentAdapter) -> None:
    require(adapter, Capability.REFUND)
    checkout = adapter.create_checkout(checkout_request())

    with pytest.raises(PermanentError):
        adapter.refund(RefundRequest(checkout.provider_ref, 3_000, "過誤納", "refund-unpaid"))


def test_a_paid_checkout_is_in_the_settlement_report_of_its_day_with_its_reference(
    adapter: PaymentAdapter, driver: ContractDriver
) -> None:
    require(adapter, Capability.SETTLEMENT_REPORT)
    checkout, request = paid_checkout(adapter, driver, amount=3_040)
    today = datetime.now(UTC).astimezone(TOKYO).date()

    report = adapter.settlement_report(today)

    ours = [entry for entry in report if entry.reference == request.reference]
    assert len(ours) == 1
    assert ours[0].amount == 3_040 and ours[0].fee >= 0 and ours[0].provider_payment_id
    assert all(e.reference != request.reference for e in adapter.settlement_report(today - timedelta(days=1)))
