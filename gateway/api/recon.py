"""GET /api/v1/reconciliation/{date}: the run of a business date with its exceptions (CONTRACT.md)."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import g
from flask_smorest import Blueprint
from marshmallow import fields

from gateway.api.auth import require_api_key, session
from gateway.api.exceptions import ExceptionSchema
from gateway.api.schemas import StrictSchema
from gateway.errors import GatewayError, NotFound
from gateway.models import Municipality
from reconciliation.run import run_record

blp = Blueprint("reconciliation", __name__, url_prefix="/reconciliation",
                description="Nightly reconciliation runs and their exceptions")
blp.before_request(require_api_key)


class ReconRunSchema(StrictSchema):
    business_date = fields.Date(required=True)
    status = fields.String(required=True, metadata={"description": "succeeded, or not_run"})
    runs = fields.Integer(required=True, metadata={"description": "how many times the date was reconciled"})
    finished_at = fields.DateTime(allow_none=True)
    summary = fields.Dict(required=True, metadata={"description": "payments, revenue and fees (yen) by channel "
                                                                 "and fund, open exceptions by kind"})
    exceptions = fields.List(fields.Nested(ExceptionSchema), required=True)


@blp.route("/<string:business_date>")
@blp.response(200, ReconRunSchema)
def show_run(business_date: str) -> Any:
    """The reconciliation of a business date (YYYY-MM-DD) with every exception of that date."""
    try:
        day = date.fromisoformat(business_date)
    except ValueError:
        raise GatewayError(f"{business_date!r} is not a date (YYYY-MM-DD)", code="invalid_date", status=422) from None
    municipality = session().get(Municipality, g.municipality_id)
    assert municipality is not None
    run, exceptions = run_record(session(), municipality.code, day)
    if run is None and not exceptions:
        raise NotFound(f"{day} has not been reconciled", code="not_reconciled")
    return {"business_date": day, "status": run.status if run else "not_run", "runs": run.runs if run else 0,
            "finished_at": run.finished_at if run else None, "summary": run.summary if run else {},
            "exceptions": exceptions}
