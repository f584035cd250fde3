"""One error family and one envelope: {"error": {"code", "message", "details"}}."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from domain.errors import DomainError

log = logging.getLogger(__name__)


class GatewayError(DomainError):
    """An expected failure outside the pure core (see domain.errors), with a stable snake_case code."""

    code = "gateway_error"


class NotFound(GatewayError):
    code = "not_found"
    status = 404


class ValidationFailed(GatewayError):
    code = "validation_failed"
    status = 422


class Conflict(GatewayError):
    code = "conflict"
    status = 409


class Unauthorized(GatewayError):
    code = "unauthorized"
    status = 401


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    """Render every error in the contract's envelope; unexpected ones leak nothing."""

    @app.errorhandler(DomainError)
    def _gateway(exc: DomainError) -> tuple[Response, int]:
        return jsonify(error_body(exc.code, exc.message, exc.details)), exc.status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        details: dict[str, Any] = {}
        data = getattr(exc, "data", None)  # webargs/flask-smorest put field errors here
        if isinstance(data, dict) and "messages" in data:
            details = {"fields": data["messages"]}
        code = "validation_failed" if exc.code == 422 else _http_code(exc)
        response = jsonify(error_body(code, exc.description or exc.name, details))
        response.status_code = exc.code or 500
        # flask-smorest's own handler drops Allow on 405; keep it.
        for header, value in exc.get_headers():
            if header.lower() == "allow":
                response.headers["Allow"] = value
        return response

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError) -> tuple[Response, int]:
        if exc.connection_invalidated:  # the server went away; the pool starts afresh
            log.warning("database connection lost; the pool was refreshed")
            return jsonify(error_body("database_unavailable",
                                      "The database connection was lost; send the request again.")), 503
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")
        return jsonify(error_body("internal_error", "An unexpected error occurred.")), 500
