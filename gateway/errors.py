"""The error catalogue and its one envelope: {"error": {"code", "message", "details"}}.

Every expected failure is a GatewayError: its `code` is part of the API (clients branch on
it; never rename one, add a new one) and its `status` the HTTP answer. The classes are
grouped by what failed; each documents when it is raised. Anything that is not a
GatewayError is unexpected: logged, and answered with a generic 500 that leaks nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, jsonify, make_response, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

# IllegalTransition (illegal_transition, 409), an event a state machine does not allow in the
# current state, is defined in the pure core, of the same family, and named in the catalogue too.
from domain.errors import DomainError
from domain.errors import IllegalTransition as IllegalTransition

if TYPE_CHECKING:
    from domain.layouts import LineError

log = logging.getLogger(__name__)


class GatewayError(DomainError):
    """An expected failure with a stable snake_case code (API: never renamed) and an HTTP status.

    Raised as is with `code=` and `status=` for a one-off refusal; a failure that callers
    catch by type, or that several places raise, has a class in the catalogue below. Its
    root, DomainError, is pure: the domain's own refusals (IllegalTransition) are of the
    same family.
    """

    code = "gateway_error"


# -- The general kinds; raised with a more precise `code=` where one helps the client -------


class ValidationFailed(GatewayError):
    """The request is well formed but its values are not acceptable."""

    code = "validation_failed"
    status = 422


class NotFound(GatewayError):
    """The thing named does not exist, or not for this municipality."""

    code = "not_found"
    status = 404


class Conflict(GatewayError):
    """The thing exists but its state forbids the request (a paid slip, a decided refund)."""

    code = "conflict"
    status = 409


class Unauthorized(GatewayError):
    """No credentials, or credentials nobody issued (API keys)."""

    code = "unauthorized"
    status = 401


class SignInRefused(GatewayError):
    """A staff sign-in refused: unknown name, wrong password, a lock or a wrong code alike (nothing to tell apart)."""

    code = "sign_in_refused"
    status = 401

    def __init__(self) -> None:
        super().__init__("sign-in refused")


class SignInThrottled(GatewayError):
    """Too many failed staff sign-ins from one address lately; `retry_after` seconds until the next try."""

    code = "sign_in_throttled"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins from this address; retry in {retry_after} s",
                         details={"retry_after": retry_after})
        self.retry_after = retry_after


class SignInExpired(GatewayError):
    """The step between a staff password and its second factor has expired (or was revoked): sign in again."""

    code = "sign_in_expired"
    status = 401

    def __init__(self) -> None:
        super().__init__("the sign-in step has expired; sign in again")


class Forbidden(GatewayError):
    """Credentials that are valid but do not allow this operation (an API key without its scope)."""

    code = "forbidden"
    status = 403


class SlipNotPayable(Conflict):
    """The slip's instalment was closed by the core system (paid elsewhere, cancelled): it takes no payment.

    `details` names the `closed_reason` (paid_elsewhere or cancelled) and `closed_on`.
    """

    code = "slip_not_payable"
    status = 409


class SlipExpired(Conflict):
    """The slip is past its store deadline (支払期限, Asia/Tokyo business date): the resident needs a new slip.

    `details` names the `store_deadline`.
    """

    code = "slip_expired"
    status = 409


# -- Requests: idempotency and provider notifications ----------------------------------------


class MalformedRequest(GatewayError):
    """A request refused at the boundary (gateway.boundary) before any view: screens answer their error page."""

    code = "malformed_request"
    status = 400


class InvalidCharacters(MalformedRequest):
    """Text no database can store: a NUL character, or a lone surrogate from a JSON escape.

    `details` names `where` (path, query, form, json, header) and, but for the path, the `field`.
    """

    code = "invalid_characters"
    status = 400


class JsonTooDeep(MalformedRequest):
    """A JSON body nested deeper than any document of the API (domain.inputs.MAX_JSON_DEPTH)."""

    code = "json_too_deep"
    status = 400


class IdempotencyConflict(GatewayError):
    """An Idempotency-Key used again with a different request body."""

    code = "idempotency_conflict"
    status = 422


class IdempotencyInProgress(GatewayError):
    """The first request with this Idempotency-Key has not finished; send it again later."""

    code = "idempotency_in_progress"
    status = 409


class InvalidSignature(GatewayError):
    """A provider notification whose signature or token does not verify."""

    code = "invalid_signature"
    status = 400


class MalformedNotification(GatewayError):
    """A provider notification that verifies but cannot be read; recorded (audit event webhook.malformed).

    Answered 400 to providers whose signed notifications carry outcomes (Stripe, Square): they
    deliver again on any status but 2xx (Stripe for up to 3 days), so a corrected gateway
    still applies it. A notification that is only a hint to poll (PayPay) is acknowledged
    instead (`{"received": "rejected"}`): polling settles the attempt.
    """

    code = "malformed_notification"
    status = 400


# -- Payments, attempts and refunds at the providers -----------------------------------------


class ProviderUnavailable(GatewayError):
    """The provider could not be reached or failed transiently; the same call may succeed later."""

    code = "provider_unavailable"
    status = 503


class ProviderRejected(GatewayError):
    """The provider refused the request for good (not a decline: a decline is a result)."""

    code = "provider_rejected"
    status = 502


# -- Files in: each is validated whole and applied whole, or not at all ----------------------


class LedgerFileRejected(GatewayError):
    """An assessments or status-changes file from the core system with errors; nothing applied."""

    code = "ledger_file_rejected"
    status = 422

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"ledger file rejected with {len(errors)} error(s); nothing was applied",
                         details={"errors": [str(e) for e in errors]})
        self.errors = errors


class AgencyFileInvalid(GatewayError):
    """A collection-agency (or eLTAX) file with errors; nothing applied."""

    code = "agency_file_rejected"
    status = 422

    def __init__(self, adapter: str, errors: list[Any]) -> None:
        super().__init__(f"{adapter} file rejected with {len(errors)} error(s); nothing was applied",
                         details={"errors": [str(e) for e in errors]})
        self.errors = errors


class DepositFileRejected(GatewayError):
    """A bank deposits file with errors; nothing recorded."""

    code = "deposit_file_rejected"
    status = 422

    def __init__(self, errors: list[Any]) -> None:
        super().__init__(f"deposit file rejected with {len(errors)} error(s); nothing was recorded",
                         details={"errors": [str(e) for e in errors]})


class SettlementFileInvalid(GatewayError):
    """A provider's settlement report that cannot be read; nothing stored."""

    code = "settlement_file_rejected"
    status = 422


