"""Refunds (還付): requested, approved by a second person, carried out through the provider."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.base import Capability, Outcome, PaymentAdapter, PermanentError, RefundRequest, RetryableError
from domain.errors import DomainError
from domain.lifecycle import PAYMENT, REFUND
from gateway.db import transaction, utcnow
from gateway.errors import Conflict, GatewayError, NotFound, ProviderUnavailable
from gateway.models import Payment, PaymentAttempt, Refund, on_ward
from gateway.services.events import record_event
from gateway.services.journal import reverse_refunded
from gateway.services.reference import ward_ids

OPEN_REFUNDS = ("requested", "approved", "processing", "failed")


def refundable(session: Session, payment: Payment) -> int:
    """Return what may still be refunded: paid (fee included) less refunds done or under way."""
    committed = session.scalar(select(func.coalesce(func.sum(Refund.amount), 0))
                               .where(Refund.municipality_id == payment.municipality_id,
                                      Refund.payment_id == payment.id, Refund.status.in_(OPEN_REFUNDS))) or 0
    return payment.amount + payment.fee_amount - payment.refunded_amount - int(committed)


def request_refund(session: Session, municipality_id: int, payment_id: int, amount: int, *, reason: str,
                   requested_by: str) -> Refund:
    """Request a refund of `amount` yen of the ward's payment; refused above what may still be refunded."""
    with transaction(session):
        payment = _locked_payment(session, municipality_id, payment_id)
        if payment.status not in ("succeeded", "partially_refunded"):
            raise Conflict(f"payment {payment_id} is {payment.status}; only a paid payment is refunded",
                           code="payment_not_refundable")
        available = refundable(session, payment)
        if not 0 < amount <= available:
            raise GatewayError(f"refund of {amount:,} yen refused: {available:,} yen may still be refunded",
                               code="refund_exceeds_payment", status=422)
        refund = Refund(payment_id=payment.id, municipality_id=payment.municipality_id, amount=amount,
                        reason=reason[:200], status=REFUND.initial,
                        requested_by=requested_by)
        session.add(refund)
        session.flush()
        record_event(session, "refund.requested", "refund", refund.id, municipality_id=payment.municipality_id,
                     data={"payment_id": payment.id, "amount": amount}, actor=requested_by)
    return refund


def decide_refund(session: Session, municipality_id: int, refund_id: int, *, approve: bool,
                  decided_by: str) -> Refund:
    """Approve or reject the ward's requested refund; the requester may not decide their own request."""
    with transaction(session):
        refund = _locked_refund(session, municipality_id, refund_id)
        if decided_by == refund.requested_by:
            raise Conflict("a refund is approved by a second person", code="four_eyes_required")
        refund.status = REFUND.next(refund.status, "approve" if approve else "reject")
        refund.approved_by = decided_by if approve else None
        refund.updated_at = utcnow()
        payment = session.get(Payment, (refund.payment_id, municipality_id))
        assert payment is not None
        record_event(session, f"refund.{'approved' if approve else 'rejected'}", "refund", refund.id,
                     municipality_id=payment.municipality_id, data={"amount": refund.amount}, actor=decided_by)
    return refund


def execute_refund(session: Session, adapters: Mapping[str, PaymentAdapter], municipality_id: int, refund_id: int, *,
                   actor: str) -> Refund:
    """Carry out the ward's approved refund at the provider of the payment's successful attempt.

    A refund the provider accepted as pending, or whose answer was lost in an outage, stays
    `processing`; executing it again (the janitor does) asks the provider where it stands,
    with the same idempotency key and the provider's refund id, and never refunds twice.
    """
    events = {"approved": "execute", "failed": "retry", "processing": "resume"}
    with transaction(session):
        refund = _locked_refund(session, municipality_id, refund_id)
        refund.status = REFUND.next(refund.status, events.get(refund.status, "execute"))
        refund.updated_at = utcnow()
        attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.municipality_id == municipality_id,
                                                              PaymentAttempt.payment_id == refund.payment_id,
                                                              PaymentAttempt.status == "succeeded"))
        channel = session.scalar(select(Payment.channel).where(Payment.municipality_id == municipality_id,
                                                               Payment.id == refund.payment_id))
        if attempt is None and channel == "agency":  # stores and apps cannot cancel a bill payment (domain document)
            raise GatewayError(f"refund {refund_id}: a store or app payment is refunded by the ward, by bank "
                               "transfer", code="refund_not_supported", status=422)
        if attempt is None or attempt.provider_ref is None:
            raise NotFound(f"refund {refund_id}: the payment has no successful provider attempt")
        adapter = adapters.get(attempt.adapter)
        if adapter is None or not adapter.capabilities & Capability.REFUND:
            raise GatewayError(f"{attempt.adapter} cannot refund: refund by bank transfer",
                               code="refund_not_supported", status=422)
        request = RefundRequest(provider_ref=attempt.provider_ref, amount=refund.amount,
                                reason=refund.reason, idempotency_key=f"kk-refund-{refund.id}",
                                refund_ref=refund.provider_ref)
    try:
        result = adapter.refund(request)
    except RetryableError as exc:
        raise ProviderUnavailable(f"{attempt.adapter} is not answering; the refund stays processing") from exc
    except PermanentError:
        return _finish_refund(session, municipality_id, refund_id, Outcome.FAILED, provider_ref=None, actor=actor)
    return _finish_refund(session, municipality_id, refund_id, result.outcome, provider_ref=result.refund_ref,
                          actor=actor)


