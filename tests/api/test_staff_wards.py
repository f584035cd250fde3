"""An administrator of the service holding several wards: grants, the ward switcher, and what each ward sees.

Two wards in one deployment, configured and seeded as in tests/api/test_ward_isolation.py:
A (the suite's ward) and B. The administrator's screen lists a ward's staff accounts and acts on
them by name, so it shows plainly which ward is in effect, and a B account is one of B's objects.
"""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.cli import cli
from gateway.config import load_settings
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.models import Event, Municipality, StaffSession, StaffUser, StaffWard
from gateway.services.reference import seed_reference_data
from gateway.services.staff_accounts import create_user
from gateway.services.staff_wards import grant_ward, list_staff, revoke_ward
from tests.api.test_ward_isolation import B, _ward_b
from tests.staff import PASSWORD, csrf_token, log_in

A = "131075"
UNKNOWN = "999999"


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"MUNICIPALITIES": [load_settings()["MUNICIPALITIES"][0], _ward_b()]}


@pytest.fixture
def staff(session: Session) -> dict[str, StaffUser]:
    """Ward A's administrator and accountant, and ward B's clerk: the accounts each ward's screen lists."""
    seed_reference_data(session, [_ward_b()])
    users = {name: create_user(session, code, name, role, PASSWORD, actor="test")
             for name, code, role in [("admin", A, "administrator"), ("acct", A, "accounting"),
                                      ("koto-clerk", B, "counter_staff")]}
    session.commit()
    return users


def _ward_id(session: Session, code: str) -> int:
    ward_id = session.scalar(select(Municipality.id).where(Municipality.code == code))
    session.rollback()
    assert ward_id is not None
    return ward_id


def _events(session: Session, kind: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    rows = [(e.actor, e.municipality_id, e.data)
            for e in session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))]
    session.rollback()
    return rows


def _chosen_wards(session: Session, username: str) -> list[int | None]:
    """The ward chosen in each live session of the user (None: the home ward)."""
    rows = list(session.scalars(select(StaffSession.municipality_id).join(StaffUser)
                                .where(StaffUser.username == username, StaffSession.revoked_at.is_(None),
                                       StaffSession.complete.is_(True))))
    session.rollback()
    return rows


def _grants(session: Session) -> list[tuple[int, int]]:
    rows = [(g.user_id, g.municipality_id) for g in session.scalars(select(StaffWard))]
    session.rollback()
    return rows


def _switch(client: FlaskClient, code: str) -> Any:
    return client.post("/staff/ward", data={"ward": code, "csrf_token": csrf_token(client, "/staff/account")})


def _listed(client: FlaskClient) -> set[str]:
    page = client.get("/staff/users").get_data(as_text=True)
    return {name for name in ("admin", "acct", "koto-clerk") if f'<th scope="row">{name}</th>' in page}


# -- the ward switcher ----------------------------------------------------------------------------


