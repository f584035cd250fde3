"""Crashes mid-transaction on PostgreSQL: a process killed (SIGKILL) while its transaction is open.

Each test starts the real thing as a process (`kokin ledger import`, `kokin agency import`,
gunicorn serving webhooks) on the test database, watches PostgreSQL until that process's
connection holds a write lock on the tables it books into (its transaction is open and has
written), kills it with SIGKILL, and then checks: nothing of the killed transaction is there,
a rerun completes, and every acknowledged payment is there exactly once.

The process's connection is found by its application_name (set in the database URL), so the
test's own connections and other xdist workers' databases never match.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from adapters.agency.simulator import Scheduled, StorePayment, write_file
from domain.calendar import business_day_after
from gateway.crypto import DataCipher
from gateway.models import (
    AgencyImport,
    AgencyReport,
    Assessment,
    Event,
    LedgerImport,
    Payment,
    ReceiptRecord,
    Slip,
    WebhookDelivery,
)
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from tests.card import open_card_payment
from tests.conftest import BACKEND, one_ward_config

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="SIGKILL mid-transaction is checked on PostgreSQL")

ROOT = Path(__file__).resolve().parents[2]
CODE = "131075"
AGENCY = "agency-fixed120"
WRITING = text(
    "SELECT a.pid FROM pg_stat_activity AS a JOIN pg_locks AS l ON l.pid = a.pid "
    "WHERE a.application_name = :name AND a.datname = current_database() AND l.mode = 'RowExclusiveLock' "
    "AND l.relation = ANY (CAST(:tables AS regclass[]))"
)
CONNECTED = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                 "AND datname = current_database()")


def _named(db_url: str, name: str) -> str:
    """The database URL whose connections PostgreSQL shows as application `name`."""
    url = make_url(db_url)
    return url.update_query_dict({"application_name": name}).render_as_string(hide_password=False)


def _env(db_url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "kokin.toml"
    one_ward_config(config, tmp_path / "instance")
    # KOKIN_DATA_KEYS is the app fixture's (set in os.environ): the processes read what the test wrote.
    return {**os.environ, "KOKIN_DATABASE_URL": db_url, "KOKIN_CONFIG": str(config), "PYTHONPATH": str(ROOT)}


def _kokin(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _kill_when_writing(process: subprocess.Popen[str], watch: Engine, name: str, tables: list[str],
                       *, pid: int | None = None, timeout: float = 120) -> None:
    """SIGKILL `process` (or `pid`) as soon as its connection holds a write lock on one of `tables`."""
    deadline = time.monotonic() + timeout
    with watch.connect() as conn:
        while conn.execute(WRITING, {"name": name, "tables": tables}).first() is None:
            conn.rollback()  # a fresh snapshot of pg_stat_activity each time
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"the process ended ({process.returncode}) before it was caught writing:\n{output}")
            assert time.monotonic() < deadline, "the process never wrote"
            time.sleep(0.002)
        os.kill(pid or process.pid, signal.SIGKILL)
        _wait_disconnected(conn, name)


def _wait_disconnected(conn: Any, name: str) -> None:
    """PostgreSQL rolls back a dead client's transaction when it notices the closed socket."""
    deadline = time.monotonic() + 30
    while conn.execute(CONNECTED, {"name": name}).scalar():
        conn.rollback()
        assert time.monotonic() < deadline, "the killed process's connection stayed"
        time.sleep(0.02)
    conn.rollback()


