"""The staff screens speak Japanese, and English on a switch; codes are shown by their names."""
from __future__ import annotations

from datetime import date

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from gateway.models import ReconException
from gateway.services.staff_accounts import create_user
from tests.staff import PASSWORD, log_in

CODE = "131075"


def _queue_with_a_double_payment(session: Session) -> None:
    clerk = create_user(session, CODE, "acct", "accounting", PASSWORD, counter_code="resident", actor="test")
    session.add(ReconException(municipality_id=clerk.municipality_id, kind="double_payment", subject_key="t:1",
                               business_date=date(2026, 7, 1), amount=12300, details={}))
    session.commit()


def test_the_queue_names_kinds_and_statuses_in_japanese_and_in_english_on_the_switch(
        client: FlaskClient, session: Session) -> None:
    _queue_with_a_double_payment(session)
    log_in(client, "acct")
    japanese = client.get("/staff/exceptions").get_data(as_text=True)
    assert "<td>二重納付</td>" in japanese and "<td>未処理</td>" in japanese
    assert "double_payment</td>" not in japanese
    english = client.get("/staff/exceptions?lang=en").get_data(as_text=True)
    assert "<td>Double payment</td>" in english and "<td>Open</td>" in english


def test_the_switch_is_kept_in_a_cookie_and_goes_back_to_the_page_it_was_chosen_on(
        client: FlaskClient, session: Session) -> None:
    _queue_with_a_double_payment(session)
    log_in(client, "acct")
    answer = client.get("/lang/en?next=/staff/exceptions?kind=double_payment%26lang=ja")
    assert answer.status_code == 302 and answer.location == "/staff/exceptions?kind=double_payment"
    assert "<td>Double payment</td>" in client.get("/staff/exceptions").get_data(as_text=True)
    client.get("/lang/ja")
    assert "<td>二重納付</td>" in client.get("/staff/exceptions").get_data(as_text=True)


def test_the_switch_never_sends_the_browser_to_another_site(client: FlaskClient) -> None:
    for target in ("https://evil.example/x", "//evil.example/x", "javascript:alert(1)"):
        answer = client.get("/lang/en", query_string={"next": target})
        assert answer.status_code == 302 and "evil.example" not in answer.location
        assert answer.location.startswith("/") and not answer.location.startswith("//")
    assert client.get("/lang/xx").status_code == 302
