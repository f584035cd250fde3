"""Bearer API keys: every /api/v1 request acts for the key's municipality, within the key's scopes.

`SCOPE_OF` names the one scope each operation needs (by endpoint; `{adapter}` is the URL's
agency adapter); an endpoint missing from it is refused, never open (and a test checks that
every operation of the API is in it). `document_scopes` writes each operation's scope into
the OpenAPI document.
"""
from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, request

from gateway.errors import Forbidden, Unauthorized
from gateway.services.apikeys import authenticate, authorize

_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")  # werkzeug's <string:number> is OpenAPI's {number}
SCOPE_OF: dict[str, str] = {
    "funds.list_fund_types": "slips:read",
    "slips.list_slips": "slips:read",
    "slips.show_slip": "slips:read",
    "slips.slip_barcode_svg": "slips:read",
    "slips.slip_barcode_png": "slips:read",
    "slips.reissue": "slips:reissue",
    "slips.slip_pdf": "personal-data:read",
    "payments.create_payment": "payments:write",
    "payments.show_payment": "payments:read",
    "agency.upload_agency_file": "agency:import:{adapter}",
    "agency.enter_deposit": "deposits:write",
    "agency.list_remittances": "reconciliation:read",
    "exceptions.list_exception_queue": "reconciliation:read",
    "reconciliation.show_run": "reconciliation:read",
}


def session():  # type: ignore[no-untyped-def]
    return current_app.extensions["kokin.db"].scoped()


def require_api_key() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send Authorization: Bearer <api key>", code="missing_api_key")
    row = authenticate(session(), key.strip())
    template = SCOPE_OF.get(request.endpoint or "")
    if template is None:
        raise Forbidden("this operation is not open to API keys", code="insufficient_scope")
    scope = template.format(**(request.view_args or {}))
    authorize(session(), row, scope, operation=f"{request.method} {request.url_rule}", subject=request.path)
    g.municipality_id = row.municipality_id
    g.api_key_name = row.name


def document_scopes(paths: dict[str, Any]) -> None:
    """Write each operation's scope into the OpenAPI paths (`x-required-scope`, and its description)."""
    for rule in current_app.url_map.iter_rules():
        scope = SCOPE_OF.get(rule.endpoint)
        if scope is None:
            continue
        path = _PARAMETER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = paths.get(path, {}).get(method.lower())
            if operation is not None:
                operation["x-required-scope"] = scope
                note = f"Requires the API key scope `{scope}`."
                operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{note}".strip()
