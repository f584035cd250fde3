"""Staff sign-in a ward can defend (issue 16): lockout, throttling, equal work for unknown names,
server-side sessions, TOTP for the roles that move money, and an audit event for every step."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cli import cli
from gateway.db import utcnow
from gateway.models import Event, StaffSession, StaffUser
from gateway.services import staff_sessions
from gateway.services.staff_accounts import create_user
from tests.staff import AUTHENTICATORS, PASSWORD, TOKEN, csrf_token, log_in

CODE = "131075"
NEW = "a-new-pass-2027!"  # noqa: S105


@pytest.fixture
def staff(session: Session) -> dict[str, StaffUser]:
    return {name: create_user(session, CODE, name, role, PASSWORD, counter_code="resident", actor="test")
            for name, role in [("clerk", "counter_staff"), ("acct", "accounting"), ("admin", "administrator"),
                               ("approver", "approver")]}


def _post_login(client: FlaskClient, username: str, password: str, address: str = "127.0.0.1") -> Any:
    return client.post("/staff/login", data={"username": username, "password": password,
                                              "csrf_token": csrf_token(client)},
                       environ_base={"REMOTE_ADDR": address})


def _events(session: Session, kind: str) -> list[tuple[str, dict[str, Any]]]:
    rows = [(e.actor, e.data) for e in session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))]
    session.rollback()
    return rows


def _user(session: Session, username: str) -> StaffUser:
    session.expire_all()
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    session.rollback()
    assert user is not None
    return user


def _signed_in(client: FlaskClient, path: str = "/staff/close") -> bool:
    response = client.get(path)
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


# -- lockout and throttling -----------------------------------------------------------------------


def test_forty_wrong_passwords_then_the_right_one_is_refused_until_an_administrator_unlocks(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    """The finding: 40 wrong passwords in 4 s, then the right one worked. Each from its own address,
    so that only the lock of the user can refuse the last one."""
    for attempt in range(40):
        assert _post_login(client, "clerk", f"wrong-{attempt}", f"10.0.{attempt}.1").status_code == 401
    right = _post_login(client, "clerk", PASSWORD, "10.1.0.1")
    assert right.status_code == 401 and "ロック" in right.get_data(as_text=True)
    assert not _signed_in(client)
    assert _user(session, "clerk").locked_at is not None
    assert [data["failures"] for _, data in _events(session, "user.locked")] == [5]
    reasons = [data["reason"] for _, data in _events(session, "user.sign_in_failed")]
    assert reasons == ["bad_password"] * 5 + ["locked"] * 36

    admin = client.application.test_client()
    assert log_in(admin, "admin").status_code == 302
    page = admin.get("/staff/users").get_data(as_text=True)
    assert "ロック中" in page and 'aria-label="clerk のロックを解除"' in page
    assert admin.post("/staff/users/clerk/unlock", data={"csrf_token": csrf_token(admin, "/staff/users")}
                      ).status_code == 302
    assert _events(session, "user.unlocked") == [("admin", {"username": "clerk", "was_locked": True})]
    assert _post_login(client, "clerk", PASSWORD, "10.1.0.2").status_code == 302
    assert _signed_in(client)


def test_a_lock_runs_out_after_the_configured_minutes(app, client: FlaskClient, session: Session,
                                                      staff: dict[str, StaffUser], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gateway.services import staff_sign_in

    for attempt in range(5):
        _post_login(client, "clerk", "wrong-password", f"10.2.{attempt}.1")
    locked = _user(session, "clerk")
    assert locked.locked_until is not None and locked.locked_at is not None
    assert locked.locked_until - locked.locked_at == timedelta(minutes=15)
    assert _post_login(client, "clerk", PASSWORD, "10.3.0.1").status_code == 401
    later = utcnow() + timedelta(minutes=16)
    monkeypatch.setattr(staff_sign_in, "utcnow", lambda: later)
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: later)
    assert _post_login(client, "clerk", PASSWORD, "10.3.0.2").status_code == 302
    assert _user(session, "clerk").failed_sign_ins == 0


def test_kokin_users_unlock_lifts_the_lock(app, client: FlaskClient, session: Session,
                                           staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    for attempt in range(5):
        _post_login(client, "clerk", "wrong-password", f"10.4.{attempt}.1")
    result = app.test_cli_runner().invoke(cli, ["users", "unlock", "clerk"])
    assert result.exit_code == 0 and "user clerk: unlocked" in result.output, result.output
    assert _post_login(client, "clerk", PASSWORD, "10.5.0.1").status_code == 302
    assert _events(session, "user.unlocked") == [("cli", {"username": "clerk", "was_locked": True})]


def test_twenty_failures_from_one_address_are_answered_429_with_retry_after(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    for attempt in range(20):
        assert _post_login(client, f"nobody-{attempt}", PASSWORD, "192.0.2.7").status_code == 401
    refused = _post_login(client, "clerk", PASSWORD, "192.0.2.7")  # even the right password
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 600
    assert "待ってから" in refused.get_data(as_text=True)
    assert _post_login(client, "clerk", PASSWORD, "192.0.2.8").status_code == 302  # another address is not held


def test_an_unknown_user_costs_exactly_one_password_hash_like_a_known_one(
        client: FlaskClient, staff: dict[str, StaffUser], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The finding: an unknown user hashed twice (a hash made, then checked), so timing told names apart.
    Counts the key derivations werkzeug runs (scrypt, or pbkdf2 for older hashes), not the time."""
    import hashlib as hashlib_module

    calls: list[str] = []

    def counted(name: str) -> Any:
        real = getattr(hashlib_module, name)

        def derive(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)
        return derive

    for name in ("scrypt", "pbkdf2_hmac"):
        monkeypatch.setattr(hashlib_module, name, counted(name))

    def hashes(username: str, password: str) -> int:
        calls.clear()
        assert _post_login(client, username, password).status_code == 401
        return len(calls)

    hashes("warm-up", "whatever-it-is")  # a process makes its dummy hash once, at the first unknown name
    assert hashes("nobody", PASSWORD) == hashes("clerk", "not-the-password") == 1


