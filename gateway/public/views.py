"""GET /pay/<token> (the slip), POST /pay/<token>/card|paypay (start paying), GET /pay/<token>/result.

Double submits: every pay form carries its own random nonce, claimed through the
idempotency service as the key `pay-page:<nonce>`. A second POST of the same form (a
double click, a resubmitted page) replays the first one's checkout instead of opening
another; while the first is still running it gets a "being set up" message.
"""
from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import segno
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from adapters.base import PermanentError, RetryableError
from domain.channels import gateway_checkouts, paid_through_eltax
from domain.errors import DomainError
from gateway.errors import GatewayError, MalformedRequest, NotFound
from gateway.fees import system_fee
from gateway.i18n import current_language, label
from gateway.models import Municipality, Payment, PaymentAttempt, Slip
from gateway.public import csrf
from gateway.public.errors import error_page
from gateway.public.present import (
    ERROR_MESSAGES,
    ERROR_OTHER,
    ERROR_TITLE,
    NOT_FOUND,
    NOT_FOUND_TITLE,
    NOT_ON_THIS_PAGE_ELTAX,
    SLIP_STATUS,
    closed_notice,
    date_label,
    fiscal_year_label,
    installment_label,
    yen,
)
from gateway.services import idempotency, payments
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import ONLINE_CHANNELS, adapters_by_channel, is_expired, start_payment
from gateway.services.slips import get_slip_by_token

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__, template_folder="templates", static_folder="static",
               static_url_path="/pay-static")
NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")
FAILED_ATTEMPTS = ("failed", "expired", "cancelled")


def _session():  # type: ignore[no-untyped-def]
    return current_app.extensions["kokin.db"].scoped()


def _lang() -> str:
    return current_language()  # the catalogue's choice: ?lang on these pages (gateway.i18n.select_locale)


@bp.context_processor
def _page_globals() -> dict[str, Any]:
    lang = _lang()
    args = dict(request.view_args or {})
    if lang != "en":
        args["lang"] = "en"
    switch = url_for(request.endpoint or "public.show_slip", **args)
    return {"lang": lang, "switch_url": switch, "closed_notice": closed_notice, "SLIP_STATUS": SLIP_STATUS,
            "csrf_token": csrf.csrf_token, "lang_args": {"lang": "en"} if lang == "en" else {}}


@bp.after_request
def _csrf_cookie(response: Response) -> Response:
    # no-store (payment state changes under the resident's feet: Back must fetch the page again)
    # is gateway.hardening's, on every page.
    return csrf.set_cookie(response)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Any:
    if isinstance(exc, HTTPException):
        return exc
    if isinstance(exc, MalformedRequest):  # refused at the boundary: the pages' error page with its 400
        return error_page(exc, exc.status)
    log.exception("unexpected error on a pay page")
    return render_template("public/message.html", title=ERROR_TITLE, message=ERROR_OTHER), 500


@bp.get("/pay/<token>")
def show_slip(token: str) -> Any:
    slip = _slip_or_none(token)
    if slip is None:
        return _not_found()
    return render_template("public/slip.html", slip=_summary(slip), channels=_channels(slip),
                           eltax_url=_eltax_url(slip),
                           nonces={channel: secrets.token_urlsafe(16) for channel in ONLINE_CHANNELS})


