"""Staff passwords: set anew by an administrator's screen or `kokin users password`; `users create` twice is safe."""
from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from gateway.cli import cli
from gateway.models import Event, StaffUser
from gateway.services.staff_accounts import create_user
from tests.staff import PASSWORD, csrf_token, log_in

CODE = "131075"
NEW = "a-new-pass-2027!"  # noqa: S105


@pytest.fixture
def staff(session: Session) -> dict[str, StaffUser]:
    return {name: create_user(session, CODE, name, role, PASSWORD, counter_code="resident", actor="test")
            for name, role in [("clerk", "counter_staff"), ("acct", "accounting"), ("admin", "administrator")]}






def _signs_in(session: Session, username: str, password: str) -> bool:
    session.expire_all()  # the accounts the fixture made are in this session with their old hashes
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    session.rollback()
    return user is not None and check_password_hash(user.password_hash, password)


def _events(session: Session, kind: str) -> list[tuple[str, dict[str, Any]]]:
    rows = [(e.actor, e.data) for e in session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))]
    session.rollback()
    return rows


# -- the administrator's screen -------------------------------------------------------------------


def test_an_administrator_sets_a_new_password_that_the_user_then_signs_in_with(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "admin")
    page = client.get("/staff/users").get_data(as_text=True)
    assert "<th scope=\"row\">clerk</th>" in page and 'autocomplete="new-password"' in page
    response = client.post("/staff/users/clerk/password", data={
        "password": NEW, "confirm": NEW, "csrf_token": csrf_token(client, "/staff/users")}, follow_redirects=True)
    assert response.status_code == 200 and "clerk のパスワードを設定しました。" in response.get_data(as_text=True)
    assert not _signs_in(session, "clerk", PASSWORD)
    assert _signs_in(session, "clerk", NEW)
    assert _events(session, "user.password_set") == [("admin", {"username": "clerk", "sessions_revoked": 0})]


