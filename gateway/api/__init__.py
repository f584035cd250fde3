"""The JSON API under /api/v1 (flask-smorest), described by /api/v1/openapi.json."""
from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from gateway.api.schemas import ErrorSchema
from gateway.boundary import MAX_ID, IdConverter


class GatewayApi(Api):
    """flask-smorest's Api documenting the error envelope gateway.errors really sends."""

    ERROR_SCHEMA = ErrorSchema


def _id_parameter(_converter: Any) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "maximum": MAX_ID}


def register_api(app: Flask) -> None:
    from gateway.api import agency, exceptions, funds, payments, recon, slips
    from gateway.api.auth import document_scopes

    app.config.setdefault("API_SPEC_OPTIONS", {
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
        "info": {"description": "Payment slips and payments of public funds. Amounts are integer yen."},
    })
    api = GatewayApi(app)
    api.register_converter(IdConverter, _id_parameter)
    for blueprint in (funds.blp, slips.blp, payments.blp, agency.blp, exceptions.blp, recon.blp):
        api.register_blueprint(blueprint, url_prefix=f"/api/v1{blueprint.url_prefix or ''}")
    app.extensions["kokin.api"] = api
    with app.app_context():
        document_scopes(api.spec._paths)  # apispec keeps the path items there until to_dict()
    from gateway.api import webhooks

    app.register_blueprint(webhooks.blp)
    from gateway.public import bp as pay_pages  # resident pages (/pay/<token>), not under /api/v1

    app.register_blueprint(pay_pages)