@bp.post("/pay/<token>/<any(card, paypay):channel>")
def start(token: str, channel: str) -> Any:
    slip = _slip_or_none(token)
    if slip is None:
        return _not_found()
    if not csrf.is_valid(request) or not NONCE.fullmatch(request.form.get("nonce", "")):
        return _error(slip, "csrf", 400)
    if slip.status == "closed" or slip.assessment.closed_reason is not None:
        return _closed(slip)
    if slip.status != "issued":
        return _error(slip, f"slip_{slip.status}", 409)
    if paid_through_eltax(slip.assessment.fund_type.channels):  # a page kept from before the fund moved to eLTAX
        return render_template("public/message.html", slip=_summary(slip), title=ERROR_TITLE,
                               message=NOT_ON_THIS_PAGE_ELTAX, eltax_url=current_app.config["ELTAX_PAY_URL"]), 422
    if is_expired(slip, payments.business_today()):
        return _error(slip, "slip_expired", 409)
    try:
        attempt = _start_once(slip, channel, request.form["nonce"])
    except DomainError as exc:
        if exc.status >= 500:
            log.warning("pay page: %s payment of slip %s not started: %s", channel, slip.id, exc.code)
        return _error(slip, exc.code, exc.status)
    if channel == "card" and attempt.redirect_url:
        return redirect(attempt.redirect_url, code=303)
    if channel == "paypay" and attempt.qr_payload:
        qr = segno.make(attempt.qr_payload, error="m", encoding="utf-8")
        svg = Markup(qr.svg_inline(scale=4, border=2, omitsize=True, svgclass="qr", title="PayPay QR"))  # noqa: S704
        return render_template("public/paypay.html", slip=_summary(slip), qr_svg=svg, deeplink=attempt.qr_payload)
    return _error(slip, "provider_rejected", 502)


@bp.get("/pay/<token>/result")
def result(token: str) -> Any:
    slip = _slip_or_none(token)
    if slip is None:
        return _not_found()
    payment, attempt = _latest(slip)
    if attempt is not None and attempt.status in ("pending", "unknown") and attempt.provider_ref:
        _poll(attempt.adapter, attempt.provider_ref, slip.municipality_id)
        slip = get_slip_by_token(_session(), token)
        payment, attempt = _latest(slip)
    if slip.status == "paid" or (payment is not None and payment.status == "succeeded"):
        state = "paid"
    elif attempt is None:
        state = "none"
    else:
        state = "failed" if attempt.status in FAILED_ATTEMPTS else "pending"
    return render_template("public/result.html", slip=_summary(slip), state=state)


def _slip_or_none(token: str) -> Slip | None:
    try:
        return get_slip_by_token(_session(), token)
    except NotFound:
        return None


def _not_found() -> tuple[str, int]:
    return render_template("public/message.html", title=NOT_FOUND_TITLE, message=NOT_FOUND), 404


def _error(slip: Slip, code: str, status: int) -> tuple[str, int]:
    return render_template("public/message.html", slip=_summary(slip), title=ERROR_TITLE,
                           message=ERROR_MESSAGES.get(code, ERROR_OTHER)), status


def _closed(slip: Slip) -> tuple[str, int]:
    """The instalment was paid elsewhere or cancelled: say so, and why, instead of a checkout."""
    summary = _summary(slip)
    return render_template("public/message.html", slip=summary, title=ERROR_TITLE,
                           message=closed_notice(summary["closed_reason"], summary["closed_on"])), 409


def _summary(slip: Slip) -> dict[str, Any]:
    """Return what the page shows of a slip: no personal data, the URL may be shared."""
    lang = _lang()
    fund = slip.assessment.fund_type
    municipality = _session().get(Municipality, slip.municipality_id)
    return {"token": slip.pay_token, "status": slip.status, "municipality": municipality.name,
            "fund": fund.name_en if lang == "en" else fund.name,
            "fiscal_year": fiscal_year_label(slip.assessment.fiscal_year, lang),
            "installment": installment_label(slip.assessment.installment, lang),
            "amount": yen(slip.amount), "due_date": date_label(slip.due_date, lang),
            "closed_reason": slip.assessment.closed_reason,
            "closed_on": None if slip.assessment.closed_on is None else date_label(slip.assessment.closed_on, lang),
            "expired": is_expired(slip, payments.business_today()),
            "store_deadline": None if slip.store_deadline is None else date_label(slip.store_deadline, lang)}


