"""Every statement a staff screen or an API route sends names its ward (issue 17, point 8).

`tests/integration/test_ward_routing.py` reads the statements of played days (the services, the
imports, the nightly jobs). These walks read those of the people's side, with every statement
recorded and each read the same way: ward B's staff of every role and ward B's API key open
every page and every GET route that takes one of ward B's objects (`test_ward_isolation.py`
makes one of each), then send every form and POST of those routes; a resident opens ward B's
slip by its pay link and starts a card payment; ward B's key opens a payment that Stripe then
notifies, and sends an agency's file and deposit; ward B's staff work the queue and search, sell
at the counter, set a fee and edit a playbook.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.agency.simulator import StorePayment, schedule, write_file
from gateway.models import Event, Municipality, Payment, PaymentAttempt, Sale, Slip, Terminal
from gateway.scheduler.guard import tokyo_today
from gateway.services.apikeys import AGENCY_IMPORT, SCOPES, create_api_key
from tests.api.test_ward_isolation import ROLES, B, _ask, _keyed_routes, _path, _staff, _ward_b, app_config, ward_b  # noqa: F401
from tests.integration.test_ward_routing import read, recording
from tests.rows import by_id
from tests.staff import csrf_token

# Pages and API lists without a key: the ward is the signed-in staff member's or the API key's.
PAGES = ("/staff/", "/staff/counter", "/staff/close", "/staff/exceptions", "/staff/reports", "/staff/feed",
         "/staff/revenue", "/staff/refunds", "/staff/fees", "/staff/users", "/staff/account", "/staff/playbook",
         "/staff/search")
AGENCY = "agency-csv"
_CARD_FORM = re.compile(r'<form[^>]*action="[^"]*/card[^"]*">(.*?)</form>', re.S)
LISTS = ("/api/v1/funds", "/api/v1/slips", "/api/v1/agency/remittances", "/api/v1/exceptions")


def test_every_statement_of_the_staff_screens_and_the_api_names_its_ward(app: Flask, session: Session, database: Any,
                                                                         ward_b: dict[str, Any]) -> None:  # noqa: F811
    scopes = [scope for scope in SCOPES if not scope.endswith("<adapter>")]
    key_b = create_api_key(session, "ward-b", B, actor="test", scopes=scopes)
    staff_b = {role: _staff(app, f"koto-{role}") for role in ROLES}
    api = app.test_client()
    answered: Counter[int] = Counter()
    with recording(database.engine) as executed:
        keyed = [_path(rule, ward_b) for _, rule, method in _keyed_routes(app) if method == "GET"]
        for path in [*keyed, *PAGES, *LISTS]:
            if path.startswith("/api/"):
                answered[api.get(path, headers={"Authorization": f"Bearer {key_b}"}).status_code] += 1
            else:
                answered.update(client.get(path).status_code for client in staff_b.values())
    assert answered[200] >= 40, answered  # the pages were shown, not refused
    _assert_routed(executed)


def _assert_routed(executed: Counter[str]) -> None:
    unrouted, joins, _ = read(set(executed))
    assert not joins, "joins of tenant tables not on the ward:\n" + "\n".join(joins)
    assert not unrouted, "statements that name no ward:\n" + "\n".join(unrouted)


def test_every_statement_of_the_staff_s_and_the_api_s_actions_names_its_ward(
        app: Flask, session: Session, database: Any, ward_b: dict[str, Any]) -> None:  # noqa: F811
    """Each form and POST of a keyed route, sent by ward B's own staff of every role and ward B's key."""
    scopes = [scope for scope in SCOPES if not scope.endswith("<adapter>")]
    key_b = create_api_key(session, "ward-b", B, actor="test", scopes=scopes)
    staff_b = {role: _staff(app, f"koto-{role}") for role in ROLES}
    api = app.test_client()
    posts = [(endpoint, _path(rule, ward_b)) for endpoint, rule, method in _keyed_routes(app) if method == "POST"]
    assert len(posts) >= 9, posts

    answered: Counter[int] = Counter()
    with recording(database.engine) as executed:
        for endpoint, path in posts:
            if path.startswith("/api/"):
                answered[_ask(api, "POST", path, endpoint, {"Authorization": f"Bearer {key_b}"})] += 1
            else:
                answered.update(_ask(client, "POST", path, endpoint) for client in staff_b.values())
    assert 500 not in answered, answered
    assert sum(n for status, n in answered.items() if status < 400) >= 5, answered  # actions were taken, not refused
    _assert_routed(executed)


def test_every_statement_of_the_pay_page_names_its_ward(app: Flask, session: Session, database: Any,
                                                         ward_b: dict[str, Any]) -> None:  # noqa: F811
    """A resident of ward B opens a slip's pay link, starts a card payment and comes back to the result."""
    koto = session.scalar(select(Municipality.id).where(Municipality.code == B))
    resident = app.test_client()
    for token in session.scalars(select(Slip.pay_token).where(Slip.municipality_id == koto, Slip.status == "issued")
                                 .order_by(Slip.id)):  # the first slip still to pay by card
        card = _CARD_FORM.search(resident.get(f"/pay/{token}").get_data(as_text=True))
        if card is not None:
            break
    assert card is not None and token.startswith(f"{B}-")
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', card.group(1)))

    with recording(database.engine) as executed:
        page = resident.get(f"/pay/{token}")
        started = resident.post(f"/pay/{token}/card", data=fields)
        result = resident.get(f"/pay/{token}/result")
    assert (page.status_code, started.status_code, result.status_code) == (200, 303, 200)
    _assert_routed(executed)


