"""Every statement a staff screen or an API route sends names its ward (issue 17, point 8).

`tests/integration/test_ward_routing.py` reads the statements of played days (the services, the
imports, the nightly jobs). This walk reads those of the people's side: ward B's staff of every
role and ward B's API key open every page and every GET route that takes one of ward B's
objects (`test_ward_isolation.py` makes one of each), with every statement recorded, and each
is read the same way.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from gateway.services.apikeys import SCOPES, create_api_key
from tests.api.test_ward_isolation import ROLES, B, _keyed_routes, _path, _staff, app_config, ward_b  # noqa: F401
from tests.integration.test_ward_routing import read

# Pages and API lists without a key: the ward is the signed-in staff member's or the API key's.
PAGES = ("/staff/", "/staff/counter", "/staff/close", "/staff/exceptions", "/staff/reports", "/staff/feed",
         "/staff/revenue", "/staff/refunds", "/staff/fees", "/staff/users", "/staff/account", "/staff/playbook",
         "/staff/search")
LISTS = ("/api/v1/funds", "/api/v1/slips", "/api/v1/agency/remittances", "/api/v1/exceptions")


def test_every_statement_of_the_staff_screens_and_the_api_names_its_ward(app: Flask, session: Session, database: Any,
                                                                         ward_b: dict[str, Any]) -> None:  # noqa: F811
    scopes = [scope for scope in SCOPES if not scope.endswith("<adapter>")]
    key_b = create_api_key(session, "ward-b", B, actor="test", scopes=scopes)
    staff_b = {role: _staff(app, f"koto-{role}") for role in ROLES}
    api = app.test_client()
    executed: Counter[str] = Counter()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        executed[statement] += 1

    answered: Counter[int] = Counter()
    event.listen(database.engine, "before_cursor_execute", record)
    try:
        keyed = [_path(rule, ward_b) for _, rule, method in _keyed_routes(app) if method == "GET"]
        for path in [*keyed, *PAGES, *LISTS]:
            if path.startswith("/api/"):
                answered[api.get(path, headers={"Authorization": f"Bearer {key_b}"}).status_code] += 1
            else:
                answered.update(client.get(path).status_code for client in staff_b.values())
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    assert answered[200] >= 40, answered  # the pages were shown, not refused

    unrouted, joins, _ = read(set(executed))
    assert not joins, "joins of tenant tables not on the ward:\n" + "\n".join(joins)
    assert not unrouted, "statements that name no ward:\n" + "\n".join(unrouted)