def _channels(slip: Slip) -> list[dict[str, Any]]:
    """Return the online channels the slip's fund accepts and this gateway carries, with their fees."""
    if slip.status != "issued" or slip.assessment.closed_reason is not None:
        return []
    if is_expired(slip, payments.business_today()):
        return []
    carried = adapters_by_channel(current_app.extensions["kokin.adapters"], current_app.config["CHANNEL_ADAPTERS"])
    schedules = current_app.config["FEE_SCHEDULES"]
    channels = []
    for channel in gateway_checkouts(slip.assessment.fund_type.channels):
        if channel in carried:
            fee = system_fee(slip.amount, schedules.get(channel))
            channels.append({"code": channel, "label": label(channel, "channel"), "fee": yen(fee) if fee else None,
                             "total": yen(slip.amount + fee)})
    return channels


def _eltax_url(slip: Slip) -> str | None:
    """Return where to pay a payable slip of a fund paid online through eLTAX (ELTAX_PAY_URL), else None."""
    if slip.status != "issued" or slip.assessment.closed_reason is not None:
        return None
    return current_app.config["ELTAX_PAY_URL"] if paid_through_eltax(slip.assessment.fund_type.channels) else None


def _start_once(slip: Slip, channel: str, nonce: str) -> PaymentAttempt:
    """Start a payment for this form submission, or return the attempt a first submission opened."""
    session = _session()
    body_hash = idempotency.request_hash({"token": slip.pay_token, "channel": channel})
    claim = idempotency.claim(session, slip.municipality_id, f"pay-page:{nonce}", body_hash)
    if claim.replay is not None:
        status, stored = claim.replay
        attempt_id = stored.get("attempt_id")
        attempt = None if attempt_id is None else session.get(PaymentAttempt, (attempt_id, slip.municipality_id))
        if attempt is None:
            raise GatewayError("replayed failure", code=str(stored.get("code", "error")), status=status)
        return attempt
    assert claim.key_id is not None
    lang = {"lang": "en"} if _lang() == "en" else {}
    channels = adapters_by_channel(current_app.extensions["kokin.adapters"], current_app.config["CHANNEL_ADAPTERS"])
    try:
        started = start_payment(
            session, channels, municipality_id=slip.municipality_id, slip_number=slip.number,
            channel=channel, return_url=url_for("public.result", token=slip.pay_token, _external=True, **lang),
            cancel_url=url_for("public.show_slip", token=slip.pay_token, _external=True, **lang),
            fee_schedules=current_app.config["FEE_SCHEDULES"], actor="public:pay-page")
    except DomainError as exc:
        if exc.status >= 500:
            idempotency.release(session, slip.municipality_id, claim.key_id)  # a retry of the same form may try again
        else:
            idempotency.complete(session, slip.municipality_id, claim.key_id, exc.status, {"code": exc.code})
        raise
    idempotency.complete(session, slip.municipality_id, claim.key_id, 201, {"attempt_id": started.attempt.id})
    return started.attempt


def _latest(slip: Slip) -> tuple[Payment | None, PaymentAttempt | None]:
    session = _session()
    payment = session.scalar(select(Payment).where(Payment.municipality_id == slip.municipality_id,
                                                   Payment.slip_id == slip.id).order_by(Payment.id.desc()).limit(1))
    if payment is None:
        return None, None
    attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.municipality_id == payment.municipality_id,
                                                          PaymentAttempt.payment_id == payment.id)
                             .order_by(PaymentAttempt.id.desc()).limit(1))
    return payment, attempt


def _poll(adapter_name: str, provider_ref: str, ward: int) -> None:
    """Ask the provider about a pending attempt, for a resident back before the webhook."""
    adapter = current_app.extensions["kokin.adapters"].get(adapter_name)
    if adapter is None:
        return
    _session().rollback()  # no transaction open across the provider call
    try:
        settle_attempt(_session(), adapter_name, adapter.fetch_status(provider_ref), actor="public:result",
                       municipality_id=ward)
    except (RetryableError, PermanentError, DomainError) as exc:
        log.warning("pay page: could not check %s attempt %s: %s", adapter_name, provider_ref, exc)
