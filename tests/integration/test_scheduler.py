"""The scheduler runs each job once per business date, however many schedulers run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import func, make_url, select

from gateway.cli import cli
from gateway.db import transaction
from gateway.models import Event, JobRun, SchedulerJob
from gateway.scheduler.guard import run_all_due, run_guarded
from gateway.scheduler.jobs import JOBS, Job
from gateway.scheduler.process import Leadership, serve
from gateway.services.events import record_event

BACKEND = os.environ.get("KOKIN_TEST_DATABASE", "sqlite")
ROOT = Path(__file__).resolve().parents[2]
DAYS = [date(2026, 6, 1), date(2026, 6, 2)]
postgresql_only = pytest.mark.skipif(BACKEND != "postgresql",
                                     reason="advisory locks and concurrent processes need PostgreSQL")


def _effect(app: Flask, job: str, day: date, pause: float = 0.2) -> dict[str, Any]:
    """A job's side effect: one `test.job` event per run; the pause widens any race."""
    time.sleep(pause)
    with app.extensions["kokin.db"].session() as session, transaction(session):
        record_event(session, "test.job", "job", f"{job}:{day}", municipality_id=None, actor=str(os.getpid()))
    return {"ran": f"{job}:{day}"}


def _test_job(name: str, **cron: Any) -> Job:
    return Job(name, lambda app, day: _effect(app, name, day), cron or {"hour": 3})


TEST_JOBS = {job.name: job for job in (_test_job("alpha"), _test_job("beta"), _test_job("gamma"))}


def _effects(app: Flask) -> Counter[str]:
    with app.extensions["kokin.db"].session() as session:
        return Counter(session.scalars(select(Event.subject_id).where(Event.kind == "test.job")))


def _runs(app: Flask) -> dict[tuple[str, date], JobRun]:
    with app.extensions["kokin.db"].session() as session:
        return {(r.job, r.business_date): r for r in session.scalars(select(JobRun))}


def test_the_same_job_and_date_twice_runs_once(app) -> None:  # type: ignore[no-untyped-def]
    assert run_guarded(app, "alpha", DAYS[0], TEST_JOBS["alpha"].run) == "succeeded"
    assert run_guarded(app, "alpha", DAYS[0], TEST_JOBS["alpha"].run) == "skipped"
    assert run_guarded(app, "alpha", DAYS[1], TEST_JOBS["alpha"].run) == "succeeded"
    assert _effects(app) == {f"alpha:{DAYS[0]}": 1, f"alpha:{DAYS[1]}": 1}
    run = _runs(app)[("alpha", DAYS[0])]
    assert (run.status, run.attempts, run.summary, run.error) == ("succeeded", 1, {"ran": f"alpha:{DAYS[0]}"}, None)
    assert run.finished_at is not None and run.finished_at >= run.started_at


def test_a_failed_run_is_retried_once_and_records_two_attempts(app) -> None:  # type: ignore[no-untyped-def]
    calls: list[date] = []

    def flaky(app: Flask, day: date) -> dict[str, Any]:
        calls.append(day)
        if len(calls) == 1:
            raise RuntimeError("provider down\n  a second line that staff never see")
        return {"ok": True}

    assert run_guarded(app, "flaky", DAYS[0], flaky) == "failed"
    failed = _runs(app)[("flaky", DAYS[0])]
    assert (failed.status, failed.attempts, failed.error) == ("failed", 1, "RuntimeError: provider down")
    assert run_guarded(app, "flaky", DAYS[0], flaky) == "succeeded"
    assert run_guarded(app, "flaky", DAYS[0], flaky) == "skipped"
    run = _runs(app)[("flaky", DAYS[0])]
    assert (run.status, run.attempts, run.error, run.summary) == ("succeeded", 2, None, {"ok": True})
    assert len(calls) == 2


def test_two_threads_with_their_own_sessions_run_a_job_once(app) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        outcomes.append(run_guarded(app, "alpha", DAYS[0], TEST_JOBS["alpha"].run))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["skipped", "succeeded"]
    assert _effects(app) == {f"alpha:{DAYS[0]}": 1}