# -- sessions in the database ---------------------------------------------------------------------


def _session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _with_cookie(client: FlaskClient, value: str) -> FlaskClient:
    other = client.application.test_client()
    other.set_cookie("session", value)
    return other


def test_a_cookie_copied_before_logout_is_refused_afterwards(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    assert log_in(client, "clerk").status_code == 302
    copied = _session_cookie(client)
    assert _signed_in(_with_cookie(client, copied))
    token = csrf_token(client, "/staff/close")
    assert client.post("/staff/logout", data={"csrf_token": token}).status_code == 302
    assert not _signed_in(_with_cookie(client, copied))
    assert not _signed_in(client)
    rows = list(session.scalars(select(StaffSession)))
    session.rollback()
    assert [(row.revoked_reason, row.revoked_at is not None) for row in rows] == [("logout", True)]
    assert _events(session, "user.signed_out") == [("clerk", {"username": "clerk"})]


def test_the_cookie_carries_a_token_whose_hash_alone_is_kept(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    log_in(client, "clerk")
    with client.session_transaction() as cookie:
        token = cookie["staff_session"]
        assert "_user_id" not in cookie  # Flask-Login's user id (and its remember-me cookie) are not used
    assert client.get_cookie("remember_token") is None
    ids = list(session.scalars(select(StaffSession.id)))
    session.rollback()
    assert ids == [hashlib.sha256(token.encode()).hexdigest()] and token not in ids


def test_a_session_idle_longer_than_the_timeout_is_revoked_and_audited(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "clerk")
    start = utcnow()
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: start + timedelta(minutes=29))
    assert _signed_in(client)  # 29 minutes idle: still signed in, and the request is noted
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: start + timedelta(minutes=29 + 31))
    assert not _signed_in(client)
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: start + timedelta(minutes=61))
    assert not _signed_in(client)  # revoked for good, not only while idle
    assert _events(session, "user.session_expired") == [("clerk", {"username": "clerk", "reason": "idle"})]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"STAFF_IDLE_TIMEOUT_MINUTES": 30, "STAFF_SESSION_HOURS": 2}


