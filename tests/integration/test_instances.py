"""Two app instances and two schedulers on one PostgreSQL; one of each killed mid-load (PostgreSQL only).

Real processes, as a shared service runs them: two gunicorn instances (each with its own
instance folder, so nothing is shared on disk; keys and the secret key from the environment,
as in production) and two `kokin scheduler run` processes. At both instances: residents open
card payments through the API (idempotency keys), the provider's notifications arrive, agency
files are posted, a clerk signs in at one and works at the other; failed sign-ins at both
count toward one lockout. Instance A is killed with SIGKILL while one of its workers books a
payment, and the scheduler leader while it runs a nightly job. Then: the provider retries what
was not acknowledged (at B); every acknowledged payment is there exactly once; each nightly
job ran once for its date; the standby took over the lead and the job the leader left running.

`make test-ops` runs this module alone.
"""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from adapters.agency.simulator import Scheduled, StorePayment, write_file
from domain.calendar import business_day_after
from gateway.crypto import DataCipher
from gateway.models import AgencyImport, JobRun, Payment, ReceiptRecord, ReconRun, Slip, StaffUser
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.scheduler.guard import tokyo_today
from gateway.scheduler.jobs import JOBS
from gateway.scheduler.process import LEADER_LOCK_KEY
from gateway.services.apikeys import create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from tests.conftest import BACKEND, one_ward_config
from tests.integration.test_crashes import AGENCY, CODE, ROOT, WRITING, _free_port, _named

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="several instances share PostgreSQL")
SECRET = "instances-test-secret-key-" + "x" * 40  # noqa: S105 - the shared session key of both instances
PASSWORD = "clerk-pass-2026!"  # noqa: S105 - a throwaway account
LEADER = text("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
              "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = :low AND a.datname = current_database()")
LEADER_KEY_LOW = LEADER_LOCK_KEY & 0xFFFFFFFF  # pg_locks shows a bigint key's low half as objid


def _env(db_url: str, folder: Path, name: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "kokin.toml"
    one_ward_config(config, folder / "instance")
    return {**os.environ, "KOKIN_DATABASE_URL": _named(db_url, name), "KOKIN_CONFIG": str(config),
            "KOKIN_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)}


@contextmanager
def _instance(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2",
         "--worker-class", "gthread", "--graceful-timeout", "1", "gateway:create_app()"],
        cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _call("GET", f"{base}/readyz")[0] != 200:
            assert server.poll() is None and time.monotonic() < deadline, "an instance did not start"
            time.sleep(0.2)
        yield server, base
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


def _call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
          opener: urllib.request.OpenerDirector | None = None) -> tuple[int | None, bytes]:
    """(status, body); status None when the connection broke (no answer)."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=60) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except OSError:
        return None, b""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def _browser() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect()), jar


def _sign_in(base: str, username: str, password: str,
             browser: tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]) -> int | None:
    opener, _ = browser
    _, page = _call("GET", f"{base}/staff/login", opener=opener)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert token, page[:500]
    form = urllib.parse.urlencode({"username": username, "password": password,
                                   "csrf_token": token.group(1).decode()}).encode()
    return _call("POST", f"{base}/staff/login", form, {"Content-Type": "application/x-www-form-urlencoded"},
                 opener)[0]


def _with_cookies_of(browser: tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar], base: str) -> Any:
    """The same browser's cookies, sent to another instance (another port of the same host)."""
    opener, jar = browser
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)
    return lambda path: _call("GET", f"{base}{path}", headers={"Cookie": cookies}, opener=opener)


def _slips_to_pay(session: Session, cipher: DataCipher, payers: int) -> list[Slip]:
    """Next fiscal year's slips: payable online today by the real clock the instances read."""
    year = tokyo_today().year + 1
    rows = list(ward_rows(CODE, year, payers=payers))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(year, 4, 1)), filename="next.csv")
    issue_slips(session, CODE)
    return list(session.scalars(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id)))


