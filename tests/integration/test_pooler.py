"""Behind PgBouncer in transaction mode, and reports from a read replica (PostgreSQL only).

The tests start a real PgBouncer (Debian's package, installed by scripts/system-packages.sh)
in front of the test database, in transaction mode: each transaction gets whichever server
connection is free, so anything kept in a server session across transactions breaks.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from gateway import create_app
from gateway.db import Database, ReadReplica
from gateway.errors import Conflict
from gateway.models import Payment, ReceiptRecord, Slip
from gateway.scheduler.guard import run_guarded
from gateway.scheduler.process import serve
from reconciliation.receipts import export_next
from tests.card import CODE, issue_slips_to_pay, pay_by_card
from tests.conftest import BACKEND, TEST_DATA_KEY, TEST_PAYER_REF_KEY

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="PgBouncer and replicas are PostgreSQL's")
PGBOUNCER = "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_pgbouncer(db_url: str, pool_size: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    """PgBouncer in transaction mode in front of `db_url`'s database; (its process, the URL through it, its folder)."""
    assert Path(PGBOUNCER).exists(), "PgBouncer is missing: scripts/system-packages.sh installs it"
    url = make_url(db_url)
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="kokin_pgbouncer_"))  # outside pytest's folders, which only root may enter
    (folder / "users.txt").write_text(f'"{url.username}" ""\n', encoding="utf-8")
    (folder / "pgbouncer.ini").write_text(f"""[databases]
kokin = host={url.host} port={url.port or 5432} dbname={url.database} user={url.username}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 100
""", encoding="utf-8")
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer will not run as root
        shutil.chown(folder, "postgres")
        for path in folder.iterdir():
            shutil.chown(path, "postgres")
        command[1:1] = ["-u", "postgres"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, f"PgBouncer exited: {server.stderr.read().decode() if server.stderr else ''}"
            assert time.monotonic() < deadline, "PgBouncer did not start"
            time.sleep(0.1)
    return server, url.set(host="127.0.0.1", port=port, database="kokin").render_as_string(hide_password=False), folder


def _stop(server: subprocess.Popen[bytes], folder: Path) -> None:
    server.terminate()
    server.communicate(timeout=30)  # and closes its pipe
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pgbouncer(db_url: str) -> Iterator[str]:
    server, url, folder = _start_pgbouncer(db_url, pool_size=2)
    yield url
    _stop(server, folder)


@pytest.fixture
def pooled_app(pgbouncer: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", TEST_PAYER_REF_KEY)
    app = create_app({"DATABASE_URL": pgbouncer, "DATABASE_POOLER": "transaction", "DATABASE_DIRECT_URL": db_url,
                      "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance")})
    yield app
    app.extensions["kokin.db"].dispose()


def test_without_the_pooler_setting_prepared_statements_break_behind_pgbouncer(db_url: str) -> None:
    """The control: psycopg prepares a statement run five times; PgBouncer 1.18 then hands its
    server session to another client, which prepares the same name there."""
    server, url, folder = _start_pgbouncer(db_url, pool_size=1)
    try:
        database = Database(url)  # no pooler setting
        one, two = database.engine.connect(), database.engine.connect()
        with pytest.raises(DBAPIError, match="prepared statement"):
            for _ in range(10):
                for connection in (one, two):
                    connection.execute(text("SELECT count(*) FROM municipalities")).scalar()
                    connection.commit()
        one.invalidate()
        two.invalidate()
        database.dispose()
    finally:
        _stop(server, folder)


def test_the_gateway_books_exports_and_runs_jobs_behind_pgbouncer_in_transaction_mode(pooled_app) -> None:  # type: ignore[no-untyped-def]
    app = pooled_app
    database = app.extensions["kokin.db"]
    session = database.session()
    slips = issue_slips_to_pay(session, app.extensions["kokin.cipher"], 6)  # temporary tables, SET LOCAL
    slip_ids = [slip.id for slip in slips]
    slip_keys = [(slip.id, slip.municipality_id) for slip in slips]

    def pay(slip_key: tuple[int, int]) -> str:
        own = database.session()
        try:
            pay_by_card(app, own, own.get(Slip, slip_key))
            return "paid"
        except Conflict:  # the other payment of the slip was booked first
            return "refused"
        finally:
            own.close()

    # Twelve payments of six slips from eight threads, through a pool of two server connections.
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(pay, slip_keys * 2))
    assert outcomes.count("paid") >= 6
    for slip_id in slip_ids:  # and the same statements well over five times each: nothing prepared
        session.execute(select(func.count()).select_from(Payment).where(Payment.slip_id == slip_id)).scalar()
    session.rollback()
    paid = session.execute(select(Payment.slip_id, func.count()).where(Payment.applied.is_(True))
                           .group_by(Payment.slip_id)).all()
    assert sorted(paid) == [(slip_id, 1) for slip_id in sorted(slip_ids)]  # each paid once, the second kept apart
    exported = export_next(session, CODE, "receipts-csv", actor="test")  # ANALYZE and the claim inside one transaction
    assert exported is not None
    assert exported.count == session.scalar(select(func.count()).select_from(ReceiptRecord))
    assert run_guarded(app, "pooled", date(2026, 7, 1), lambda _app, _day: {"ok": 1}) == "succeeded"
    assert run_guarded(app, "pooled", date(2026, 7, 1), lambda _app, _day: {"ok": 1}) == "skipped"
    session.close()


def test_the_scheduler_refuses_to_hold_its_leader_lock_through_a_transaction_pooler(
        pgbouncer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", TEST_PAYER_REF_KEY)
    app = create_app({"DATABASE_URL": pgbouncer, "DATABASE_POOLER": "transaction", "TESTING": True,
                      "INSTANCE_PATH": str(tmp_path / "instance")})
    with pytest.raises(RuntimeError, match="KOKIN_DATABASE_DIRECT_URL"):
        serve(app, threading.Event())
    app.extensions["kokin.db"].dispose()


# -- the read replica ------------------------------------------------------------------------------------------


def test_reports_read_the_replica_and_fall_back_to_the_primary_when_it_does_not_answer(app, db_url: str) -> None:  # type: ignore[no-untyped-def]
    primary = app.extensions["kokin.db"]
    # A stand-in for the replica: the same database under another application_name, so that the
    # session's connection shows which server session answered.
    url = make_url(db_url).update_query_dict({"application_name": "kokin-replica"}).render_as_string(
        hide_password=False)
    replica = ReadReplica(primary, url)
    with app.app_context():
        read = replica.session()
        assert read.scalar(text("SELECT current_setting('application_name')")) == "kokin-replica"
        replica.remove()
    port = _free_port()
    gone = ReadReplica(primary, make_url(db_url).set(port=port).render_as_string(hide_password=False))
    with app.app_context():
        began = time.monotonic()
        read = gone.session()
        assert read is primary.scoped()  # fell back
        assert time.monotonic() - began < 5
        began = time.monotonic()
        assert gone.session() is primary.scoped()  # and does not wait on the dead replica again at once
        assert time.monotonic() - began < 0.1
    primary.scoped.remove()
    replica.dispose()
    gone.dispose()