def test_an_administrator_switched_to_a_second_ward_sees_its_objects_and_none_of_the_home_wards(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    grant_ward(session, "admin", B, actor="test")
    log_in(client, "admin")
    home = client.get("/staff/users").get_data(as_text=True)
    assert 'id="ward-choice"' in home and f'<option value="{B}">' in home
    assert _listed(client) == {"admin", "acct"}
    assert client.post("/staff/users/koto-clerk/unlock",
                       data={"csrf_token": csrf_token(client, "/staff/users")}).status_code == 404

    switched = _switch(client, B)
    assert switched.status_code == 302 and switched.headers["Location"].endswith("/staff/")
    assert f"江東区（{B}）の画面に切り替えました。" in client.get("/staff/account").get_data(as_text=True)
    assert _listed(client) == {"koto-clerk"}
    token = csrf_token(client, "/staff/users")
    assert client.post("/staff/users/acct/unlock", data={"csrf_token": token}).status_code == 404
    assert client.post("/staff/users/koto-clerk/unlock", data={"csrf_token": token}).status_code == 302
    assert _chosen_wards(session, "admin") == [_ward_id(session, B)]

    assert _switch(client, A).status_code == 302
    assert _listed(client) == {"admin", "acct"}
    assert _chosen_wards(session, "admin") == [None]
    assert [(actor, ward, data["ward"]) for actor, ward, data in _events(session, "user.ward_switched")] == [
        ("admin", _ward_id(session, B), B), ("admin", _ward_id(session, A), A)]


def test_switching_to_a_ward_not_held_is_a_404_and_changes_nothing(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    log_in(client, "admin")
    assert 'id="ward-choice"' not in client.get("/staff/users").get_data(as_text=True)  # one ward: no switcher
    for code in (B, UNKNOWN, ""):
        refused = _switch(client, code)
        assert refused.status_code == 404, code
        assert "ページが見つかりません" in refused.get_data(as_text=True)
    assert _listed(client) == {"admin", "acct"}
    assert _chosen_wards(session, "admin") == [None]
    assert _events(session, "user.ward_switched") == []


def test_another_role_cannot_switch_to_a_ward_it_does_not_hold(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    log_in(client, "acct")
    assert _switch(client, B).status_code == 404
    assert _chosen_wards(session, "acct") == [None]
    assert _events(session, "user.ward_switched") == []


def test_a_switch_without_its_csrf_token_is_refused_and_changes_nothing(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    grant_ward(session, "admin", B, actor="test")
    log_in(client, "admin")
    assert client.post("/staff/ward", data={"ward": B}).status_code == 400
    assert _chosen_wards(session, "admin") == [None]
    assert _events(session, "user.ward_switched") == []


def test_revoking_the_ward_in_effect_brings_the_screens_back_to_the_home_ward(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    grant_ward(session, "admin", B, actor="test")
    log_in(client, "admin")
    _switch(client, B)
    assert _listed(client) == {"koto-clerk"}

    assert revoke_ward(session, "admin", B, actor="test") is True
    assert _listed(client) == {"admin", "acct"}
    assert 'id="ward-choice"' not in client.get("/staff/users").get_data(as_text=True)
    assert _chosen_wards(session, "admin") == [None]
    assert _events(session, "user.ward_revoked") == [
        ("test", _ward_id(session, B), {"username": "admin", "ward": B, "sessions_moved_home": 1})]


def test_a_session_pointing_at_a_ward_no_longer_held_shows_the_home_ward(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    grant_ward(session, "admin", B, actor="test")
    log_in(client, "admin")
    _switch(client, B)
    session.execute(delete(StaffWard))  # a grant gone by a way that left the session as it was
    session.commit()
    assert _listed(client) == {"admin", "acct"}


# -- grants: the service --------------------------------------------------------------------------


def test_a_grant_and_a_revoke_are_each_audited_once_and_safe_to_repeat(
        session: Session, staff: dict[str, StaffUser]) -> None:
    assert grant_ward(session, "admin", B, actor="root") is True
    assert grant_ward(session, "admin", B, actor="root") is False
    assert _grants(session) == [(staff["admin"].id, _ward_id(session, B))]
    assert [(s.username, s.home, s.wards) for s in list_staff(session)] == [
        ("acct", A, ()), ("admin", A, (B,)), ("koto-clerk", B, ())]
    assert revoke_ward(session, "admin", B, actor="root") is True
    assert revoke_ward(session, "admin", B, actor="root") is False
    assert _grants(session) == []
    assert _events(session, "user.ward_granted") == [("root", _ward_id(session, B), {"username": "admin", "ward": B})]
    assert _events(session, "user.ward_revoked") == [
        ("root", _ward_id(session, B), {"username": "admin", "ward": B, "sessions_moved_home": 0})]


@pytest.mark.parametrize(("username", "code", "error", "message"), [
    ("nobody", B, NotFound, "there is no user 'nobody'"),
    ("admin", UNKNOWN, NotFound, f"municipality {UNKNOWN} is not configured"),
    ("acct", B, Conflict, "user acct has role accounting: only an administrator may hold more than the home ward"),
    ("admin", A, Conflict, f"{A} is the home ward of admin: it is neither granted nor revoked"),
])
def test_a_grant_is_refused_for_an_unknown_user_or_ward_another_role_or_the_home_ward(
        session: Session, staff: dict[str, StaffUser], username: str, code: str, error: type[GatewayError],
        message: str) -> None:
    with pytest.raises(error) as refused:
        grant_ward(session, username, code, actor="root")
    assert refused.value.message == message
    if username != "acct":  # another role holds nothing to revoke: nothing changes, no error
        with pytest.raises(error):
            revoke_ward(session, username, code, actor="root")
    assert _grants(session) == []
    assert _events(session, "user.ward_granted") == _events(session, "user.ward_revoked") == []


def test_the_database_refuses_a_grant_to_another_role_and_a_change_of_role_while_holding_one(
        session: Session, staff: dict[str, StaffUser]) -> None:
    koto = _ward_id(session, B)
    for user, role in [(staff["acct"], "administrator"), (staff["acct"], "accounting")]:
        session.add(StaffWard(user_id=user.id, municipality_id=koto, role=role, granted_by="sql"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
    grant_ward(session, "admin", B, actor="root")
    with pytest.raises(IntegrityError):
        session.execute(update(StaffUser).where(StaffUser.username == "admin").values(role="accounting"))
        session.commit()
    session.rollback()
    assert _grants(session) == [(staff["admin"].id, koto)]


# -- grants: the commands -------------------------------------------------------------------------


def test_kokin_users_grant_ward_and_revoke_ward_say_what_they_did_and_list_shows_the_wards(
        app: Flask, session: Session, staff: dict[str, StaffUser]) -> None:
    runner = app.test_cli_runner()
    granted = runner.invoke(cli, ["users", "grant-ward", "admin", "--ward", B])
    assert granted.exit_code == 0 and granted.output == f"user admin: ward {B} granted\n"
    again = runner.invoke(cli, ["users", "grant-ward", "admin", "--ward", B])
    assert again.exit_code == 0 and again.output == f"user admin holds ward {B} already; nothing changed\n"
    listed = runner.invoke(cli, ["users", "list"])
    assert listed.exit_code == 0 and listed.output.splitlines() == [
        f"acct  accounting  home {A}  wards [-]", f"admin  administrator  home {A}  wards [{B}]",
        f"koto-clerk  counter_staff  home {B}  wards [-]"]
    revoked = runner.invoke(cli, ["users", "revoke-ward", "admin", "--ward", B])
    assert revoked.exit_code == 0 and revoked.output == f"user admin: ward {B} revoked\n"
    again = runner.invoke(cli, ["users", "revoke-ward", "admin", "--ward", B])
    assert again.exit_code == 0 and "holds no ward" in again.output and "nothing changed" in again.output
    assert f"admin  administrator  home {A}  wards [-]" in runner.invoke(cli, ["users", "list"]).output
    assert [actor for actor, _, _ in _events(session, "user.ward_granted") + _events(session, "user.ward_revoked")
            ] == ["cli", "cli"]


@pytest.mark.parametrize(("command", "username", "code", "reason"), [
    ("grant-ward", "nobody", B, "there is no user 'nobody'"),
    ("revoke-ward", "nobody", B, "there is no user 'nobody'"),
    ("grant-ward", "admin", UNKNOWN, f"municipality {UNKNOWN} is not configured"),
    ("revoke-ward", "admin", UNKNOWN, f"municipality {UNKNOWN} is not configured"),
    ("grant-ward", "acct", B, "user acct has role accounting: only an administrator may hold more than the home ward"),
    ("grant-ward", "admin", A, f"{A} is the home ward of admin: it is neither granted nor revoked"),
    ("revoke-ward", "admin", A, f"{A} is the home ward of admin: it is neither granted nor revoked"),
])
def test_the_ward_commands_fail_with_a_one_line_reason_and_change_nothing(
        app: Flask, session: Session, staff: dict[str, StaffUser], command: str, username: str, code: str,
        reason: str) -> None:
    result = app.test_cli_runner().invoke(cli, ["users", command, username, "--ward", code])
    assert result.exit_code == 1
    assert result.output == f"Error: {reason}\n"
    assert _grants(session) == []
    assert _events(session, "user.ward_granted") == _events(session, "user.ward_revoked") == []


def test_a_ward_command_needs_the_ward(app: Flask, staff: dict[str, StaffUser]) -> None:
    result = app.test_cli_runner().invoke(cli, ["users", "grant-ward", "admin"])
    assert result.exit_code == 2 and "Missing option '--ward'" in result.output