def test_every_statement_of_a_payment_s_way_through_the_api_and_the_providers_names_its_ward(
        app: Flask, session: Session, database: Any, ward_b: dict[str, Any]) -> None:  # noqa: F811
    """Ward B's key opens a card payment, Stripe notifies it (twice), the agency's file and deposit are sent, and
    ward B's staff work the queue and search: the routes with no object's key in their path."""
    koto = session.scalar(select(Municipality.id).where(Municipality.code == B))
    to_pay = session.scalars(select(Slip).where(Slip.municipality_id == koto, Slip.status == "issued",
                                                Slip.barcode.is_not(None)).order_by(Slip.id)).all()
    by_card, at_store = to_pay[-1], to_pay[-2]
    scopes = [*(scope for scope in SCOPES if not scope.endswith("<adapter>")), f"{AGENCY_IMPORT}{AGENCY}"]
    key_b = {"Authorization": f"Bearer {create_api_key(session, 'ward-b', B, actor='test', scopes=scopes)}"}
    stripe = app.extensions["kokin.adapters"]["stripe"]
    agency_file = write_file(app.extensions["kokin.agencies"][AGENCY], schedule(
        [StorePayment(at_store.barcode, datetime.combine(at_store.due_date, time(10)) - timedelta(days=3),  # type: ignore[arg-type]
                      "1234567", "010")]), created_on=at_store.due_date, client_code=_ward_b()["client_code"])
    api, accounting = app.test_client(), _staff(app, "koto-accounting")
    supervisor, administrator = _staff(app, "koto-counter_supervisor"), _staff(app, "koto-administrator")
    terminal = session.scalar(select(Terminal.id).where(Terminal.municipality_id == koto).order_by(Terminal.id))

    with recording(database.engine) as executed:
        opened = api.post("/api/v1/payments", headers={**key_b, "Idempotency-Key": "walk-1"}, json={
            "slip_number": by_card.number, "channel": "card", "return_url": "https://ward.test/r"})
        provider_ref = session.scalar(select(PaymentAttempt.provider_ref).where(
            PaymentAttempt.municipality_id == koto).order_by(PaymentAttempt.id.desc()).limit(1))
        stripe.simulator.simulate_payment(provider_ref, "paid")
        deliveries = stripe.simulator.events_for(provider_ref, datetime.now(UTC)) * 2  # and Stripe's retry
        notified = [api.post("/webhooks/stripe", data=body, headers=headers).status_code
                    for headers, body in deliveries]
        uploaded = api.post(f"/api/v1/agency/{AGENCY}/imports?filename=koto.csv", data=agency_file,
                            headers={**key_b, "Content-Type": "application/octet-stream"})
        deposited = api.post(f"/api/v1/agency/{AGENCY}/deposits", headers=key_b, json={
            "deposited_on": tokyo_today().isoformat(), "amount": at_store.amount, "reference": "koto-0001"})
        token = csrf_token(accounting, "/staff/exceptions")
        assigned = accounting.post("/staff/exceptions/bulk", data={
            "ids": str(ward_b["exception_id"]), "action": "assign_me", "csrf_token": token})
        searched = accounting.post("/staff/search", data={"slip_number": by_card.number, "csrf_token": token})
        sold = supervisor.post("/staff/counter/sales", data={
            "counter": "resident", "terminal": str(terminal), "brand": "FELICA_ID", "qty-juminhyo": "1",
            "csrf_token": csrf_token(supervisor, "/staff/counter")})
        paid_at_counter = supervisor.post(f"{sold.headers['Location']}/simulate", data={
            "action": "complete", "csrf_token": csrf_token(supervisor, "/staff/counter")})
        fee_set = administrator.post("/staff/fees", data={
            "item": "juminhyo", "fee": "350", "valid_from": (tokyo_today() + timedelta(days=1)).isoformat(),
            "csrf_token": csrf_token(administrator, "/staff/fees")})
        playbook_token = csrf_token(administrator, "/staff/playbook/unknown_slip")
        playbook_saved = administrator.post("/staff/playbook/unknown_slip", data={
            "meaning": "区の手引き", "checks": "証跡を確かめる", "allow-refund": "on", "effect-refund": "還付する",
            "second-refund": "on", "csrf_token": playbook_token})
        playbook_reset = administrator.post("/staff/playbook/unknown_slip/reset", data={"csrf_token": playbook_token})

    assert opened.status_code == 201, opened.json
    assert set(notified) == {200}, notified
    assert (uploaded.status_code, deposited.status_code) == (200, 200), deposited.json
    assert uploaded.json["booked"] == 1, uploaded.json
    assert assigned.status_code == 302 and searched.status_code == 200
    assert by_card.number in searched.get_data(as_text=True)  # the search ran and found the slip
    assert (playbook_saved.status_code, playbook_reset.status_code) == (302, 302)
    playbook_events = select(Event.kind).where(Event.municipality_id == koto, Event.kind.like("playbook.%"))
    assert set(session.scalars(playbook_events)) == {"playbook.updated", "playbook.reset"}  # saved, not refused
    assert (sold.status_code, paid_at_counter.status_code, fee_set.status_code) == (302, 302, 302)
    sale_id = int(sold.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert by_id(session, Sale, sale_id, populate_existing=True).status == "paid"
    assert by_id(session, Payment, opened.json["id"], populate_existing=True).status == "succeeded"
    _assert_routed(executed)
