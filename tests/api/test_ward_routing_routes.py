"""Every statement a staff screen or an API route sends names its ward (issue 17, point 8).

`tests/integration/test_ward_routing.py` reads the statements of played days (the services, the
imports, the nightly jobs). These walks read those of the people's side, with every statement
recorded and each read the same way: ward B's staff of every role and ward B's API key open
every page and every GET route that takes one of ward B's objects (`test_ward_isolation.py`
makes one of each), then send every form and POST of those routes; a resident opens ward B's
slip by its pay link and starts a card payment.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Municipality, Slip
from gateway.services.apikeys import SCOPES, create_api_key
from tests.api.test_ward_isolation import ROLES, B, _ask, _keyed_routes, _path, _staff, app_config, ward_b  # noqa: F401
from tests.integration.test_ward_routing import read, recording

# Pages and API lists without a key: the ward is the signed-in staff member's or the API key's.
PAGES = ("/staff/", "/staff/counter", "/staff/close", "/staff/exceptions", "/staff/reports", "/staff/feed",
         "/staff/revenue", "/staff/refunds", "/staff/fees", "/staff/users", "/staff/account", "/staff/playbook",
         "/staff/search")
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
