"""Two wards in one deployment: every API and staff route, with ward A's credentials, on ward B's objects.

Every route of the app that takes an object's key is walked: each API route with ward A's
API key holding every scope, each staff route with ward A's staff of every role. Each answer
is 404 (or 403 for a role the route is not for), and at least one of A's credentials gets the
404: the object is not found, not merely forbidden. The same GET routes with ward B's own
credentials answer 200, so the walk reaches real objects. A new route with a key must be added
here (the walk fails on a route it does not know), and B's objects are unchanged afterwards.
"""
from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import load_settings
from gateway.models import Municipality, OutboundFile, Payment, ReconException, Refund, Sale, Slip, StaffUser
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.scheduler.guard import tokyo_today
from gateway.services.apikeys import SCOPES, create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.refunds import request_refund
from gateway.services.sales import SaleLineRequest, get_sale
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from reconciliation import counter_revenue, receipts
from reconciliation.run import reconcile_day
from tests.card import pay_by_card
from tests.counter import paid_sale
from tests.rows import by_id, ward_of
from tests.staff import PASSWORD, csrf_token, log_in

A, B = "131075", "131083"
ROLES = ("counter_supervisor", "accounting", "approver", "administrator")
# Routes that take no ward's object: public pages reached by a slip's own token, the providers'
# simulators, static files, notifications (signed by the provider), agency routes keyed by the
# agency (the key's ward applies), reports and playbooks by name (the user's ward applies), the language switch.
NOT_A_WARDS_OBJECT = {"static", "public.static", "public.show_slip", "public.start", "public.result", "site.static",
                      "staff.static", "sandbox.static", "sandbox.paypay_code", "sandbox.paypay_act",
                      "sandbox.stripe_checkout", "sandbox.stripe_pay", "sandbox.stripe_authenticate",
                      "sandbox.stripe_authenticated", "webhooks.webhook", "agency.enter_deposit",
                      "agency.upload_agency_file", "staff.report", "language.switch", "staff.playbook_edit",
                      "staff.playbook_reset"}


def _ward_b() -> dict[str, Any]:
    ward = copy.deepcopy(load_settings()["MUNICIPALITIES"][0])
    ward.update(code=B, name="江東区", name_kana="ｺｳﾄｳｸ", company_code="913109", client_code="13108")
    for counter in ward.get("counters", []):
        counter["terminals"] = [{**terminal, "device_id": terminal["device_id"].replace("sandbox-", "sandbox-koto-")}
                                for terminal in counter["terminals"]]
    return ward


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"MUNICIPALITIES": [load_settings()["MUNICIPALITIES"][0], _ward_b()]}


@pytest.fixture
def ward_b(app: Flask, session: Session, cipher: Any, business_day: date) -> dict[str, Any]:
    """Ward B's objects, one of each kind a route takes; ward A has none of them."""
    seed_reference_data(session, [_ward_b()])
    rows = list(ward_rows(B, 2026, payers=3))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="koto.csv")
    issue_slips(session, B)
    koto = session.scalar(select(Municipality.id).where(Municipality.code == B))
    slip = session.scalars(select(Slip).where(Slip.municipality_id == koto, Slip.barcode.is_not(None))
                           .order_by(Slip.id)).first()
    assert slip is not None
    started = pay_by_card(app, session, slip)
    payment_id = started.payment.id
    clerk = create_user(session, B, "koto-clerk", "counter_staff", PASSWORD, counter_code="resident", actor="test")
    sale_id = paid_sale(app, session, clerk, [SaleLineRequest("juminhyo", 1)], brand="FELICA_ID",
                        business_date=business_day)
    refund = request_refund(session, koto, payment_id, 300, reason="test", requested_by="koto-clerk")
    exception = ReconException(municipality_id=slip.municipality_id, kind="unknown_slip", subject_key="koto:1",
                               business_date=business_day, details={})
    session.add(exception)
    session.commit()
    assert receipts.export_next(session, B, "receipts-csv", actor="test") is not None
    reconcile_day(session, B, business_day)
    # The sale's day is today by the clock (it was paid now); its revenue file takes the days up to it.
    assert counter_revenue.export_next(session, B, actor="test", through=max(business_day, tokyo_today())) is not None
    for role in ROLES:
        create_user(session, B, f"koto-{role}", role, PASSWORD, actor="test")
    session.commit()
    return {"payment_id": payment_id, "number": slip.number, "business_date": business_day.isoformat(),
            "sale_id": sale_id, "exception_id": exception.id, "action": "assign", "sequence": 1,
            "refund_id": refund.id, "username": "koto-clerk", "refund_status": refund.status,
            "slip_status": slip.status}


