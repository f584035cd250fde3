"""POST /webhooks/<adapter>: provider notifications (no API key; the signature authenticates)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from gateway.api.auth import session
from gateway.boundary import raw_body
from gateway.db import utcnow
from gateway.errors import NotFound
from gateway.hardening import limit_body
from gateway.services.webhooks import receive_webhook

blp = Blueprint("webhooks", __name__)
TOKEN_HEADER = "X-Kokin-Webhook-Token"  # noqa: S105 - a header name, not a secret


@blp.route("/webhooks/<string:adapter_name>", methods=["POST"])
@raw_body  # the adapter verifies the bytes before anything parses them
def webhook(adapter_name: str) -> ResponseReturnValue:
    adapter = current_app.extensions["kokin.adapters"].get(adapter_name)
    if adapter is None:
        raise NotFound(f"no adapter {adapter_name!r} is configured")
    limit_body("WEBHOOK_MAX_BYTES")  # refused with 413 before a byte is read when the length says more
    headers = dict(request.headers)
    # Providers that cannot send our header (PayPay) are registered with ?token= in the URL.
    if "token" in request.args and TOKEN_HEADER not in headers:
        headers[TOKEN_HEADER] = request.args["token"]
    outcome = receive_webhook(session(), adapter, headers, request.get_data(cache=False), utcnow())
    return jsonify({"received": outcome}), 200