def _count(session: Session, model: Any, *where: Any) -> int:
    session.rollback()
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def watch(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def _wait(watch: Engine, statement: Any, params: dict[str, Any], what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    with watch.connect() as connection:
        while True:
            found = connection.execute(statement, params).first()
            connection.rollback()
            if found is not None:
                return found
            assert time.monotonic() < deadline, what
            time.sleep(0.002)


def test_two_instances_and_two_schedulers_lose_one_of_each_and_nothing_else(  # noqa: PLR0915 - one story
        app: Any, session: Session, cipher: DataCipher, db_url: str, tmp_path: Path, watch: Engine) -> None:
    slips = _slips_to_pay(session, cipher, payers=120)
    online, at_stores = slips[:160], slips[160:260]
    key = create_api_key(session, "instances-test", CODE, actor="test",
                         scopes=["payments:write", "payments:read", f"agency:import:{AGENCY}"])
    create_user(session, CODE, "clerk-1", "auditor", PASSWORD, actor="test")
    create_user(session, CODE, "clerk-2", "auditor", PASSWORD, actor="test")
    stripe = app.extensions["kokin.adapters"]["stripe"]
    store_payments = [StorePayment(s.barcode, datetime.combine(s.due_date - timedelta(days=3), datetime.min.time())
                                   + timedelta(hours=11), f"{n + 1:07d}", "001")
                      for n, s in enumerate(at_stores) if s.barcode is not None]
    sent_on = business_day_after(max(p.paid_at.date() for p in store_payments))
    agency_file = write_file(app.extensions["kokin.agencies"][AGENCY],
                             [Scheduled(sent_on, "preliminary", p, None) for p in store_payments],
                             created_on=sent_on, client_code="13107")
    api = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    with _instance(_env(db_url, tmp_path / "a", "kokin-instance-a")) as (server_a, a), \
            _instance(_env(db_url, tmp_path / "b", "kokin-instance-b")) as (_server_b, b):
        # -- staff: a session made at A works at B; failures at both count toward one lockout.
        clerk = _browser()
        assert _sign_in(a, "clerk-1", PASSWORD, clerk) == 302
        at_b = _with_cookies_of(clerk, b)
        assert at_b("/staff/exceptions")[0] == 200  # signed in at A, served by B
        for n in range(5):
            assert _sign_in((a, b)[n % 2], "clerk-2", "wrong-password!", _browser()) != 302
        assert _sign_in(b, "clerk-2", PASSWORD, _browser()) != 302  # locked, whichever instance is asked
        assert session.scalar(select(StaffUser.locked_until).where(StaffUser.username == "clerk-2")) is not None

        # -- residents open payments at both; a retried request (same idempotency key) at the other
        # instance answers the same payment.
        for n, slip in enumerate(online):
            body = json.dumps({"slip_number": slip.number, "channel": "card",
                               "return_url": "https://ward.test/done"}).encode()
            idem = {**api, "Idempotency-Key": f"instances-{slip.number}"}
            status, answer = _call("POST", f"{(a, b)[n % 2]}/api/v1/payments", body, idem)
            assert status == 201, answer[:500]
            again_status, again = _call("POST", f"{(b, a)[n % 2]}/api/v1/payments", body, idem)
            assert (again_status, json.loads(again)["id"]) == (201, json.loads(answer)["id"])
        session.rollback()
        refs = [ref for ref, in session.execute(text(
            "SELECT provider_ref FROM payment_attempts WHERE adapter = 'stripe' ORDER BY id"))]
        assert len(refs) == len(online)
        deliveries = []
        for ref in refs:  # the residents pay at the provider; its notifications are signed
            stripe.simulator.simulate_payment(ref, "paid")
            deliveries += [(ref, headers, body) for headers, body in stripe.simulator.events_for(ref, datetime.now())]

        # -- notifications and the agency file at both, from eight threads; A dies mid-load.
        acknowledged: list[str] = []
        unanswered: list[tuple[str, dict[str, str], bytes]] = []
        lock = threading.Lock()
        queue = list(deliveries)

        def send() -> None:
            n = 0
            while True:
                with lock:
                    if not queue:
                        return
                    ref, headers, body = queue.pop()
                n += 1
                status, _ = _call("POST", f"{(a, b)[n % 2]}/webhooks/stripe", body, headers)
                with lock:
                    (acknowledged.append(ref) if status is not None and 200 <= status < 300
                     else unanswered.append((ref, headers, body)))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        agency_at_a = threading.Thread(target=lambda: _call(
            "POST", f"{a}/api/v1/agency/{AGENCY}/imports?filename=sokuho.dat", agency_file,
            {"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"}))
        agency_at_a.start()
        _wait(watch, WRITING, {"name": "kokin-instance-a", "tables": ["payments", "webhook_deliveries"]},
              "no worker of instance A was caught booking")
        os.killpg(server_a.pid, signal.SIGKILL)  # the master and its workers: the whole machine gone
        server_a.wait(timeout=30)
        for thread in [*threads, agency_at_a]:
            thread.join(timeout=300)
        lost = len(unanswered)
        for _ in range(5):  # the provider retries, now reaching B only (A's address refuses)
            retry, unanswered[:] = list(unanswered), []
            for ref, headers, body in retry:
                status, _ = _call("POST", f"{b}/webhooks/stripe", body, headers)
                (acknowledged.append(ref) if status is not None and 200 <= status < 300
                 else unanswered.append((ref, headers, body)))
            if not unanswered:
                break
        status, answer = _call("POST", f"{b}/api/v1/agency/{AGENCY}/imports?filename=sokuho.dat", agency_file,
                               {"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"})
        assert status == 200, answer[:500]  # the staff member posts the file again, at B
        assert at_b("/staff/exceptions")[0] == 200  # the clerk's session outlived instance A

    assert lost > 0, "the kill broke no delivery: it did not land mid-load"
    assert not unanswered and set(acknowledged) == set(refs)
    succeeded = Counter(session.scalars(select(Payment.slip_id).where(Payment.status == "succeeded",
                                                                      Payment.channel == "card")))
    assert len(succeeded) == len(online) and set(succeeded.values()) == {1}
    per_slip = Counter(session.scalars(select(Payment.slip_id).where(Payment.channel == "agency")))
    assert len(per_slip) == len(at_stores) and set(per_slip.values()) == {1}
    assert _count(session, AgencyImport) == 1
    assert _count(session, Slip, Slip.status == "paid") == len(online) + len(at_stores)
    receipts = Counter(session.scalars(select(ReceiptRecord.payment_id).where(ReceiptRecord.kind == "receipt")))
    assert len(receipts) == len(online) + len(at_stores) and set(receipts.values()) == {1}

    # -- two schedulers: the leader dies while it runs a nightly job; the standby finishes the night.
    # At 08:00 of today (Tokyo) every nightly job's time has passed, whenever the suite runs: the
    # schedulers rehearse from there (the catch-up a new leader makes runs each of them).
    night = ["scheduler", "run", "--standby-poll", "0.5", "--clock-start", f"{tokyo_today():%Y-%m-%d}T08:00"]
    first = subprocess.Popen([sys.executable, "-m", "gateway.cli", *night],
                             cwd=ROOT, env=_env(db_url, tmp_path / "s1", "kokin-scheduler-1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(watch, LEADER, {"low": LEADER_KEY_LOW}, "the first scheduler did not lead")
    second = subprocess.Popen([sys.executable, "-m", "gateway.cli", *night],
                              cwd=ROOT, env=_env(db_url, tmp_path / "s2", "kokin-scheduler-2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        running = _wait(watch, text("SELECT job, runner FROM job_runs WHERE status = 'running'"), {},
                        "the leader was never caught running a job")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        with watch.connect() as connection:  # still `running`: the leader died in it (or it had just ended)
            orphaned = connection.execute(text("SELECT status = 'running' FROM job_runs WHERE job = :job"),
                                          {"job": running.job}).scalar()
        leader = _wait(watch, text(LEADER.text + " AND a.application_name = 'kokin-scheduler-2'"),
                       {"low": LEADER_KEY_LOW}, "the standby did not take the lead")
        assert leader is not None
        today = tokyo_today()
        guarded = {job.name: job.business_date(today) for job in JOBS.values() if job.guarded}
        deadline = time.monotonic() + 180
        while True:  # the new leader's catch-up finishes the night, the orphaned job included
            session.rollback()
            runs = {(run.job, run.business_date): run for run in session.scalars(select(JobRun))}
            if all(getattr(runs.get(item), "status", None) == "succeeded" for item in guarded.items()):
                break
            assert time.monotonic() < deadline, f"the night did not finish: {runs}"
            time.sleep(0.5)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)

    orphan = runs[(running.job, guarded[running.job])]
    assert orphaned, f"{running.job} ended between the look and the kill: run the test again"
    assert orphan.runner != running.runner and orphan.attempts == 2  # taken over at once, not after STALE_RUNNING
    assert all(count == 1 for count in Counter(job for job, _ in runs).values())  # one row per job and date
    assert {run.runner for run in runs.values() if run.job in guarded} - {running.runner}  # the standby ran some
    recon_day = guarded["reconciliation"]
    assert _count(session, ReconRun, ReconRun.business_date == recon_day) == 1
    assert session.scalar(select(ReconRun.status).where(ReconRun.business_date == recon_day)) == "succeeded"