def test_a_busy_session_still_ends_at_its_absolute_lifetime(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "clerk")
    start = utcnow()
    for minutes in range(20, 120, 20):  # a request every 20 minutes: never idle
        monkeypatch.setattr(staff_sessions, "utcnow", lambda m=minutes: start + timedelta(minutes=m))
        assert _signed_in(client), minutes
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: start + timedelta(minutes=121))
    assert not _signed_in(client)
    assert _events(session, "user.session_expired") == [("clerk", {"username": "clerk", "reason": "lifetime"})]


def test_the_idle_timeout_is_configurable(app, client: FlaskClient, staff: dict[str, StaffUser],
                                          monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app.config["STAFF_IDLE_TIMEOUT_MINUTES"] = 5
    log_in(client, "clerk")
    start = utcnow()
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: start + timedelta(minutes=6))
    assert not _signed_in(client)


def test_last_seen_is_written_at_most_once_a_minute(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "clerk")
    start = utcnow()

    def last_seen() -> Any:
        session.expire_all()
        value = session.scalar(select(StaffSession.last_seen_at))
        session.rollback()
        return value

    first = last_seen()
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: start + timedelta(seconds=30))
    _signed_in(client)
    assert last_seen() == first
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: start + timedelta(seconds=90))
    _signed_in(client)
    assert last_seen() == start + timedelta(seconds=90)


# -- TOTP -----------------------------------------------------------------------------------------