def test_a_refused_action_is_told_from_the_catalogue_in_japanese_and_in_english_on_the_switch(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    log_in(client, "admin")
    token = csrf_token(client, "/staff/users")
    short = {"password": "short", "confirm": "short", "csrf_token": token}
    japanese = client.post("/staff/users/clerk/password", data=short, follow_redirects=True).get_data(as_text=True)
    assert '<p class="flash error" role="alert">パスワードは10文字以上にしてください。</p>' in japanese
    client.get("/lang/en")
    english = client.post("/staff/users/clerk/password", data=short, follow_redirects=True).get_data(as_text=True)
    assert '<p class="flash error" role="alert">The password needs at least 10 characters.</p>' in english
    assert "weak_password" not in japanese + english


def test_two_different_passwords_or_a_short_one_change_nothing_and_say_why(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    log_in(client, "admin")
    token = csrf_token(client, "/staff/users")
    differ = client.post("/staff/users/clerk/password", data={"password": NEW, "confirm": NEW + "x",
                                                               "csrf_token": token}, follow_redirects=True)
    assert "2つのパスワードが一致しません。" in differ.get_data(as_text=True)
    short = client.post("/staff/users/clerk/password", data={"password": "short", "confirm": "short",
                                                              "csrf_token": token}, follow_redirects=True)
    assert "パスワードは10文字以上にしてください。" in short.get_data(as_text=True)
    assert _signs_in(session, "clerk", PASSWORD)
    assert _events(session, "user.password_set") == []


def test_only_an_administrator_opens_the_staff_screen_or_sets_a_password(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    assert client.get("/staff/users").status_code == 302  # signed out: to the sign-in
    log_in(client, "acct")
    assert client.get("/staff/users").status_code == 403
    token = csrf_token(client, "/staff/exceptions")
    refused = client.post("/staff/users/clerk/password", data={"password": NEW, "confirm": NEW, "csrf_token": token})
    assert refused.status_code == 403
    assert _signs_in(session, "clerk", PASSWORD)


def test_an_administrator_cannot_set_the_password_of_another_municipalitys_staff(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    from gateway.services.reference import seed_reference_data

    seed_reference_data(session, [{"code": "130001", "name": "東京都", "name_kana": "ﾄｳｷｮｳﾄ",
                                   "company_code": "913000", "client_code": "13000",
                                   "store_deadline_offset_days": 14, "pay_base_url": "http://127.0.0.1:5000",
                                   "funds": []}])
    create_user(session, "130001", "elsewhere", "counter_staff", PASSWORD, actor="test")
    log_in(client, "admin")
    assert "elsewhere" not in client.get("/staff/users").get_data(as_text=True)
    response = client.post("/staff/users/elsewhere/password", data={
        "password": NEW, "confirm": NEW, "csrf_token": csrf_token(client, "/staff/users")})
    assert response.status_code == 404  # another ward's account: not there for this administrator
    assert _signs_in(session, "elsewhere", PASSWORD)


# -- kokin users ----------------------------------------------------------------------------------


def test_users_password_from_stdin_replaces_the_password_and_records_who(app, session: Session,  # type: ignore[no-untyped-def]
                                                                          staff: dict[str, StaffUser]) -> None:
    result = app.test_cli_runner().invoke(cli, ["users", "password", "clerk", "--password-stdin"], input=NEW + "\n")
    assert result.exit_code == 0, result.output
    assert result.output == "user clerk: new password set\n"
    assert _signs_in(session, "clerk", NEW) and not _signs_in(session, "clerk", PASSWORD)
    assert _events(session, "user.password_set") == [("cli", {"username": "clerk", "sessions_revoked": 0})]


def test_users_password_generate_prints_a_password_that_signs_in(app, session: Session,  # type: ignore[no-untyped-def]
                                                                  staff: dict[str, StaffUser]) -> None:
    result = app.test_cli_runner().invoke(cli, ["users", "password", "clerk", "--generate"])
    assert result.exit_code == 0, result.output
    generated = result.output.splitlines()[-1].removeprefix("password (shown once): ")
    assert len(generated) >= 10 and _signs_in(session, "clerk", generated)


def test_users_password_prompts_twice_and_refuses_an_unknown_user(app, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    prompted = runner.invoke(cli, ["users", "password", "acct"], input=f"{NEW}\n{NEW}\n")
    assert prompted.exit_code == 0 and "user acct: new password set" in prompted.output
    unknown = runner.invoke(cli, ["users", "password", "nobody", "--password-stdin"], input=NEW + "\n")
    assert unknown.exit_code == 1
    assert unknown.output.strip().splitlines()[-1] == "Error: there is no user 'nobody'"
    empty = runner.invoke(cli, ["users", "password", "acct", "--password-stdin"], input="\n")
    assert empty.exit_code == 1 and "no password on standard input" in empty.output


def test_users_create_twice_says_so_and_changes_nothing(app, session: Session) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    args = ["users", "create", "clerk9", "--role", "counter_staff", "--counter", "resident", "--password-stdin"]
    first = runner.invoke(cli, args, input=PASSWORD + "\n")
    assert first.exit_code == 0 and "user clerk9 created with role counter_staff" in first.output
    second = runner.invoke(cli, args, input=NEW + "\n")
    assert second.exit_code == 0, second.output
    assert "user clerk9 exists already with role counter_staff; nothing changed" in second.output
    assert _signs_in(session, "clerk9", PASSWORD)  # the second password was not taken
    assert [data for _, data in _events(session, "user.created")] == [{"username": "clerk9", "role": "counter_staff"}]


def test_users_create_of_an_existing_name_with_another_role_fails_and_says_what_differs(
        app, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["users", "create", "clerk", "--role", "approver",
                                                "--password-stdin"], input=NEW + "\n")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: user clerk exists already with role counter_staff (not approver), counter resident (not None); "
        "nothing changed")
    assert session.scalar(select(StaffUser.role).where(StaffUser.username == "clerk")) == "counter_staff"
