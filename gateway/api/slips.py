"""Slips: list, look up (apps and agencies validate a scanned barcode), PDF, barcode images."""
from __future__ import annotations

import io
from typing import Any

from flask import Response, current_app, g
from flask_smorest import Page
from marshmallow import RAISE
from sqlalchemy import func, select

from gateway.api.auth import require_api_key, session
from gateway.api.paging import Blueprint
from gateway.api.schemas import ReissueSchema, SlipQuerySchema, SlipSchema, slip_dict
from gateway.errors import NotFound
from gateway.models import Municipality
from gateway.rendering.barcode_image import barcode_png, barcode_svg
from gateway.services.printing import pay_url, render_pdf
from gateway.services.slips import get_slip, reissue_slip, slip_query

blp = Blueprint("slips", __name__, url_prefix="/slips", description="Payment slips (納付書)")
blp.before_request(require_api_key)


class QueryPage(Page):
    """Page through a SQLAlchemy select without loading it whole."""

    @property
    def items(self) -> list[Any]:
        query = self.collection.offset(self.page_params.first_item).limit(self.page_params.page_size)
        return list(session().scalars(query).unique())

    @property
    def item_count(self) -> int:
        return session().scalar(select(func.count()).select_from(self.collection.order_by(None).subquery())) or 0


def _municipality() -> Municipality:
    muni = session().get(Municipality, g.municipality_id)
    assert muni is not None
    return muni


class _SlipPage(QueryPage):
    @property
    def items(self) -> list[Any]:
        muni = _municipality()
        return [slip_dict(s, pay_url(muni, s)) for s in super().items]


@blp.route("")
@blp.arguments(SlipQuerySchema, location="query", unknown=RAISE)
@blp.response(200, SlipSchema(many=True))
@blp.paginate(_SlipPage, page_size=50, max_page_size=500)
def list_slips(args: dict[str, Any]) -> Any:
    """List slips, filterable by assessment_id, fund_code, fiscal_year and status."""
    return slip_query(g.municipality_id, **args)


@blp.route("/<string:number>")
@blp.response(200, SlipSchema)
def show_slip(number: str) -> Any:
    """Return the latest issue of a slip: amount, deadlines and status to validate a scan."""
    slip = get_slip(session(), g.municipality_id, number)
    return slip_dict(slip, pay_url(_municipality(), slip))


@blp.route("/<string:number>/reissue", methods=["POST"])
@blp.arguments(ReissueSchema)
@blp.response(201, SlipSchema)
def reissue(args: dict[str, Any], number: str) -> Any:
    """Void the slip and issue it again with the reissue count incremented."""
    slip = reissue_slip(session(), g.municipality_id, number, reason=args["reason"], actor=f"api:{g.api_key_name}")
    return slip_dict(slip, pay_url(_municipality(), slip))


@blp.route("/<string:number>/pdf")
@blp.response(200, content_type="application/pdf")
def slip_pdf(number: str) -> Response:
    """Return the printable slip as a PDF."""
    slip = get_slip(session(), g.municipality_id, number)
    out = io.BytesIO()
    render_pdf(session(), current_app.extensions["kokin.cipher"], slip.municipality_id, [slip.id], out)
    return Response(out.getvalue(), mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="slip-{number}-{slip.reissue}.pdf"'})


def _barcode(number: str) -> str:
    slip = get_slip(session(), g.municipality_id, number)
    if slip.barcode is None:
        raise NotFound(f"slip {number} carries no barcode (amount above 300,000 yen)", code="no_barcode")
    return slip.barcode


@blp.route("/<string:number>/barcode.svg")
@blp.response(200, content_type="image/svg+xml")
def slip_barcode_svg(number: str) -> Response:
    """Return the slip's GS1-128 barcode as SVG."""
    return Response(barcode_svg(_barcode(number)), mimetype="image/svg+xml")


@blp.route("/<string:number>/barcode.png")
@blp.response(200, content_type="image/png")
def slip_barcode_png(number: str) -> Response:
    """Return the slip's GS1-128 barcode as PNG."""
    return Response(barcode_png(_barcode(number)), mimetype="image/png")