def resume_refunds(session: Session, adapters: Mapping[str, PaymentAdapter], *,
                   older_than: timedelta = timedelta(minutes=5), now: datetime | None = None,
                   limit: int = 500) -> Counter[str]:
    """Ask the provider about every refund left `processing` for `older_than`; counts by result.

    Ward by ward (each ward's refunds are its own node's, docs/scaling.md), up to `limit` each.
    """
    now = now or utcnow()
    waiting = [(ward, refund_id) for ward in ward_ids(session)
               for refund_id in session.scalars(select(Refund.id).where(Refund.municipality_id == ward,
                                                                       Refund.status == "processing",
                                                                       Refund.updated_at < now - older_than)
                                                .order_by(Refund.id).limit(limit))]
    session.rollback()  # no transaction stays open while providers are asked
    results: Counter[str] = Counter()
    for ward, refund_id in waiting:
        try:
            refund = execute_refund(session, adapters, ward, refund_id, actor="janitor")
        except DomainError as exc:
            results[f"refund {exc.code}"] += 1
            continue
        results[f"refund {refund.status}"] += 1
    return results


def _finish_refund(session: Session, municipality_id: int, refund_id: int, outcome: Outcome, *,
                   provider_ref: str | None, actor: str) -> Refund:
    """Record the provider's answer; a pending refund stays `processing` with the provider's id kept."""
    with transaction(session):
        refund = _locked_refund(session, municipality_id, refund_id)
        payment = _locked_payment(session, municipality_id, refund.payment_id)
        refund.provider_ref = provider_ref or refund.provider_ref
        refund.updated_at = utcnow()
        if outcome is Outcome.PENDING:
            record_event(session, "refund.pending", "refund", refund.id, municipality_id=payment.municipality_id,
                         data={"amount": refund.amount}, actor=actor)
            return refund
        refund.status = REFUND.next(refund.status, "succeed" if outcome is Outcome.SUCCEEDED else "fail")
        if refund.status == "succeeded":
            # Public revenue is refunded first, the system usage fee (not revenue) last.
            revenue_before = min(payment.refunded_amount, payment.amount)
            payment.refunded_amount += refund.amount
            reverse_refunded(session, payment, min(payment.refunded_amount, payment.amount) - revenue_before,
                             voided=payment.sale_id is not None, now=utcnow())
            whole = payment.refunded_amount >= payment.amount + payment.fee_amount
            payment.status = PAYMENT.next(payment.status, "refund_all" if whole else "refund_part")
            payment.updated_at = utcnow()
        record_event(session, f"refund.{refund.status}", "refund", refund.id, municipality_id=payment.municipality_id,
                     data={"amount": refund.amount, "payment_status": payment.status}, actor=actor)
    return refund


def _locked_payment(session: Session, municipality_id: int, payment_id: int) -> Payment:
    payment = session.get(Payment, (payment_id, municipality_id), with_for_update={"of": Payment},
                          populate_existing=True)
    if payment is None:
        raise NotFound(f"payment {payment_id} does not exist")
    return payment


def _locked_refund(session: Session, municipality_id: int, refund_id: int) -> Refund:
    refund = session.get(Refund, (refund_id, municipality_id), with_for_update=True, populate_existing=True)
    if refund is None:
        raise NotFound(f"refund {refund_id} does not exist")
    return refund


def refund_queue(session: Session, municipality_id: int) -> list[tuple[Refund, Payment]]:
    """Refunds waiting for a second person's decision, oldest first."""
    return [(refund, payment) for refund, payment in session.execute(
        select(Refund, Payment).join(Payment, on_ward(Refund, "payment_id", Payment))
        .where(Refund.municipality_id == municipality_id, Refund.status == "requested").order_by(Refund.id))]