def test_a_frequent_job_runs_every_time_and_keeps_one_heartbeat_row_per_day(app) -> None:  # type: ignore[no-untyped-def]
    housekeeping = {"tidy": Job("tidy", lambda app, day: _effect(app, "tidy", day, 0), {"minute": "*/10"},
                                guarded=False)}
    assert run_all_due(app, housekeeping, [DAYS[0]]) == {("tidy", DAYS[0]): "succeeded"}
    assert run_all_due(app, housekeeping, [DAYS[0]]) == {("tidy", DAYS[0]): "succeeded"}
    assert _effects(app) == {f"tidy:{DAYS[0]}": 2}
    run = _runs(app)[("tidy", DAYS[0])]
    assert (run.status, run.attempts) == ("succeeded", 2)


def test_once_runs_a_job_through_its_guard_and_runs_lists_the_record(app) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    first = runner.invoke(cli, ["scheduler", "run", "--once", "agency-pull", "--date", "2026-06-01"])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "agency-pull 2026-06-01: succeeded"
    again = runner.invoke(cli, ["scheduler", "run", "--once", "agency-pull", "--date", "2026-06-01"])
    assert again.output.strip() == "agency-pull 2026-06-01: skipped"
    listed = runner.invoke(cli, ["scheduler", "runs", "--date", "2026-06-01"])
    assert listed.exit_code == 0, listed.output
    assert "agency-pull" in listed.output and "succeeded" in listed.output
    # The sandbox agencies have no pull_url, and eLTAX data is never pulled: skipped, and the record says so.
    assert "skipped_without_pull_url=['agency-csv', 'agency-fixed120', 'eltax-csv']" in listed.output
    assert runner.invoke(cli, ["scheduler", "runs", "--date", "2026-05-01"]).output.strip() == "no job runs"


def test_a_rehearsal_clock_dates_the_jobs_from_its_start_and_only_in_sandbox(app, session) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    once = ["scheduler", "run", "--once", "reconciliation", "--clock-start", "2026-11-10T08:00"]
    rehearsed = runner.invoke(cli, once)
    assert rehearsed.exit_code == 0, rehearsed.output
    assert rehearsed.output.strip() == "reconciliation 2026-11-09: succeeded"  # the day before the rehearsed one
    run = session.scalars(select(JobRun).where(JobRun.job == "reconciliation")).one()
    assert run.started_at.astimezone(ZoneInfo("Asia/Tokyo")).date() == date(2026, 11, 10)
    app.config["SANDBOX"] = False
    live = runner.invoke(cli, once)
    assert live.exit_code == 2 and "a live scheduler keeps the wall clock" in live.output
    session.rollback()
    assert session.scalar(select(func.count()).select_from(JobRun)) == 1


def test_a_failing_job_exits_non_zero_and_its_record_says_why(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(app: Flask, day: date) -> dict[str, Any]:
        raise ModuleNotFoundError("No module named 'reconciliation.run'")

    monkeypatch.setitem(JOBS, "reconciliation", Job("reconciliation", broken, {"hour": 2}, date_offset=-1))
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["scheduler", "run", "--once", "reconciliation", "--date", "2026-06-01"])
    assert result.exit_code == 1
    listed = runner.invoke(cli, ["scheduler", "runs"]).output
    assert "failed" in listed and "ModuleNotFoundError: No module named 'reconciliation.run'" in listed


def test_the_scheduler_fires_jobs_from_the_migrated_job_store_and_stops_on_request(app) -> None:  # type: ignore[no-untyped-def]
    every_second = {"tick": _test_job("tick", second="*")}
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(app, stop, every_second), kwargs={"check_every": 0.2})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while [r.status for r in _runs(app).values()] != ["succeeded"] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # let it fire a few more times: the guard keeps it to one run today
        with app.extensions["kokin.db"].session() as session:
            assert session.scalars(select(SchedulerJob.id)).all() == ["tick"]
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert [(r.status, r.attempts) for r in _runs(app).values()] == [("succeeded", 1)]
    assert sum(_effects(app).values()) == 1


WORKER = """
import json, sys, time
from datetime import date
from pathlib import Path
from gateway import create_app
from gateway.scheduler.guard import run_all_due
from tests.integration.test_scheduler import TEST_JOBS
url, workdir, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
app = create_app({"DATABASE_URL": url, "TESTING": True, "INSTANCE_PATH": str(workdir / name)})
(workdir / f"ready-{name}").touch()
while not (workdir / "go").exists():
    time.sleep(0.01)
outcomes = run_all_due(app, TEST_JOBS, [date(2026, 6, 1), date(2026, 6, 2)])
app.extensions["kokin.db"].dispose()
print(json.dumps({f"{job}:{day}": outcome for (job, day), outcome in outcomes.items()}))
"""


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KOKIN_DATA_KEYS": Fernet.generate_key().decode()}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@postgresql_only
def test_two_scheduler_processes_run_each_job_once_per_business_date(app, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    processes = [_python(WORKER, db_url, str(tmp_path), name) for name in ("a", "b")]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in "ab") and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()  # both start at once
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    keys = {f"{job}:{day}" for job in TEST_JOBS for day in DAYS}
    for key in keys:  # one process ran it, the other found it done or running
        assert sorted(r[key] for r in results) == ["skipped", "succeeded"], key
    assert _effects(app) == {key: 1 for key in keys}
    runs = _runs(app)
    assert {f"{job}:{day}" for job, day in runs} == keys
    assert all((r.status, r.attempts) == ("succeeded", 1) for r in runs.values())
    assert len({r.runner for r in runs.values()}) >= 1


