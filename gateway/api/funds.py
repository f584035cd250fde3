"""GET /api/v1/funds: the fund types of the caller's municipality and their channels."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from gateway.api.auth import require_api_key, session
from gateway.api.schemas import FundSchema
from gateway.services.reference import list_funds

blp = Blueprint("funds", __name__, url_prefix="/funds", description="Fund types (taxes, premiums, fees)")
blp.before_request(require_api_key)


@blp.route("")
@blp.response(200, FundSchema(many=True))
def list_fund_types() -> Any:
    """List the fund types and the payment channels each accepts."""
    return list_funds(session(), g.municipality_id)
