"""/sandbox/: the consoles, the simulated Stripe Checkout (with 3-D Secure) and the simulated PayPay app.

Each form submission plays the resident through the simulator's own `simulate_payment` and
then delivers the provider's notification to this gateway's /webhooks/<adapter> in process,
through the app's test client: the real webhook path (signature, dedupe, booking) runs, and
it needs no second worker, so it works under gunicorn with one. The card number typed on
the Checkout page is a sandbox test value: it picks the outcome and only its last four
digits reach the simulator; it is never stored nor shown again.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from domain.calendar import TOKYO
from gateway.db import utcnow
from gateway.public import csrf
from gateway.sandbox.providers import deliveries, record_delivery

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox", template_folder="templates",
               static_folder="static", static_url_path="/static")
COOKIE = "kokin_sandbox_csrf"
# Stripe's documented test cards (https://docs.stripe.com/testing): number -> what happens.
TEST_CARDS = {"4242424242424242": "succeeds", "4000000000000002": "declines", "4000002500003155": "three_d_secure"}
EXPIRY = re.compile(r"(0[1-9]|1[0-2])\s*/\s*(\d{2})")
CVC = re.compile(r"\d{3,4}")
SESSION_ID = re.compile(r"cs_test_[A-Za-z0-9]{1,80}")
REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@bp.context_processor
def _page_globals() -> dict[str, Any]:
    return {"csrf_token": lambda: csrf.csrf_token(COOKIE), "tokyo": _tokyo, "yen": lambda n: f"{int(n):,}"}


@bp.after_request
def _csrf_cookie(response: Response) -> Response:  # no-store: gateway.hardening, on every page
    return csrf.set_cookie(response, COOKIE, "/sandbox")


def _tokyo(moment: datetime | int | None) -> str:
    if moment is None or moment == 0:
        return "-"
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M:%S")


def _simulator(name: str) -> Any:
    adapter = current_app.extensions["kokin.adapters"].get(name)
    simulator = getattr(adapter, "simulator", None)
    if simulator is None:
        abort(404)
    return simulator


def _refused(template: str, status: int, **values: Any) -> tuple[str, int]:
    return render_template(template, **values), status


@bp.get("/")
def index() -> str:
    adapters = current_app.extensions["kokin.adapters"]
    consoles = {name: getattr(adapters.get(name), "simulator", None) for name in ("stripe", "paypay", "square")}
    return render_template(
        "sandbox/index.html",
        stripe=consoles["stripe"].checkout_sessions() if consoles["stripe"] else None,
        paypay=consoles["paypay"].codes() if consoles["paypay"] else None,
        square=consoles["square"].checkouts() if consoles["square"] else None,
        deliveries=deliveries(current_app.extensions["kokin.sandbox_store"]))


# -- Stripe Checkout ----------------------------------------------------------------------------

def _checkout(session_id: str) -> dict[str, Any]:
    if not SESSION_ID.fullmatch(session_id):
        abort(404)
    try:
        return dict(_simulator("stripe").checkout_session(session_id))
    except KeyError:
        abort(404)


@bp.get("/stripe/checkout/<session_id>")
def stripe_checkout(session_id: str) -> Any:
    session = _checkout(session_id)
    error = request.args.get("error")
    return render_template("sandbox/stripe_checkout.html", session=session,
                           error=error if error in ("authentication_failed",) else None)


@bp.post("/stripe/checkout/<session_id>")
def stripe_pay(session_id: str) -> Any:
    session = _checkout(session_id)
    if not csrf.is_valid(request, COOKIE):
        return _refused("sandbox/stripe_checkout.html", 400, session=session, error="csrf")
    if session["status"] != "open":
        return _refused("sandbox/stripe_checkout.html", 409, session=session, error="not_open")
    number = re.sub(r"[\s-]", "", request.form.get("card_number", ""))
    error = _card_error(number, request.form.get("expiry", ""), request.form.get("cvc", ""))
    if error is not None:
        return _refused("sandbox/stripe_checkout.html", 422, session=session, error=error)
    behaviour = TEST_CARDS[number]
    if behaviour == "three_d_secure":
        return redirect(url_for("sandbox.stripe_authenticate", session_id=session_id), code=303)
    session = _stripe_charge(session_id, "paid" if behaviour == "succeeds" else "declined", number[-4:])
    if session["status"] == "complete":
        return redirect(_success_url(session), code=303)
    return _refused("sandbox/stripe_checkout.html", 402, session=session, error="declined")


def _card_error(number: str, expiry: str, cvc: str) -> str | None:
    """Why the form is refused (a key of the page's messages), or None for a test card in good form."""
    if number not in TEST_CARDS:
        return "not_a_test_card"
    match = EXPIRY.fullmatch(expiry.strip())
    if match is None:
        return "expiry"
    today = utcnow().astimezone(TOKYO)
    if (2000 + int(match[2]), int(match[1])) < (today.year, today.month):
        return "expired_card"
    if not CVC.fullmatch(cvc.strip()):
        return "cvc"
    return None


@bp.get("/stripe/checkout/<session_id>/authenticate")
def stripe_authenticate(session_id: str) -> Any:
    session = _checkout(session_id)
    if session["status"] != "open":
        return redirect(url_for("sandbox.stripe_checkout", session_id=session_id), code=303)
    return render_template("sandbox/stripe_3ds.html", session=session, error=None)


@bp.post("/stripe/checkout/<session_id>/authenticate")
def stripe_authenticated(session_id: str) -> Any:
    session = _checkout(session_id)
    if not csrf.is_valid(request, COOKIE):
        return _refused("sandbox/stripe_3ds.html", 400, session=session, error="csrf")
    if session["status"] != "open":
        return redirect(url_for("sandbox.stripe_checkout", session_id=session_id), code=303)
    approved = request.form.get("action") == "approve"
    if request.form.get("action") not in ("approve", "fail"):
        return _refused("sandbox/stripe_3ds.html", 422, session=session, error="action")
    session = _stripe_charge(session_id, "paid" if approved else "declined", "3155",
                             three_d_secure="authenticated" if approved else "failed")
    if session["status"] == "complete":
        return redirect(_success_url(session), code=303)
    return redirect(url_for("sandbox.stripe_checkout", session_id=session_id, error="authentication_failed"),
                    code=303)


def _stripe_charge(session_id: str, outcome: str, last4: str, **extra: Any) -> dict[str, Any]:
    """Charge the test card in the simulator and deliver the events it made to /webhooks/stripe."""
    simulator = _simulator("stripe")
    before = len(simulator.event_types(session_id))
    session: dict[str, Any] = simulator.simulate_payment(session_id, outcome, "visa", last4, **extra)
    kinds = simulator.event_types(session_id)[before:]
    sent = simulator.events_for(session_id, utcnow())[before:]
    reference = str((session.get("metadata") or {}).get("reference") or session_id)
    for kind, (headers, body) in zip(kinds, sent, strict=True):
        _deliver("stripe", reference, kind, headers, body)
    return session


def _success_url(session: dict[str, Any]) -> str:
    url = str(session.get("success_url") or url_for("sandbox.index"))
    return url.replace("{CHECKOUT_SESSION_ID}", session["id"])


# -- PayPay -------------------------------------------------------------------------------------

def _code(reference: str) -> dict[str, Any]:
    if not REFERENCE.fullmatch(reference):
        abort(404)
    found = [c for c in _simulator("paypay").codes() if c["merchantPaymentId"] == reference]
    if not found:
        abort(404)
    return found[0]


@bp.get("/paypay/codes/<reference>")
def paypay_code(reference: str) -> str:
    return render_template("sandbox/paypay.html", code=_code(reference), error=None, now=utcnow().timestamp())


@bp.post("/paypay/codes/<reference>")
def paypay_act(reference: str) -> Any:
    code = _code(reference)
    now = utcnow().timestamp()
    action = request.form.get("action")
    if not csrf.is_valid(request, COOKIE):
        return _refused("sandbox/paypay.html", 400, code=code, error="csrf", now=now)
    if action not in ("pay", "cancel"):
        return _refused("sandbox/paypay.html", 422, code=code, error="action", now=now)
    simulator = _simulator("paypay")
    try:
        simulator.simulate_payment(reference, "COMPLETED" if action == "pay" else "FAILED")
    except ValueError:  # paid, cancelled, deleted or expired meanwhile
        return _refused("sandbox/paypay.html", 409, code=_code(reference), error="not_open", now=now)
    delivery = simulator.notification(reference)
    _deliver("paypay", reference, "Transaction", delivery.headers, delivery.body)
    code = _code(reference)
    if code["redirectUrl"]:
        return redirect(code["redirectUrl"], code=303)
    return render_template("sandbox/paypay.html", code=code, error=None, now=now)


# -- delivering ---------------------------------------------------------------------------------

def _deliver(adapter: str, reference: str, event: str, headers: dict[str, str], body: bytes) -> None:
    """POST one notification to this gateway's /webhooks/<adapter>, in process, and log the answer."""
    response = current_app.test_client().post(f"/webhooks/{adapter}", data=body, headers=headers)
    record_delivery(current_app.extensions["kokin.sandbox_store"], adapter, reference, event,
                    response.status_code, response.get_data(as_text=True))