LEADER = """
import sys, time
from pathlib import Path
from sqlalchemy import make_url
from gateway.scheduler.process import Leadership
leadership = Leadership(make_url(sys.argv[1]))
print("leader" if leadership.try_acquire() else "standby", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
# exits holding the lock: the session lock must go with the process's connection
"""


@postgresql_only
def test_a_standby_becomes_leader_only_after_the_leader_process_exits(db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    leader = _python(LEADER, db_url, str(tmp_path / "exit"))
    assert leader.stdout is not None
    assert leader.stdout.readline().strip() == "leader"
    standby = Leadership(make_url(db_url))
    try:
        assert not standby.try_acquire()
        assert not standby.try_acquire()  # retrying while the leader lives changes nothing
        (tmp_path / "exit").touch()
        leader.communicate(timeout=30)
        assert leader.returncode == 0
        deadline = time.monotonic() + 10
        while not standby.try_acquire():
            assert time.monotonic() < deadline, "the lock outlived its process"
            time.sleep(0.1)
        assert standby.alive()
    finally:
        standby.release()


@postgresql_only
def test_a_standby_scheduler_runs_nothing_until_the_leader_lets_go(app, db_url) -> None:  # type: ignore[no-untyped-def]
    leader = Leadership(make_url(db_url))
    assert leader.try_acquire()
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(app, stop, {"tick": _test_job("tick", second="*")}),
                              kwargs={"standby_poll": 0.2, "check_every": 0.2})
    try:
        thread.start()
        time.sleep(2)
        assert _runs(app) == {}  # standing by
        leader.release()
        deadline = time.monotonic() + 20
        while [r.status for r in _runs(app).values()] != ["succeeded"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [r.status for r in _runs(app).values()] == ["succeeded"]  # took over
    finally:
        leader.release()
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def _left_running(app: Flask, job: str, day: date) -> None:
    """A `running` row as a runner leaves it when it dies mid-job."""
    with app.extensions["kokin.db"].session() as session, transaction(session):
        session.add(JobRun(job=job, business_date=day, status="running", runner="dead-runner", summary={}))


@postgresql_only
def test_a_run_left_running_by_a_dead_runner_is_taken_over_at_once(app) -> None:  # type: ignore[no-untyped-def]
    _left_running(app, "alpha", DAYS[0])
    assert run_guarded(app, "alpha", DAYS[0], TEST_JOBS["alpha"].run) == "succeeded"
    with app.extensions["kokin.db"].session() as session:
        run = session.scalars(select(JobRun).where(JobRun.job == "alpha")).one()
    assert (run.status, run.attempts) == ("succeeded", 2) and run.runner != "dead-runner"


@postgresql_only
def test_a_run_whose_runner_still_holds_its_lock_is_not_taken_over(app) -> None:  # type: ignore[no-untyped-def]
    from gateway.scheduler.guard import run_lock

    _left_running(app, "alpha", DAYS[0])
    with run_lock(app, "alpha", DAYS[0]) as held:  # a live runner, in another session, holds the run
        assert held is True
        assert run_guarded(app, "alpha", DAYS[0], TEST_JOBS["alpha"].run) == "skipped"
    assert run_guarded(app, "alpha", DAYS[0], TEST_JOBS["alpha"].run) == "succeeded"  # and once it is gone


def test_without_run_locks_a_fresh_running_row_is_left_to_its_runner(app) -> None:  # type: ignore[no-untyped-def]
    if BACKEND == "postgresql":
        pytest.skip("SQLite's rule: PostgreSQL asks the run lock instead")
    _left_running(app, "alpha", DAYS[0])
    assert run_guarded(app, "alpha", DAYS[0], TEST_JOBS["alpha"].run) == "skipped"
