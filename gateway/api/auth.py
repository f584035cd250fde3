"""Bearer API keys: every /api/v1 request acts for the key's municipality."""
from __future__ import annotations

from flask import current_app, g, request

from gateway.errors import Unauthorized
from gateway.services.apikeys import authenticate


def session():  # type: ignore[no-untyped-def]
    return current_app.extensions["kokin.db"].scoped()


def require_api_key() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send Authorization: Bearer <api key>", code="missing_api_key")
    row = authenticate(session(), key.strip())
    g.municipality_id = row.municipality_id
    g.api_key_name = row.name
