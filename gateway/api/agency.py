"""Collection-agency data over the API: staff upload files, enter deposits, see remittances.

`POST /api/v1/agency/{adapter}/imports` takes the file as the raw request body
(`Content-Type: application/octet-stream`, `?filename=`), exactly as the agency sent it.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, g, request
from flask_smorest import Blueprint
from marshmallow import fields, validate

from gateway.api.auth import require_api_key, session
from gateway.api.schemas import DEPOSIT_YEARS_BACK, StatementDate, StrictSchema, Yen
from gateway.boundary import raw_body
from gateway.errors import GatewayError, NotFound
from gateway.hardening import limit_body
from gateway.models import Municipality
from gateway.services.agency_checks import expected_remittances, record_deposit
from gateway.services.agency_import import import_agency_file

blp = Blueprint("agency", __name__, url_prefix="/agency", description="Collection agencies (速報/確報/取消)")
blp.before_request(require_api_key)


class ImportQuerySchema(StrictSchema):
    filename = fields.String(load_default="upload.dat", validate=validate.Length(min=1, max=255))


class ImportResultSchema(StrictSchema):
    adapter = fields.String(required=True)
    import_id = fields.Integer(allow_none=True)
    already_imported = fields.Boolean(required=True)
    records = fields.Integer(required=True)
    total_amount = fields.Integer(required=True, metadata={"description": "yen"})
    repeated = fields.Integer(required=True, metadata={"description": "records applied by earlier files"})
    booked = fields.Integer(required=True)
    confirmed = fields.Integer(required=True)
    cancelled = fields.Integer(required=True)
    exceptions = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class DepositSchema(StrictSchema):
    deposited_on = StatementDate(required=True, metadata={
        "description": f"the bank statement's date, YYYY-MM-DD: within {DEPOSIT_YEARS_BACK} years before today"})
    amount = Yen(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=64))
    account = fields.String(load_default=None, allow_none=True,
                            metadata={"description": "the bank account it arrived on: BBBB-SSS-T-NNNNNNN (bank, "
                                                     "branch, deposit type, account number)"})


class DepositResultSchema(StrictSchema):
    recorded = fields.Boolean(required=True, metadata={"description": "false: this statement line was known"})


class RemittanceSchema(StrictSchema):
    adapter = fields.String(required=True)
    account = fields.String(allow_none=True, metadata={"description": "bank account, BBBB-SSS-T-NNNNNNN; null: "
                                                                      "payments of no fund's account, or deposits "
                                                                      "entered without one"})
    remittance_on = fields.Date(required=True)
    payments = fields.Integer(required=True)
    expected = fields.Integer(required=True)
    received = fields.Integer(required=True)
    difference = fields.Integer(required=True)


def _municipality_code() -> str:
    municipality = session().get(Municipality, g.municipality_id)
    assert municipality is not None
    return municipality.code


def _agency(name: str) -> Any:
    agency = current_app.extensions["kokin.agencies"].get(name)
    if agency is None:
        raise NotFound(f"no agency adapter {name!r} is configured", code="unknown_adapter")
    return agency


@blp.route("/<string:adapter>/imports", methods=["POST"])
@blp.arguments(ImportQuerySchema, location="query")
@blp.response(200, ImportResultSchema)
@raw_body  # the agency's file as sent: its layout reads it
def upload_agency_file(query: dict[str, Any], adapter: str) -> Any:
    """Import an agency file uploaded by staff: validated in full, applied once, atomically."""
    agency = _agency(adapter)
    limit = int(current_app.config["AGENCY_FILE_MAX_BYTES"])
    if (request.content_length or 0) > limit:
        raise GatewayError(f"the file is larger than {limit:,} bytes", code="file_too_large", status=413)
    limit_body("AGENCY_FILE_MAX_BYTES")  # a body sent without its length stops at the limit too
    data = request.get_data(cache=False)
    if not data:
        raise GatewayError("the request body is empty: send the file as the body", code="empty_file", status=422)
    result = import_agency_file(session(), agency, data, municipality_code=_municipality_code(),
                                filename=query["filename"], source="api", actor=f"api:{g.api_key_name}")
    return {**vars(result), "exceptions": dict(result.exceptions)}


@blp.route("/<string:adapter>/deposits", methods=["POST"])
@blp.arguments(DepositSchema)
@blp.response(200, DepositResultSchema)
def enter_deposit(deposit: dict[str, Any], adapter: str) -> Any:
    """Record a deposit (振込) from the agency as the bank statement shows it; a repeat changes nothing."""
    _agency(adapter)
    return {"recorded": record_deposit(session(), _municipality_code(), adapter=adapter,
                                       entered_by=f"api:{g.api_key_name}", **deposit)}


@blp.route("/remittances")
@blp.response(200, RemittanceSchema(many=True))
def list_remittances() -> Any:
    """Expected deposits per agency and planned date (from 確報 data) against what arrived."""
    return [{**vars(r), "difference": r.difference} for r in expected_remittances(session(), _municipality_code())]