def test_an_accounting_user_must_enrol_an_authenticator_and_can_open_nothing_else_until_then(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    response = _post_login(client, "acct", PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/staff/mfa/enrol"
    for path in ("/staff/exceptions", "/staff/", "/staff/account", "/staff/mfa"):
        assert client.get(path).headers["Location"] == "/staff/mfa/enrol", path
    page = client.get("/staff/mfa/enrol").get_data(as_text=True)
    assert '<img src="data:image/svg+xml' in page and "<script" not in page
    secret = re.search(r'id="mfa-secret">([A-Z2-7 ]+)<', page)
    assert secret is not None
    secret_text = secret.group(1).replace(" ", "")
    token = TOKEN.search(page)
    assert token is not None
    wrong = client.post("/staff/mfa/enrol", data={"code": "123456" if pyotp.TOTP(secret_text).now() != "123456"
                                                  else "654321", "csrf_token": token.group(1)})
    assert wrong.status_code == 401 and 'aria-invalid="true"' in wrong.get_data(as_text=True)
    assert _user(session, "acct").mfa_secret is None
    right = client.post("/staff/mfa/enrol", data={"code": pyotp.TOTP(secret_text).now(), "csrf_token": token.group(1)})
    assert right.status_code == 302 and right.headers["Location"] == "/staff/"
    assert _signed_in(client, "/staff/exceptions")

    stored = _user(session, "acct").mfa_secret
    assert stored is not None and secret_text.encode() not in stored  # encrypted at rest
    assert app.extensions["kokin.cipher"].decrypt(stored) == secret_text
    assert _events(session, "user.mfa_enrolled") == [("acct", {"username": "acct"})]
    assert _events(session, "user.signed_in") == [("acct", {"username": "acct", "mfa": True})]
    assert [data["reason"] for _, data in _events(session, "user.sign_in_failed")] == ["bad_code"]


@pytest.mark.parametrize("username", ["approver", "admin"])
def test_approvers_and_administrators_need_the_second_factor_too(
        client: FlaskClient, staff: dict[str, StaffUser], username: str) -> None:
    assert _post_login(client, username, PASSWORD).headers["Location"] == "/staff/mfa/enrol"


def test_a_wrong_or_reused_code_is_refused(client: FlaskClient, session: Session,
                                           staff: dict[str, StaffUser]) -> None:
    assert log_in(client, "acct").status_code == 302  # enrols; the code of that step is used
    secret, used_step = AUTHENTICATORS["acct"]
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/exceptions")})
    assert _post_login(client, "acct", PASSWORD).headers["Location"] == "/staff/mfa"
    token = csrf_token(client, "/staff/mfa")
    reused = client.post("/staff/mfa", data={"code": pyotp.TOTP(secret).generate_otp(used_step), "csrf_token": token})
    assert reused.status_code == 401 and "すでに使われた" in reused.get_data(as_text=True)
    wrong = client.post("/staff/mfa", data={"code": "12345", "csrf_token": token})
    assert wrong.status_code == 401
    fresh = pyotp.TOTP(secret).generate_otp(used_step + 1)
    full_width = fresh.translate(str.maketrans("0123456789", "０１２３４５６７８９"))  # as a Japanese IME types it
    assert client.post("/staff/mfa", data={"code": full_width, "csrf_token": token}).status_code == 302
    assert _signed_in(client, "/staff/exceptions")
    assert _user(session, "acct").mfa_last_step == used_step + 1
    reasons = [data["reason"] for _, data in _events(session, "user.sign_in_failed")]
    assert reasons == ["bad_code", "bad_code"]


def test_five_wrong_codes_lock_the_user_like_wrong_passwords(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    log_in(client, "acct")
    secret, step = AUTHENTICATORS["acct"]
    for attempt in range(5):
        other = client.application.test_client()
        _post_login(other, "acct", PASSWORD, f"10.6.{attempt}.1")
        other.post("/staff/mfa", data={"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111",
                                       "csrf_token": csrf_token(other, "/staff/mfa")},
                   environ_base={"REMOTE_ADDR": f"10.6.{attempt}.1"})
    assert _user(session, "acct").locked_at is not None
    assert not _signed_in(client, "/staff/exceptions")  # the lock ended the sessions there were


def test_counter_staff_sign_in_with_the_password_alone_and_may_enrol_from_their_account(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    assert _post_login(client, "clerk", PASSWORD).headers["Location"] == "/staff/"
    assert "登録は任意です" in client.get("/staff/account").get_data(as_text=True)
    page = client.get("/staff/mfa/enrol").get_data(as_text=True)
    secret = re.search(r'id="mfa-secret">([A-Z2-7 ]+)<', page)
    assert secret is not None
    code = pyotp.TOTP(secret.group(1).replace(" ", "")).now()
    answer = client.post("/staff/mfa/enrol", data={"code": code, "csrf_token": csrf_token(client, "/staff/mfa/enrol")})
    assert answer.status_code == 302 and _signed_in(client)
    assert _events(session, "user.mfa_enrolled") == [("clerk", {"username": "clerk"})]
    assert _post_login(client.application.test_client(), "clerk", PASSWORD).headers["Location"] == "/staff/mfa"


def test_an_administrator_resets_a_users_authenticator_and_the_user_enrols_anew(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    assert log_in(client, "acct").status_code == 302
    admin = app.test_client()
    log_in(admin, "admin")
    assert 'aria-label="acct の認証アプリの登録を解除"' in admin.get("/staff/users").get_data(as_text=True)
    admin.post("/staff/users/acct/mfa-reset", data={"csrf_token": csrf_token(admin, "/staff/users")})
    assert _user(session, "acct").mfa_secret is None
    assert not _signed_in(client, "/staff/exceptions")  # the sessions of the old authenticator end
    assert _events(session, "user.mfa_reset") == [("admin", {"username": "acct", "had_mfa": True,
                                                              "sessions_revoked": 1})]
    assert _post_login(app.test_client(), "acct", PASSWORD).headers["Location"] == "/staff/mfa/enrol"
    result = app.test_cli_runner().invoke(cli, ["users", "reset-mfa", "acct"])
    assert result.exit_code == 0 and "authenticator reset" in result.output


# -- passwords ------------------------------------------------------------------------------------


def test_a_user_changes_their_password_with_the_current_one_and_their_other_sessions_end(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "clerk")
    elsewhere = app.test_client()
    log_in(elsewhere, "clerk")
    token = csrf_token(client, "/staff/account")
    wrong = client.post("/staff/account", data={"current_password": "not-it-at-all", "new_password": NEW,
                                                "confirm": NEW, "csrf_token": token}, follow_redirects=True)
    assert "現在のパスワードが違います。" in wrong.get_data(as_text=True)
    changed = client.post("/staff/account", data={"current_password": PASSWORD, "new_password": NEW,
                                                  "confirm": NEW, "csrf_token": token}, follow_redirects=True)
    assert "パスワードを変更しました" in changed.get_data(as_text=True)
    assert _signed_in(client) and not _signed_in(elsewhere)
    assert _post_login(app.test_client(), "clerk", PASSWORD).status_code == 401
    assert _post_login(app.test_client(), "clerk", NEW).status_code == 302
    assert _events(session, "user.password_changed") == [("clerk", {"username": "clerk", "sessions_revoked": 1})]
    assert _events(session, "user.password_change_refused") == [("clerk", {"username": "clerk",
                                                                           "reason": "bad_password"})]


def test_an_administrators_password_reset_ends_the_users_sessions(
        app, client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "clerk")
    admin = app.test_client()
    log_in(admin, "admin")
    admin.post("/staff/users/clerk/password", data={"password": NEW, "confirm": NEW,
                                                    "csrf_token": csrf_token(admin, "/staff/users")})
    assert not _signed_in(client)
    assert _events(session, "user.password_set") == [("admin", {"username": "clerk", "sessions_revoked": 1})]


# -- the audit record -----------------------------------------------------------------------------


def test_every_sign_in_step_is_an_audit_event_that_never_holds_a_password_or_a_code(
        client: FlaskClient, session: Session, staff: dict[str, StaffUser]) -> None:
    _post_login(client, "clerk", "wrong-password-1")
    _post_login(client, "my-password-typed-as-name", PASSWORD)
    log_in(client, "clerk")
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/close")})
    log_in(client, "acct")
    events = [(e.kind, e.actor, e.data) for e in session.scalars(select(Event).where(Event.kind.like("user.%"),
                                                                                   Event.actor != "test")
                                                                  .order_by(Event.id))]
    session.rollback()
    assert [(kind, actor) for kind, actor, _ in events] == [
        ("user.sign_in_failed", "clerk"), ("user.sign_in_failed", "anonymous"), ("user.signed_in", "clerk"),
        ("user.signed_out", "clerk"), ("user.mfa_enrolled", "acct"), ("user.signed_in", "acct")]
    assert events[0][2] == {"username": "clerk", "reason": "bad_password"}
    assert events[1][2] == {"reason": "unknown_user"}  # the name typed is not kept
    text = repr(events)
    secret, step = AUTHENTICATORS["acct"]
    assert PASSWORD not in text and "wrong-password-1" not in text and "my-password" not in text
    assert pyotp.TOTP(secret).generate_otp(step) not in text and secret not in text



@pytest.mark.parametrize(("proxies", "recorded"), [(0, "10.0.0.5"), (1, "203.0.113.7")])
def test_behind_a_trusted_load_balancer_failures_count_against_the_clients_address(
        db_url: str, tmp_path: Any, session: Session, staff: dict[str, StaffUser], proxies: int,
        recorded: str) -> None:
    """The load balancer (10.0.0.5) appends the client's address; trusted only when configured."""
    from gateway import create_app
    from gateway.models import SignInFailure
    from tests.conftest import MUNICIPALITIES

    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "MUNICIPALITIES": MUNICIPALITIES, "TRUSTED_PROXIES": proxies})
    client = app.test_client()
    client.post("/staff/login", data={"username": "clerk", "password": "wrong-password!",
                                      "csrf_token": csrf_token(client)},
                headers={"X-Forwarded-For": "203.0.113.7"}, environ_base={"REMOTE_ADDR": "10.0.0.5"})
    app.extensions["kokin.db"].dispose()
    assert session.scalars(select(SignInFailure.address)).all() == [recorded]
