"""The run guard: each daily (job, business date) runs once, whoever else runs; the run records.

APScheduler 3 coordinates nothing across processes (every scheduler on one job store runs
every job; coalesce and max_instances are per process), so a daily job first inserts its
JobRun row (job, business date) with ON CONFLICT DO NOTHING; only the process whose insert
made the row runs the job. A failed run is taken over by an UPDATE ... WHERE status =
'failed' that one process wins. This alone makes "once per business date" true on SQLite
and PostgreSQL. Frequent housekeeping jobs are not guarded per run: their row for today is
a heartbeat.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Engine, create_engine, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from domain.calendar import business_date
from gateway.db import Database, transaction, utcnow
from gateway.models import JobRun
from gateway.observability.context import operation
from gateway.observability.metrics import observe_job
from gateway.scheduler.jobs import Job, JobFunc

log = logging.getLogger(__name__)
RUNNER = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"
STALE_RUNNING = timedelta(hours=6)  # a `running` row this old was left by a crashed process


def tokyo_today(now: datetime | None = None) -> date:
    return business_date(now or utcnow())


def one_line(exc: BaseException) -> str:
    """The error as staff see it: its type and first line, never a traceback."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0] if message else ''}"[:500]


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _claim(session: Session, job_name: str, business_date: date, *, orphans: bool = False) -> int | None:
    """Make this process the runner of (job, date), or return None if another run has it or is done.

    A `running` row is taken over when its runner is known to be gone (`orphans`: this process
    holds the run's lock, which a live runner would hold) or, where there are no such locks, when
    it is older than STALE_RUNNING.
    """
    now = utcnow()
    with transaction(session):
        run_id = session.execute(
            _insert(session)(JobRun)
            .values(job=job_name, business_date=business_date, status="running", runner=RUNNER, attempts=1,
                    started_at=now, summary={})
            .on_conflict_do_nothing(index_elements=["job", "business_date"])
            .returning(JobRun.id)).scalar()
        if run_id is None:  # it exists: retry it only if failed (or left running by a crash)
            left_behind = true() if orphans else JobRun.started_at < now - STALE_RUNNING
            run_id = session.execute(
                update(JobRun)
                .where(JobRun.job == job_name, JobRun.business_date == business_date,
                       or_(JobRun.status == "failed", (JobRun.status == "running") & left_behind))
                .values(status="running", runner=RUNNER, attempts=JobRun.attempts + 1, started_at=now,
                        finished_at=None, error=None)
                .returning(JobRun.id)).scalar()
    return run_id


def _heartbeat(session: Session, job_name: str, business_date: date) -> int:
    """Record a run of a frequent job in today's row (attempts counts today's runs)."""
    now = utcnow()
    stmt = _insert(session)(JobRun).values(job=job_name, business_date=business_date, status="running",
                                          runner=RUNNER, attempts=1, started_at=now, summary={})
    with transaction(session):
        return int(session.execute(stmt.on_conflict_do_update(
            index_elements=["job", "business_date"],
            set_={"status": "running", "runner": RUNNER, "attempts": JobRun.__table__.c.attempts + 1,
                  "started_at": now, "finished_at": None, "error": None})
            .returning(JobRun.id)).scalar_one())


def _execute(app: Flask, run_id: int, job_name: str, business_date: date, func: JobFunc, session: Session) -> str:
    began = time.perf_counter()
    try:
        with app.app_context(), operation(f"job-{job_name}"):  # its log lines and events under one id
            summary = func(app, business_date)
    except Exception as exc:
        # The traceback goes to the process log for operators; the record keeps one line.
        log.error("job %s for %s failed", job_name, business_date, exc_info=True)
        values: dict[str, Any] = {"status": "failed", "error": one_line(exc)}
    else:
        values = {"status": "succeeded", "summary": summary or {}}
    session.rollback()  # whatever the job left open in this session is not ours to commit
    with transaction(session):
        session.execute(update(JobRun).where(JobRun.id == run_id).values(finished_at=utcnow(), **values))
    log.info("job %s for %s %s", job_name, business_date, values["status"])
    observe_job(job_name, str(values["status"]), time.perf_counter() - began)
    return str(values["status"])


def run_guarded(app: Flask, job_name: str, business_date: date, func: JobFunc) -> str:
    """Run `func(app, business_date)` unless (job, date) already ran or is running; return the outcome.

    Returns "succeeded", "failed" (error recorded, retried by the next call) or "skipped".
    Safe to call from any number of threads and processes at once.
    """
    with database(app).session() as session, run_lock(app, job_name, business_date) as locked:
        run_id = None if locked is False else _claim(session, job_name, business_date, orphans=bool(locked))
        if run_id is None:
            log.info("job %s for %s skipped: done or running elsewhere", job_name, business_date)
            return "skipped"
        return _execute(app, run_id, job_name, business_date, func, session)


RUN_LOCK_SPACE = 0x6B6B4A42  # "kkJB": the first key of the run locks (the second: the run's)


@contextmanager
def run_lock(app: Flask, job_name: str, business_date: date) -> Iterator[bool | None]:
    """Hold (job, date)'s run lock while the body runs: True if held, False if a live process holds it.

    On PostgreSQL a session-level advisory lock on a connection of its own (to PostgreSQL itself:
    KOKIN_DATABASE_DIRECT_URL when the app goes through a pooler), closed afterwards. A runner
    that dies loses it with its connection, so a `running` row whose lock is free was left by a
    dead runner and is taken over at once. None on SQLite, which has no such locks.
    """
    engine = _lock_engine(app)
    if engine is None:
        yield None
        return
    key = zlib.crc32(f"{job_name}:{business_date.isoformat()}".encode()) - 2**31  # PostgreSQL's signed int4
    connection = engine.connect()
    try:
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:space, :key)"),
                                       {"space": RUN_LOCK_SPACE, "key": key}).scalar())
        connection.commit()  # a session lock: no transaction stays open while the job runs
        yield held
    finally:
        connection.close()  # disconnects (NullPool): the lock goes with the session


def _lock_engine(app: Flask) -> Engine | None:
    engine = app.extensions.get("kokin.run_locks")
    if engine is None and not database(app).is_sqlite:
        url = app.config.get("DATABASE_DIRECT_URL") or database(app).engine.url
        engine = app.extensions["kokin.run_locks"] = create_engine(url, poolclass=NullPool)
    return engine


def run_heartbeat(app: Flask, job_name: str, business_date: date, func: JobFunc) -> str:
    """Run an idempotent housekeeping job now, recording it in (job, date)'s row."""
    with database(app).session() as session:
        return _execute(app, _heartbeat(session, job_name, business_date), job_name, business_date, func, session)


def run_job(app: Flask, job: Job, business_date: date) -> str:
    runner = run_guarded if job.guarded else run_heartbeat
    return runner(app, job.name, business_date, job.run)


def run_all_due(app: Flask, registry: Mapping[str, Job], dates: Iterable[date]) -> dict[tuple[str, date], str]:
    """Run every job of `registry` for every business date through its guard; return the outcomes."""
    return {(job.name, day): run_job(app, job, day) for day in dates for job in registry.values()}


def list_runs(session: Session, business_date: date | None = None, limit: int = 200) -> list[JobRun]:
    """The run records staff see, newest first."""
    query = select(JobRun).order_by(JobRun.business_date.desc(), JobRun.started_at.desc()).limit(limit)
    if business_date is not None:
        query = query.where(JobRun.business_date == business_date)
    return list(session.scalars(query))


def database(app: Flask) -> Database:
    """The app's database, for the jobs' own sessions (they run outside any request)."""
    return app.extensions["kokin.db"]
