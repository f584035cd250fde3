"""GET /api/v1/exceptions: the exception queue of the caller's municipality, newest first."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint
from marshmallow import fields, validate

from gateway.api.auth import require_api_key, session
from gateway.api.schemas import StrictSchema
from gateway.models import EXCEPTION_KINDS
from gateway.services.exceptions import list_exceptions

blp = Blueprint("exceptions", __name__, url_prefix="/exceptions",
                description="Reconciliation exceptions for accounting staff")
blp.before_request(require_api_key)


class ExceptionQuerySchema(StrictSchema):
    kind = fields.String(validate=validate.OneOf(EXCEPTION_KINDS))
    status = fields.String(validate=validate.OneOf(["open", "pending_approval", "resolved"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ExceptionSchema(StrictSchema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    subject_key = fields.String(required=True)
    business_date = fields.Date(required=True)
    amount = fields.Integer(allow_none=True)
    slip_number = fields.String(allow_none=True)
    payment_id = fields.Integer(allow_none=True)
    agency_report_id = fields.Integer(allow_none=True)
    details = fields.Dict(required=True)
    status = fields.String(required=True)
    created_at = fields.DateTime(required=True)


@blp.route("")
@blp.arguments(ExceptionQuerySchema, location="query")
@blp.response(200, ExceptionSchema(many=True))
def list_exception_queue(query: dict[str, Any]) -> Any:
    """List exceptions, newest first; filter by kind and status."""
    return list_exceptions(session(), g.municipality_id, kind=query.get("kind"), status=query.get("status"),
                           limit=query["limit"])