@pytest.fixture
def watch(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def _count(session: Session, model: Any) -> int:
    session.rollback()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_ledger_import_killed_mid_transaction_leaves_nothing_and_a_rerun_completes(
        app: Any, session: Session, db_url: str, tmp_path: Path, watch: Engine) -> None:
    rows = list(ward_rows(CODE, 2026, payers=4_000))
    path = tmp_path / "assessments.csv"
    path.write_bytes(ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)))
    events = _count(session, Event)
    name = "kokin-crash-ledger"
    env = _env(_named(db_url, name), tmp_path)

    killed = _kokin("ledger", "import", str(path), env=env)
    _kill_when_writing(killed, watch, name, ["assessments", "assessment_revisions", "ledger_imports"])
    killed.communicate(timeout=30)

    assert killed.returncode == -signal.SIGKILL
    assert (_count(session, Assessment), _count(session, LedgerImport)) == (0, 0)
    assert _count(session, Event) == events

    rerun = subprocess.run([sys.executable, "-m", "gateway.cli", "ledger", "import", str(path)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert (_count(session, Assessment), _count(session, LedgerImport)) == (len(rows), 1)
    again = subprocess.run([sys.executable, "-m", "gateway.cli", "ledger", "import", str(path)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already imported" in again.stdout
    assert _count(session, Assessment) == len(rows)


def _slips_with_barcodes(session: Session, cipher: DataCipher, payers: int) -> list[Slip]:
    rows = list(ward_rows(CODE, 2026, payers=payers))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="crash.csv")
    issue_slips(session, CODE)
    return list(session.scalars(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id)))


def test_an_agency_import_killed_mid_transaction_books_nothing_and_a_rerun_books_each_payment_once(
        app: Any, session: Session, cipher: DataCipher, db_url: str, tmp_path: Path, watch: Engine) -> None:
    slips = _slips_with_barcodes(session, cipher, payers=1_500)
    payments = [StorePayment(s.barcode, datetime.combine(s.due_date - timedelta(days=3), datetime.min.time())
                             + timedelta(hours=10, minutes=n % 60), f"{n % 9_999_999 + 1:07d}", "001")
                for n, s in enumerate(slips) if s.barcode is not None]
    sent_on = business_day_after(max(p.paid_at.date() for p in payments))
    data = write_file(app.extensions["kokin.agencies"][AGENCY],
                      [Scheduled(sent_on, "preliminary", p, None) for p in payments], created_on=sent_on,
                      client_code="13107")
    path = tmp_path / "sokuho.dat"
    path.write_bytes(data)
    paid_slips = select(func.count()).select_from(Slip).where(Slip.status == "paid")
    before = (_count(session, Payment), _count(session, AgencyReport), _count(session, ReceiptRecord),
              session.scalar(paid_slips))
    name = "kokin-crash-agency"
    env = _env(_named(db_url, name), tmp_path)

    killed = _kokin("agency", "import", str(path), "--adapter", AGENCY, env=env)
    _kill_when_writing(killed, watch, name, ["payments", "agency_reports", "agency_imports", "slips"])
    killed.communicate(timeout=30)

    assert killed.returncode == -signal.SIGKILL
    after = (_count(session, Payment), _count(session, AgencyReport), _count(session, ReceiptRecord),
             session.scalar(paid_slips))
    assert after == before == (0, 0, 0, 0)
    assert _count(session, AgencyImport) == 0

    rerun = subprocess.run([sys.executable, "-m", "gateway.cli", "agency", "import", str(path), "--adapter", AGENCY],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    session.rollback()
    per_slip = Counter(session.scalars(select(Payment.slip_id).where(Payment.channel == "agency")))
    assert len(per_slip) == len(payments) and set(per_slip.values()) == {1}
    assert session.scalar(paid_slips) == len(payments)
    receipts = session.scalar(select(func.count()).select_from(ReceiptRecord)
                              .where(ReceiptRecord.kind == "receipt"))
    assert receipts == len(payments)


# -- a webhook worker -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _gunicorn(env: dict[str, str], workers: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--graceful-timeout", "1", "gateway:create_app()"],
        cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):  # noqa: S310 - local server
                    break
            except OSError:
                assert server.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield server, port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def _deliver(port: int, headers: dict[str, str], body: bytes) -> int | None:
    """POST one notification; its status, or None when the connection broke (no acknowledgement)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/stripe", data=body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local server
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def test_webhook_workers_killed_mid_transaction_lose_no_acknowledged_payment_and_apply_none_twice(
        app: Any, session: Session, cipher: DataCipher, db_url: str, tmp_path: Path, watch: Engine) -> None:
    """Stripe retries every notification that was not answered 2xx; the gateway must apply each once."""
    stripe = app.extensions["kokin.adapters"]["stripe"]
    slips = _slips_with_barcodes(session, cipher, payers=120)[:300]
    deliveries: list[tuple[str, dict[str, str], bytes]] = []
    for slip in slips:
        started = open_card_payment(app, session, slip)
        ref = started.attempt.provider_ref
        assert ref is not None
        stripe.simulator.simulate_payment(ref, "paid")
        deliveries += [(ref, headers, body) for headers, body in stripe.simulator.events_for(ref, datetime.now())]
    name = "kokin-crash-webhooks"
    env = _env(_named(db_url, name), tmp_path)
    acknowledged: list[str] = []
    unanswered: list[tuple[str, dict[str, str], bytes]] = []
    lock = threading.Lock()

    with _gunicorn(env, workers=2) as (server, port):
        queue = list(deliveries)

        def send() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    ref, headers, body = queue.pop()
                status = _deliver(port, headers, body)
                with lock:
                    if status is not None and 200 <= status < 300:
                        acknowledged.append(ref)
                    else:
                        unanswered.append((ref, headers, body))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        with watch.connect() as conn:  # kill every worker while one of them is in a booking transaction
            deadline = time.monotonic() + 120
            while conn.execute(WRITING, {"name": name, "tables": ["payments", "webhook_deliveries",
                                                                  "receipt_records"]}).first() is None:
                conn.rollback()
                assert time.monotonic() < deadline, "no worker was caught writing"
                time.sleep(0.001)
            for worker in _workers(server.pid):
                os.kill(worker, signal.SIGKILL)
            conn.rollback()
        for thread in threads:
            thread.join(timeout=300)
        killed_mid_load = len(unanswered)
        # The provider retries what was not acknowledged; gunicorn has started new workers.
        for _ in range(5):
            retry, unanswered[:] = list(unanswered), []
            for ref, headers, body in retry:
                status = _deliver(port, headers, body)
                (acknowledged.append(ref) if status is not None and 200 <= status < 300
                 else unanswered.append((ref, headers, body)))
            if not unanswered:
                break

    assert killed_mid_load > 0, "the kill broke no delivery: it did not land mid-request"
    assert not unanswered
    session.rollback()
    refs = {ref for ref, _, _ in deliveries}
    assert set(acknowledged) == refs
    succeeded = Counter(session.scalars(select(Payment.slip_id).where(Payment.status == "succeeded")))
    assert len(succeeded) == len(slips) and set(succeeded.values()) == {1}
    assert session.scalar(select(func.count()).select_from(Slip).where(Slip.status == "paid")) == len(slips)
    receipts = Counter(session.scalars(select(ReceiptRecord.payment_id).where(ReceiptRecord.kind == "receipt")))
    assert len(receipts) == len(slips) and set(receipts.values()) == {1}
    assert _count(session, WebhookDelivery) == len(deliveries)
