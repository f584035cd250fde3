"""POST /api/v1/payments (Idempotency-Key required) and GET /api/v1/payments/{id}."""
from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, request
from flask_smorest import Blueprint

from domain.errors import DomainError
from gateway.api.auth import require_api_key, session
from gateway.api.schemas import PaymentCreateSchema, PaymentSchema, payment_dict
from gateway.errors import GatewayError, NotFound
from gateway.models import Payment, PaymentAttempt
from gateway.services import idempotency
from gateway.services.payments import adapters_by_channel, start_payment

blp = Blueprint("payments", __name__, url_prefix="/payments", description="Payments of slips")
blp.before_request(require_api_key)


@blp.route("", methods=["POST"])
@blp.arguments(PaymentCreateSchema)
@blp.response(201, PaymentSchema)
@blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                      "description": "the same key and body return the same response; kept 48 h"}])
def create_payment(args: dict[str, Any]) -> Any:
    """Open a payment of a slip by card or PayPay; returns where to send the resident."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise GatewayError("the Idempotency-Key header is required", code="missing_idempotency_key", status=400)
    claim = idempotency.claim(session(), g.municipality_id, key, idempotency.request_hash(args))
    if claim.replay is not None:  # already dumped: bypass the response schema
        status, stored = claim.replay
        response = jsonify(stored)
        response.status_code = status
        return response
    assert claim.key_id is not None
    try:
        channels = adapters_by_channel(current_app.extensions["kokin.adapters"], current_app.config["CHANNEL_ADAPTERS"])
        started = start_payment(session(), channels, municipality_id=g.municipality_id,
                                slip_number=args["slip_number"], channel=args["channel"],
                                return_url=args["return_url"], cancel_url=args.get("cancel_url") or args["return_url"],
                                fee_schedules=current_app.config["FEE_SCHEDULES"], actor=f"api:{g.api_key_name}")
    except DomainError as exc:
        if exc.details.get("pay_through") == "eltax":  # where to send the resident instead
            exc.details["pay_url"] = current_app.config["ELTAX_PAY_URL"]
        if exc.status >= 500:
            idempotency.release(session(), g.municipality_id, claim.key_id)
        else:
            idempotency.complete(session(), g.municipality_id, claim.key_id, exc.status,
                                 {"error": {"code": exc.code, "message": exc.message, "details": exc.details}})
        raise
    result = payment_dict(started.payment, [started.attempt])
    idempotency.complete(session(), g.municipality_id, claim.key_id, 201, PaymentSchema().dump(result))
    return result


@blp.route("/<int:payment_id>")
@blp.response(200, PaymentSchema)
def show_payment(payment_id: int) -> Any:
    """Return a payment with its attempts."""
    payment = session().get(Payment, (payment_id, g.municipality_id))
    if payment is None:
        raise NotFound(f"payment {payment_id} does not exist")
    attempts = session().query(PaymentAttempt).filter_by(municipality_id=payment.municipality_id,
                                                         payment_id=payment.id)\
        .order_by(PaymentAttempt.id).all()
    return payment_dict(payment, attempts)