def _keyed_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, rule, method) of every route that takes a key, other than NOT_A_WARDS_OBJECT."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.arguments and rule.endpoint not in NOT_A_WARDS_OBJECT:
            routes += [(rule.endpoint, rule.rule, method) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(routes)


def _path(rule: str, values: dict[str, Any]) -> str:
    for name, value in values.items():
        for converter in ("", "int:", "string:"):
            rule = rule.replace(f"<{converter}{name}>", str(value))
    assert "<" not in rule, f"the walk has no object for {rule}: add one to ward_b"
    return rule


def _staff(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    assert log_in(client, username).status_code == 302
    return client


# What each form posts when a person uses it rightly: only the ward may stand in the way.
FORMS = {"staff.exception_action": {"assignee": "sumida-accounting"},
         "staff.user_password": {"password": "another-pass-2026!", "confirm": "another-pass-2026!"},
         "staff.decide": {"decision": "approve"}, "staff.simulate_terminal": {"action": "complete"},
         "staff.void_sale": {"reason": "test"}, "staff.cancel_sale": {}}


def _ask(client: FlaskClient, method: str, path: str, endpoint: str, headers: dict[str, str] | None = None) -> int:
    if method == "GET":
        return client.get(path, headers=headers).status_code
    if path.startswith("/api/"):
        return client.post(path, headers=headers, json={"reason": "test"}).status_code
    form = {**FORMS.get(endpoint, {}), "csrf_token": csrf_token(client, "/staff/account")}
    return client.post(path, data=form).status_code


def test_ward_a_reaches_nothing_of_ward_b_through_any_route(app: Flask, session: Session,
                                                            ward_b: dict[str, Any]) -> None:
    routes = _keyed_routes(app)
    assert len(routes) >= 20
    scopes = [scope for scope in SCOPES if not scope.endswith("<adapter>")]
    key_a = create_api_key(session, "ward-a", A, actor="test", scopes=scopes)
    key_b = create_api_key(session, "ward-b", B, actor="test", scopes=scopes)
    for role in ROLES:
        create_user(session, A, f"sumida-{role}", role, PASSWORD, actor="test")
    staff_a = {role: _staff(app, f"sumida-{role}") for role in ROLES}
    staff_b = {role: _staff(app, f"koto-{role}") for role in ROLES}
    api = app.test_client()

    for endpoint, rule, method in routes:
        path = _path(rule, ward_b)
        if path.startswith("/api/"):
            answers = {"api": _ask(api, method, path, endpoint, {"Authorization": f"Bearer {key_a}"})}
        else:
            answers = {role: _ask(client, method, path, endpoint) for role, client in staff_a.items()}
        assert set(answers.values()) <= {403, 404} and 404 in answers.values(), (endpoint, method, path, answers)
        if method == "GET":  # the control: ward B's own credentials reach the object
            if path.startswith("/api/"):
                own = {"api": _ask(api, method, path, endpoint, {"Authorization": f"Bearer {key_b}"})}
            else:
                own = {role: _ask(client, method, path, endpoint) for role, client in staff_b.items()}
            assert 200 in own.values(), (endpoint, path, own)

    session.expire_all()
    assert by_id(session, Slip, session.scalar(select(Slip.id).where(Slip.number == ward_b["number"])
                                            .order_by(Slip.reissue.desc()))).reissue == 0
    assert get_sale(session, ward_of(session, Sale, ward_b["sale_id"]), ward_b["sale_id"]).status == "paid"
    assert by_id(session, Refund, ward_b["refund_id"]).status == ward_b["refund_status"]
    exception = by_id(session, ReconException, ward_b["exception_id"])
    assert (exception.status, exception.assigned_to) == ("open", None)
    assert session.scalar(select(StaffUser.failed_sign_ins).where(StaffUser.username == "koto-clerk")) == 0
    assert by_id(session, Payment, ward_b["payment_id"]).status == "succeeded"
    assert session.scalar(select(OutboundFile.id).where(OutboundFile.municipality_id != exception.municipality_id)) \
        is None  # ward A sent no file: B's sequence 1 is B's alone