# -- Files out ---------------------------------------------------------------------------------


class ReceiptsNotWritable(GatewayError):
    """A receipt whose value the layout cannot hold (too long, out of range, not encodable)."""

    code = "receipts_not_writable"
    status = 422


class RevenueNotWritable(GatewayError):
    """A counter revenue line the layout cannot hold, or counter records that do not add up to their sales' lines."""

    code = "counter_revenue_not_writable"
    status = 422


class InvalidField(GatewayError):
    """A form's field that cannot be used; `field` names it, so a page can say which."""

    code = "invalid_field"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, details={"field": field})
        self.field = field


class InvalidFilter(InvalidField):
    """A filter of the exception queue the queue cannot use."""

    code = "invalid_filter"


class InvalidSearch(InvalidField):
    """A search criterion that cannot be used, or none at all (field ``criteria``)."""

    code = "invalid_search"


class BulkRefused(GatewayError):
    """A bulk action on exceptions changed nothing: these could not take it, each with its refusal's code."""

    code = "bulk_refused"
    status = 409

    def __init__(self, refusals: list[tuple[int, str]]) -> None:
        listed = "; ".join(f"#{exception_id}: {why}" for exception_id, why in refusals[:20])
        super().__init__(f"nothing was changed: {len(refusals)} of the selected cannot take this action ({listed})",
                         details={"refused": [{"id": i, "why": why} for i, why in refusals]})
        self.refusals = refusals


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


HtmlErrorPage = Callable[[Exception, int], Any]  # (the error, its HTTP status) -> a response
HTML_PAGES = "kokin.html_error_pages"


def html_error_pages(app: Flask, prefix: str, render: HtmlErrorPage) -> None:
    """Answer errors under the path `prefix` (screens people read) with `render`'s HTML page, not JSON.

    A request that asks for JSON first (a page's script polling) keeps the envelope, and so
    does everything under /api whatever its prefix.
    """
    app.extensions.setdefault(HTML_PAGES, {})[prefix.rstrip("/")] = render


def _html_page(exc: Exception, status: int) -> Any | None:
    """The HTML page of a screen's error, or None where the JSON envelope answers."""
    path = request.path
    if path.startswith("/api/") or request.accept_mimetypes.best_match(
            ["text/html", "application/json"]) == "application/json":
        return None
    pages: dict[str, HtmlErrorPage] = current_app.extensions.get(HTML_PAGES, {})
    for prefix, render in pages.items():
        if path == prefix or path.startswith(prefix + "/"):
            try:
                response = make_response(render(exc, status))
            except Exception:  # the page itself failed (the database gone): the envelope, which needs nothing
                log.exception("the error page of %s could not be rendered", prefix)
                return None
            if isinstance(exc, HTTPException):
                response.headers.update({h: v for h, v in exc.get_headers() if h.lower() == "allow"})
            return response
    return None


def register_error_handlers(app: Flask) -> None:
    """Render every error in the contract's envelope (screens: their HTML page); unexpected ones leak nothing."""

    @app.errorhandler(DomainError)
    def _gateway(exc: DomainError) -> Any:
        page = _html_page(exc, exc.status)
        if page is not None:
            return page
        return jsonify(error_body(exc.code, exc.message, exc.details)), exc.status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        page = _html_page(exc, exc.code or 500)
        if page is not None:
            return page
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
    def _database(exc: DBAPIError) -> Any:
        if exc.connection_invalidated:  # the server went away; the pool starts afresh
            log.warning("database connection lost; the pool was refreshed")
            page = _html_page(exc, 503)
            if page is not None:
                return page
            return jsonify(error_body("database_unavailable",
                                      "The database connection was lost; send the request again.")), 503
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unexpected error")
        page = _html_page(exc, 500)
        if page is not None:
            return page
        return jsonify(error_body("internal_error", "An unexpected error occurred.")), 500
