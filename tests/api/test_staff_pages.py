"""The staff screens: who may open what, sign-in, CSRF, refund approval by a second person, users by CLI."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.cli import cli
from gateway.models import FeePrice, Payment, ReconException, Refund, StaffUser
from gateway.services.counters import counter_terminals
from gateway.services.fee_items import fee_on
from gateway.services.refunds import request_refund
from gateway.services.sales import SaleLineRequest, get_sale, sale_attempt, start_sale
from gateway.services.staff_accounts import create_user
from tests.counter import paid_sale
from tests.rows import by_id
from tests.staff import PASSWORD, TOKEN, csrf_token, log_in

CODE = "131075"
TODAY = datetime.now(ZoneInfo("Asia/Tokyo")).date()
BAD_LOGIN = "ユーザー名またはパスワードが違います。"


def _user(session: Session, name: str, role: str) -> StaffUser:
    return create_user(session, CODE, name, role, PASSWORD, counter_code="resident", actor="test")






@pytest.fixture
def staff(session: Session) -> dict[str, StaffUser]:
    return {name: _user(session, name, role) for name, role in [
        ("clerk", "counter_staff"), ("super", "counter_supervisor"), ("acct", "accounting"),
        ("approver", "approver"), ("admin", "administrator")]}


def _paid_sale(app, session: Session, seller: StaffUser) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A sale paid at the simulated terminal: (sale id, payment id)."""
    sale_id = paid_sale(app, session, seller, [SaleLineRequest("juminhyo", 1)], brand="FELICA_ID", business_date=TODAY)
    payment_id = session.scalar(select(Payment.id).where(Payment.sale_id == sale_id))
    session.rollback()
    assert payment_id is not None
    return sale_id, payment_id


def _refund(session: Session, refund_id: int) -> Refund:
    refund = by_id(session, Refund, refund_id, populate_existing=True)
    assert refund is not None
    session.rollback()
    return refund


# -- roles ----------------------------------------------------------------------------------------


def test_counter_staff_sell_and_close_but_never_reconcile_approve_or_void(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    sale_id, payment_id = _paid_sale(app, session, staff["clerk"])
    refund = request_refund(session, staff["clerk"].municipality_id, payment_id, 300, reason="test",
                            requested_by="super")
    assert log_in(client, "clerk").status_code == 302

    assert client.get("/staff/counter").status_code == 200
    assert client.get("/staff/close").status_code == 200
    assert client.get("/staff/exceptions").status_code == 403
    assert client.get("/staff/refunds").status_code == 403
    token = csrf_token(client, "/staff/counter")
    decide = client.post(f"/staff/refunds/{refund.id}/decide", data={"decision": "approve", "csrf_token": token})
    assert decide.status_code == 403
    void = client.post(f"/staff/counter/sales/{sale_id}/void", data={"csrf_token": token})
    assert void.status_code == 403

    assert _refund(session, refund.id).status == "requested"
    assert get_sale(session, staff["clerk"].municipality_id, sale_id).status == "paid"
    session.rollback()


@pytest.mark.parametrize("approver", ["acct", "approver"])
def test_a_refund_is_approved_by_someone_other_than_its_requester(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser], approver: str) -> None:  # type: ignore[no-untyped-def]
    _, payment_id = _paid_sale(app, session,
                               staff["clerk"])
    own = request_refund(session, staff["clerk"].municipality_id, payment_id, 100, reason="own request",
                         requested_by=approver)
    other = request_refund(session, staff["clerk"].municipality_id, payment_id, 200, reason="clerk's request",
                           requested_by="clerk")
    log_in(client, approver)
    token = csrf_token(client, "/staff/refunds")

    refused = client.post(f"/staff/refunds/{own.id}/decide", data={"decision": "approve", "csrf_token": token},
                          headers={"Referer": "/staff/refunds"}, follow_redirects=True)
    assert refused.status_code == 200
    assert "自分が依頼・提案したものは承認できません" in refused.get_data(as_text=True)  # four_eyes_required
    assert _refund(session, own.id).status == "requested"

    approved = client.post(f"/staff/refunds/{other.id}/decide", data={"decision": "approve", "csrf_token": token})
    assert approved.status_code == 302
    done = _refund(session, other.id)
    assert done.approved_by == approver and done.status == "succeeded"  # carried out through Square at once


def test_an_administrator_sets_a_fee_from_tomorrow(client: FlaskClient, session: Session,  # type: ignore[no-untyped-def]
                                                   staff: dict[str, StaffUser]) -> None:
    log_in(client, "admin")
    tomorrow = TODAY + timedelta(days=1)
    response = client.post("/staff/fees", data={"item": "juminhyo", "fee": "350", "valid_from": tomorrow.isoformat(),
                                                "csrf_token": csrf_token(client, "/staff/fees")})
    assert response.status_code == 302
    price = session.scalar(select(FeePrice).where(FeePrice.valid_from == tomorrow))
    assert price is not None and price.fee == 350 and price.set_by == "admin"
    ward = price.municipality_id
    assert fee_on(session, ward, price.item_id, TODAY) == 300 and fee_on(session, ward, price.item_id, tomorrow) == 350
    session.rollback()
    assert client.get("/staff/fees").status_code == 200


