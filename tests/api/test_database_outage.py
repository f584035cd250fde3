"""A database connection the server dropped fails one request clearly; the next one connects afresh.

The pool does not ping on checkout (a round trip on every request): a request that meets a
dead connection answers 503 database_unavailable, and the pool is invalidated.
"""
from __future__ import annotations

import json
import os

import psycopg
import pytest
from sqlalchemy import func, select

from gateway.db import utcnow
from gateway.models import Payment, WebhookDelivery
from gateway.services.apikeys import create_api_key
from tests.card import issue_slips_to_pay, open_and_pay

PAYING = ("slips:read", "payments:write")  # the API key of a kiosk or an app that takes payments

pytestmark = pytest.mark.skipif(os.environ.get("KOKIN_TEST_DATABASE", "sqlite") != "postgresql",
                                reason="a server that drops connections is PostgreSQL's")


def _drop_every_connection(app) -> None:  # type: ignore[no-untyped-def]
    url = app.extensions["kokin.db"].engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as admin:
        dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert dropped is not None and dropped[0] >= 1  # the pooled connections are gone


def test_a_dropped_connection_is_one_clear_503_and_then_the_service_recovers(app, session, client) -> None:  # type: ignore[no-untyped-def]
    key = create_api_key(session, 'test client', '131075', actor='test', scopes=PAYING)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/funds", headers=headers).status_code == 200
    session.close()
    _drop_every_connection(app)

    answers = [client.get("/api/v1/funds", headers=headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 200, 200]
    assert answers[0].json["error"]["code"] == "database_unavailable"
    assert answers[1].json and answers[1].json == answers[2].json


def test_a_notification_meeting_a_dropped_connection_is_refused_whole_and_applies_when_redelivered(  # type: ignore[no-untyped-def]
        app, session, client, cipher) -> None:
    """The webhook's one-call settlement (its own pooled connection) fails and recovers the same way."""
    (slip,) = issue_slips_to_pay(session, cipher, 1)
    (_, status), = open_and_pay(app, session, slip, 1)
    stripe = app.extensions["kokin.adapters"]["stripe"]
    headers, body = [d for d in stripe.simulator.events_for(status.provider_ref, utcnow())
                     if json.loads(d[1])["type"] == "checkout.session.completed"][0]
    session.close()  # its connection goes back to the pool, to be dropped
    _drop_every_connection(app)

    answers = [client.post("/webhooks/stripe", data=body, headers=headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 200, 200], [a.json for a in answers]
    assert answers[0].json["error"]["code"] == "database_unavailable"
    assert [a.json["received"] for a in answers[1:]] == ["applied", "duplicate"]
    payment = session.scalar(select(Payment))
    assert payment is not None and payment.applied and payment.status == "succeeded"
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
