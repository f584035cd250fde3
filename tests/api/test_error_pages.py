"""Screens answer errors with a page people can act on; the API keeps its JSON envelope.

Staff get a page in the staff layout (Japanese first, then English) that says what happened
and where to go, with the right status; residents on the pay pages get the pages' own message.
"""
from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from gateway.services.staff_accounts import create_user
from tests.staff import PASSWORD, log_in

CODE = "131075"


@pytest.fixture
def staff(session: Session) -> None:
    for name, role in [("acct", "accounting"), ("clerk", "counter_staff")]:
        create_user(session, CODE, name, role, PASSWORD, counter_code="resident", actor="test")


def _log_in(client: FlaskClient, username: str) -> None:
    assert log_in(client, username).status_code == 302


def _html(answer: Any, status: int) -> str:
    assert answer.status_code == status
    assert answer.mimetype == "text/html"
    html: str = answer.get_data(as_text=True)
    assert '{"error"' not in html and "Traceback" not in html and html.lstrip().startswith("<!doctype html>")
    return html


def test_an_accounting_user_opening_an_administrators_page_gets_a_403_page(client: FlaskClient, staff: None) -> None:
    _log_in(client, "acct")

    html = _html(client.get("/staff/fees"), 403)

    assert "kokin-gateway 職員画面" in html and "acct（会計担当）" in html  # the staff layout, signed in
    assert "権限がありません" in html and "Your role does not allow this page" in html
    assert html.index("このページを開く権限がありません") < html.index("Your role")  # Japanese first
    assert 'href="/staff/"' in html and "職員画面のトップへ" in html


def test_a_sign_in_without_its_csrf_token_gets_a_400_page_that_sends_back_to_sign_in(
        client: FlaskClient, staff: None) -> None:
    html = _html(client.post("/staff/login", data={"username": "acct", "password": PASSWORD}), 400)

    assert "CSRF トークン" in html and "Reload the page and send it again" in html
    assert 'href="/staff/login"' in html and "サインインの画面へ" in html
    assert client.get("/staff/exceptions").status_code == 302  # still signed out


def test_a_missing_staff_page_and_a_wrong_method_get_pages_with_their_status(client: FlaskClient,
                                                                             staff: None) -> None:
    html = _html(client.get("/staff/no-such-screen"), 404)
    assert "ページが見つかりません" in html and 'href="/staff/login"' in html

    _log_in(client, "clerk")
    answer = client.get("/staff/logout")
    html = _html(answer, 405)
    assert "この操作はできません" in html and answer.headers["Allow"] and "POST" in answer.headers["Allow"]
    assert 'href="/staff/"' in html  # signed in: back to the staff home
    assert "ページが見つかりません" in _html(client.get("/staff/counter/sales/999999/receipt"), 404)


def test_an_unexpected_failure_on_a_staff_screen_is_a_500_page_that_leaks_nothing(
        client: FlaskClient, staff: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.staff import views

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views.queue_service, "queue", broken)
    _log_in(client, "acct")

    html = _html(client.get("/staff/exceptions"), 500)

    assert "エラーが起きました" in html and "secret internals" not in html


def test_the_api_and_a_scripts_json_request_keep_the_json_envelope(client: FlaskClient, staff: None) -> None:
    answer = client.get("/api/v1/no-such-resource")
    assert answer.status_code == 404 and answer.mimetype == "application/json"
    assert answer.get_json()["error"]["code"] == "not_found"

    _log_in(client, "clerk")
    polled = client.get("/staff/counter/sales/999999/status", headers={"Accept": "application/json"})
    assert polled.status_code == 404 and polled.get_json()["error"]["code"] == "not_found"


def test_the_pay_pages_answer_an_unknown_address_and_a_wrong_method_with_their_own_page(
        client: FlaskClient) -> None:
    html = _html(client.get("/pay/some-token/no/such/page"), 404)
    assert "ページが見つかりません" in html and "納付書のQRコード" in html

    english = _html(client.get("/pay/some-token/no/such/page?lang=en"), 404)
    assert 'lang="en"' in english and "Page not found" in english

    html = _html(client.get("/pay/some-token/card"), 405)
    assert "お支払いを開始できませんでした" in html
