"""The first pages: / says what is where, /api/v1/docs renders the OpenAPI document without fetching anything."""
from __future__ import annotations

import re

from cryptography.fernet import Fernet
from flask.testing import FlaskClient

from gateway import create_app

LINK = re.compile(r'(?:href|src)="([^"]+)"')


def test_the_front_page_links_the_staff_screens_the_api_document_and_the_sandbox_consoles(
        client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<html lang="ja">' in page and "<h1>" in page
    links = LINK.findall(page)
    for target in ("/staff/login", "/api/v1/docs", "/api/v1/openapi.json", "/sandbox/"):
        assert target in links
    for link in links:
        if not link.startswith("/sandbox/"):  # the sandbox consoles are another part's pages
            with client.get(link) as opened:  # a static file stays open until its response is closed
                assert opened.status_code == 200, link


def test_outside_sandbox_mode_the_front_page_has_no_sandbox_consoles(db_url: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KOKIN_DATA_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("KOKIN_SECRET_KEY", "a-test-secret-that-signs-nothing-real")
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", "a-test-payer-reference-key-of-32-bytes")
    app = create_app({"DATABASE_URL": db_url, "SANDBOX": False, "INSTANCE_PATH": str(tmp_path)})
    try:
        page = app.test_client().get("/").get_data(as_text=True)
    finally:
        app.extensions["kokin.db"].dispose()
    assert "/staff/login" in page and "/sandbox/" not in page and "サンドボックス" not in page


def test_the_api_document_shows_every_operation_and_schema_of_the_openapi_spec(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert f'{method.upper()}</span> <code>{path}</code>' in page
            assert operation["summary"].replace("'", "&#39;") in page
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "<code>Idempotency-Key</code>" in page  # a header parameter, with its place
    assert 'href="#schema-PaymentCreate"' in page  # the request body of POST /api/v1/payments


def test_the_api_document_loads_nothing_from_elsewhere_and_runs_no_script(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "<script" not in page
    assert all(link.startswith(("/", "#")) for link in LINK.findall(page))
    with client.get("/site-static/site.css") as css:
        assert css.status_code == 200 and "url(" not in css.get_data(as_text=True)
