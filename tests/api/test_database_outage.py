"""A database connection the server dropped fails one request clearly; the next one connects afresh.

The pool does not ping on checkout (a round trip on every request): a request that meets a
dead connection answers 503 database_unavailable, and the pool is invalidated.
"""
from __future__ import annotations

import os

import psycopg
import pytest

from gateway.services.apikeys import create_api_key

pytestmark = pytest.mark.skipif(os.environ.get("KOKIN_TEST_DATABASE", "sqlite") != "postgresql",
                                reason="a server that drops connections is PostgreSQL's")


def test_a_dropped_connection_is_one_clear_503_and_then_the_service_recovers(app, session, client) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {create_api_key(session, 'test client', '131075', actor='test')}"}
    assert client.get("/api/v1/funds", headers=headers).status_code == 200
    session.close()
    url = app.extensions["kokin.db"].engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as admin:
        dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert dropped is not None and dropped[0] >= 1  # the pooled connections are gone

    answers = [client.get("/api/v1/funds", headers=headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 200, 200]
    assert answers[0].json["error"]["code"] == "database_unavailable"
    assert answers[1].json and answers[1].json == answers[2].json
