"""GET / (what is where) and GET /api/v1/docs (the API document, rendered from the app's OpenAPI spec)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

from gateway.site.apidoc import describe

bp = Blueprint("site", __name__, template_folder="templates", static_folder="static",
               static_url_path="/site-static")
SANDBOX_CONSOLES = "/sandbox/"  # the simulators' own pages, served in sandbox mode


@bp.get("/")
def front() -> Any:
    sandbox = bool(current_app.config.get("SANDBOX"))
    return render_template("site/front.html", sandbox=sandbox, sandbox_url=SANDBOX_CONSOLES)


@bp.get("/api/v1/docs")
def api_docs() -> Any:
    spec = current_app.extensions["kokin.api"].spec.to_dict()
    return render_template("site/api_docs.html", doc=describe(spec))