def test_only_administrators_open_the_fees_page(client: FlaskClient, staff: dict[str, StaffUser]) -> None:
    log_in(client, "clerk")
    assert client.get("/staff/fees").status_code == 403


# -- sign-in and CSRF -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/staff/counter", "/staff/close", "/staff/exceptions", "/staff/refunds",
                                  "/staff/fees"])
def test_signed_out_users_are_sent_to_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/login")


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    log_in(client, "admin")
    before = session.scalar(select(func.count()).select_from(FeePrice))
    session.rollback()
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    response = client.post("/staff/fees", data={"item": "juminhyo", "fee": "350", "valid_from": tomorrow})
    assert response.status_code == 400
    forged = client.post("/staff/fees", data={"item": "juminhyo", "fee": "350", "valid_from": tomorrow,
                                              "csrf_token": "forged"})
    assert forged.status_code == 400
    assert session.scalar(select(func.count()).select_from(FeePrice)) == before
    session.rollback()


def test_a_sign_in_without_the_csrf_token_is_refused(client: FlaskClient, staff: dict[str, StaffUser]) -> None:
    response = client.post("/staff/login", data={"username": "clerk", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/staff/counter").status_code == 302  # still signed out


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
        client: FlaskClient, staff: dict[str, StaffUser]) -> None:
    wrong = log_in(client, "clerk", "not-the-password")
    unknown = log_in(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert BAD_LOGIN in wrong.get_data(as_text=True) and BAD_LOGIN in unknown.get_data(as_text=True)
    assert TOKEN.sub("", wrong.get_data(as_text=True)) == TOKEN.sub("", unknown.get_data(as_text=True))
    assert client.get("/staff/counter").status_code == 302
    assert log_in(client, "clerk").status_code == 302
    assert client.get("/staff/counter").status_code == 200


# -- kokin users create ---------------------------------------------------------------------------


def test_a_user_created_on_the_command_line_can_sign_in(app, client: FlaskClient) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["users", "create", "clerk2", "--role", "counter_staff"],
                                          env={"KOKIN_NEW_USER_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert "user clerk2 created with role counter_staff" in result.output
    assert log_in(client, "clerk2").status_code == 302
    assert client.get("/staff/counter").status_code == 200


def test_an_unknown_role_is_refused_on_the_command_line(app) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["users", "create", "clerk3", "--role", "cashier"],
                                          env={"KOKIN_NEW_USER_PASSWORD": PASSWORD})
    assert result.exit_code != 0
    assert "Invalid value for '--role'" in result.output and "counter_staff" in result.output


def test_a_short_password_is_refused_on_the_command_line(app, client: FlaskClient) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["users", "create", "clerk4", "--role", "counter_staff"],
                                          env={"KOKIN_NEW_USER_PASSWORD": "short"})
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == "Error: the password needs at least 10 characters"
    assert log_in(client, "clerk4", "short").status_code == 401


def test_staff_of_another_municipality_cannot_see_or_touch_a_sale_or_refund(app, session: Session,  # type: ignore[no-untyped-def]
                                                                              staff: dict[str, StaffUser]) -> None:
    from gateway.services.reference import seed_reference_data

    seed_reference_data(session, [{"code": "130001", "name": "東京都", "name_kana": "ﾄｳｷｮｳﾄ",
                                   "company_code": "913000", "client_code": "13000",
                                   "store_deadline_offset_days": 14, "pay_base_url": "http://127.0.0.1:5000",
                                   "funds": []}])
    create_user(session, "130001", "outsider", "counter_supervisor", PASSWORD, actor="test")
    create_user(session, "130001", "outside-approver", "approver", PASSWORD, actor="test")
    sale_id, payment_id = _paid_sale(app, session, staff["clerk"])
    refund = request_refund(session, staff["clerk"].municipality_id, payment_id, 300, reason="test",
                            requested_by="someone")
    client = app.test_client()
    log_in(client, "outsider")
    token = csrf_token(client, "/staff/close")

    for path in (f"/staff/counter/sales/{sale_id}", f"/staff/counter/sales/{sale_id}/status",
                 f"/staff/counter/sales/{sale_id}/receipt"):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/staff/counter/sales/{sale_id}/void", data={"csrf_token": token}).status_code == 404
    approver = app.test_client()
    log_in(approver, "outside-approver")
    decided = approver.post(f"/staff/refunds/{refund.id}/decide",
                            data={"csrf_token": csrf_token(approver, "/staff/refunds"), "decision": "approve"})
    assert decided.status_code == 404
    session.expire_all()
    assert get_sale(session, staff["clerk"].municipality_id, sale_id).status == "paid"
    assert by_id(session, Refund, refund.id).status == "requested"


def test_the_close_screen_only_shows_differences_and_records_none(app, session: Session,  # type: ignore[no-untyped-def]
                                                                  staff: dict[str, StaffUser]) -> None:
    from gateway.models import ReconException

    adapters = app.extensions["kokin.adapters"]
    _, terminals = counter_terminals(session, staff["clerk"].municipality_id, "resident")
    session.rollback()
    sale = start_sale(session, adapters, user=staff["clerk"], counter_code="resident", terminal_id=terminals[0].id,
                      lines=[SaleLineRequest("juminhyo", 1)], brand="FELICA_ID", business_date=TODAY)
    checkout = sale_attempt(session, sale.municipality_id, sale.id).provider_ref
    adapters["square"].simulator.simulate_device(checkout, "start")
    adapters["square"].simulator.simulate_device(checkout, "complete")  # paid, not yet polled: still waiting here
    client = app.test_client()
    log_in(client, "super")

    page = client.get("/staff/close")

    assert page.status_code == 200 and "ゲートウェイに記録なし" in page.text  # shown while the day goes on
    assert session.scalar(select(func.count()).select_from(ReconException)) == 0  # recorded only by the night run


def test_an_error_page_never_sends_the_browser_to_another_site(app, session: Session,  # type: ignore[no-untyped-def]
                                                                staff: dict[str, StaffUser]) -> None:
    item = ReconException(municipality_id=staff["acct"].municipality_id, kind="unknown_slip", subject_key="t:1",
                          business_date=TODAY, details={})
    session.add(item)
    session.commit()
    client = app.test_client()
    log_in(client, "acct")
    answer = client.post(f"/staff/exceptions/{item.id}/comment",  # refused (no text): back to where it came from
                         data={"text": " ", "csrf_token": csrf_token(client, "/staff/account")},
                         headers={"Referer": "https://evil.example/staff/x"})
    assert answer.status_code == 302 and "evil.example" not in answer.location
    clerk = app.test_client()
    log_in(clerk, "clerk")
    missing = clerk.get("/staff/counter?counter=nowhere", headers={"Referer": "https://evil.example/staff/x"})
    assert missing.status_code == 404 and "evil.example" not in missing.get_data(as_text=True)


def test_accounting_sees_the_feed_balance_and_downloads_a_sent_file_byte_for_byte(  # type: ignore[no-untyped-def]
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    from reconciliation.receipts import export_next

    _paid_sale(app, session, staff["clerk"])
    sent = export_next(session, CODE, actor="test")
    assert sent is not None
    log_in(client, "acct")

    page = client.get("/staff/feed").get_data(as_text=True)
    download = client.get(f"/staff/feed/{sent.sequence}")

    assert 'id="difference">0円' in page and "窓口 電子マネー" in page and sent.sha256 in page
    assert download.status_code == 200 and download.data == sent.data
    assert download.headers["X-Content-SHA256"] == sent.sha256
    assert client.get("/staff/feed/99").status_code == 404
    log_in(client, "clerk")
    assert client.get("/staff/feed").status_code == 403


def test_playing_the_terminal_of_a_sale_already_paid_is_refused_and_changes_nothing(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    sale_id, _ = _paid_sale(app, session, staff["clerk"])
    assert log_in(client, "clerk").status_code == 302
    token = csrf_token(client, "/staff/counter")

    for action in ("complete", "cancel", "timeout"):
        response = client.post(f"/staff/counter/sales/{sale_id}/simulate", data={"action": action, "csrf_token": token},
                               follow_redirects=True)  # the refusal is flashed on the page the clerk came from
        assert response.status_code == 200, action
        assert "この会計は、もう支払い待ちではありません。" in response.get_data(as_text=True), action
    assert get_sale(session, staff["clerk"].municipality_id, sale_id).status == "paid"


def test_playing_a_terminal_that_gave_up_on_its_own_records_the_time_out_and_says_so(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    adapters = app.extensions["kokin.adapters"]
    _, terminals = counter_terminals(session, staff["clerk"].municipality_id, "resident")
    session.rollback()
    sale = start_sale(session, adapters, user=staff["clerk"], counter_code="resident", terminal_id=terminals[0].id,
                      lines=[SaleLineRequest("juminhyo", 1)], brand="FELICA_ID", business_date=TODAY)
    simulator = adapters["square"].simulator
    simulator.clock = lambda: datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(hours=1)  # past the checkout's deadline
    assert log_in(client, "clerk").status_code == 302

    response = client.post(f"/staff/counter/sales/{sale.id}/simulate", follow_redirects=True,
                           data={"action": "complete", "csrf_token": csrf_token(client, "/staff/counter")})

    assert "この会計は、もう支払い待ちではありません。" in response.get_data(as_text=True)
    assert get_sale(session, sale.municipality_id, sale.id).status == "timed_out"  # followed, not left waiting
