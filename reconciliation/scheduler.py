"""The scheduler process: runs reconciliation/jobs.py's jobs once per business date, whoever else runs.

Two guards, because APScheduler 3 coordinates nothing across processes (every scheduler on
one job store runs every job; coalesce and max_instances are per process):

- the run guard: a daily job first inserts its JobRun row (job, business date) with
  ON CONFLICT DO NOTHING; only the process whose insert made the row runs the job. A
  failed run is taken over by an UPDATE ... WHERE status = 'failed' that one process
  wins. This alone makes "once per business date" true on SQLite and PostgreSQL.
- the leader: on PostgreSQL, only the holder of a session-level advisory lock runs a
  scheduler at all; another process is a hot standby that retries the lock. This keeps
  the frequent, unguarded housekeeping jobs single and stops a standby from advancing
  the shared job store's next run times behind the leader's back. SQLite (one machine,
  the embedded default) has no advisory locks: run one scheduler there; the run guard
  still keeps daily jobs once per date if a second one is started by mistake.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask
from sqlalchemy import URL, Connection, create_engine, inspect, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from gateway.db import Database, transaction, utcnow
from gateway.models import JobRun
from reconciliation.jobs import JOBS, Job

log = logging.getLogger(__name__)
TOKYO = ZoneInfo("Asia/Tokyo")
RUNNER = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"
LEADER_LOCK_KEY = 0x6B6F6B696E5343  # "kokinSC": one key for the whole database
STALE_RUNNING = timedelta(hours=6)  # a `running` row this old was left by a crashed process
MISFIRE_GRACE = 3600  # seconds late a job may still fire (a restart around 02:00)
JobFunc = Callable[[Flask, date], dict[str, Any]]


def tokyo_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(TOKYO).date()


def one_line(exc: BaseException) -> str:
    """The error as staff see it: its type and first line, never a traceback."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0] if message else ''}"[:500]


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _claim(session: Session, job_name: str, business_date: date) -> int | None:
    """Make this process the runner of (job, date), or return None if another run has it or is done."""
    now = utcnow()
    with transaction(session):
        run_id = session.execute(
            _insert(session)(JobRun)
            .values(job=job_name, business_date=business_date, status="running", runner=RUNNER, attempts=1,
                    started_at=now, summary={})
            .on_conflict_do_nothing(index_elements=["job", "business_date"])
            .returning(JobRun.id)).scalar()
        if run_id is None:  # it exists: retry it only if failed (or left running by a crash)
            run_id = session.execute(
                update(JobRun)
                .where(JobRun.job == job_name, JobRun.business_date == business_date,
                       or_(JobRun.status == "failed",
                           (JobRun.status == "running") & (JobRun.started_at < now - STALE_RUNNING)))
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
    try:
        with app.app_context():
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
    return str(values["status"])


def run_guarded(app: Flask, job_name: str, business_date: date, func: JobFunc) -> str:
    """Run `func(app, business_date)` unless (job, date) already ran or is running; return the outcome.

    Returns "succeeded", "failed" (error recorded, retried by the next call) or "skipped".
    Safe to call from any number of threads and processes at once.
    """
    with _database(app).session() as session:
        run_id = _claim(session, job_name, business_date)
        if run_id is None:
            log.info("job %s for %s skipped: done or running elsewhere", job_name, business_date)
            return "skipped"
        return _execute(app, run_id, job_name, business_date, func, session)


def run_heartbeat(app: Flask, job_name: str, business_date: date, func: JobFunc) -> str:
    """Run an idempotent housekeeping job now, recording it in (job, date)'s row."""
    with _database(app).session() as session:
        return _execute(app, _heartbeat(session, job_name, business_date), job_name, business_date, func, session)


def run_job(app: Flask, job: Job, business_date: date) -> str:
    runner = run_guarded if job.guarded else run_heartbeat
    return runner(app, job.name, business_date, job.run)


def run_all_due(app: Flask, registry: Mapping[str, Job], dates: Iterable[date]) -> dict[tuple[str, date], str]:
    """Run every job of `registry` for every business date through its guard; return the outcomes."""
    return {(job.name, day): run_job(app, job, day) for day in dates for job in registry.values()}


def catch_up(app: Flask, registry: Mapping[str, Job], now: datetime | None = None) -> dict[tuple[str, date], str]:
    """Run the daily jobs whose time today has passed (guarded: a no-op for those already run).

    A new leader calls it: the job store keeps next run times, but a run missed while no
    scheduler was up (or lost with a leader that died) would otherwise wait a day.
    """
    now = (now or utcnow()).astimezone(TOKYO)
    midnight = datetime.combine(now.date(), datetime.min.time(), TOKYO)
    outcomes = {}
    for job in registry.values():
        first = CronTrigger(timezone=TOKYO, **job.cron).get_next_fire_time(None, midnight)
        if job.guarded and first is not None and first.date() == now.date() and first <= now:
            day = job.business_date(now.date())
            outcomes[(job.name, day)] = run_guarded(app, job.name, day, job.run)
    return outcomes


def list_runs(session: Session, business_date: date | None = None, limit: int = 200) -> list[JobRun]:
    """The run records staff see, newest first."""
    query = select(JobRun).order_by(JobRun.business_date.desc(), JobRun.started_at.desc()).limit(limit)
    if business_date is not None:
        query = query.where(JobRun.business_date == business_date)
    return list(session.scalars(query))


def _database(app: Flask) -> Database:
    return app.extensions["kokin.db"]


class Leadership:
    """A PostgreSQL session-level advisory lock on a connection of its own, held while leading.

    The connection comes from a NullPool engine: closing it really disconnects, so the lock
    can never stay behind in a pool, and a process that dies loses it with its connection.
    On SQLite every process is the leader (no advisory locks; the run guard still holds).
    """

    def __init__(self, url: URL, key: int = LEADER_LOCK_KEY) -> None:
        self.key = key
        self._engine = None if url.get_backend_name() == "sqlite" else create_engine(url, poolclass=NullPool)
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True if this process leads (now or already)."""
        if self._engine is None:
            return True
        if self._conn is not None:
            return self.alive()
        conn = self._engine.connect()
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
            conn.commit()  # the session lock outlives the transaction; no idle transaction stays open
        except BaseException:
            conn.close()
            raise
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def alive(self) -> bool:
        """Tell whether we still lead: the lock's connection still answers."""
        if self._engine is None:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except DBAPIError:
            log.warning("lost the scheduler leader lock's connection")
            self._conn.invalidate()
            self._conn.close()
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                self._conn.commit()
            except DBAPIError:
                pass  # closing the connection below releases it anyway
            finally:
                self._conn.close()
                self._conn = None
        if self._engine is not None:
            self._engine.dispose()


class MigratedJobStore(SQLAlchemyJobStore):
    """SQLAlchemyJobStore on the table migration 0005 creates; it never creates a table itself.

    SQLAlchemyJobStore.start runs `CREATE TABLE` with checkfirst, which is harmless when the
    table exists but is exactly the start-up race TOOLING.md measured when it does not; so
    start is replaced by a check that fails with what to do.
    """

    def start(self, scheduler: Any, alias: str) -> None:
        BaseJobStore.start(self, scheduler, alias)  # skips SQLAlchemyJobStore.start's create()
        if not inspect(self.engine).has_table(self.jobs_t.name):
            raise RuntimeError(f"table {self.jobs_t.name} is missing: run `kokin db upgrade` first")


# The leader's app and registry, for `fire`: the job store pickles a job's function by
# reference and its arguments by value, so jobs name a module function and a job name.
_RUNTIME: dict[str, Any] = {}


def fire(job_name: str) -> None:
    """The function every stored job calls: run `job_name` for the business date of now."""
    registry: Mapping[str, Job] = _RUNTIME.get("registry", {})
    job = registry.get(job_name)
    if job is None:
        log.warning("scheduled job %s is not in the registry; ignored", job_name)
        return
    run_job(_RUNTIME["app"], job, job.business_date(tokyo_today()))


def build_scheduler(app: Flask, registry: Mapping[str, Job]) -> BackgroundScheduler:
    store = MigratedJobStore(engine=_database(app).engine, tablename="apscheduler_jobs")
    scheduler = BackgroundScheduler(timezone=TOKYO, jobstores={"default": store},
                                    executors={"default": ThreadPoolExecutor(4)},
                                    job_defaults={"coalesce": True, "max_instances": 1,
                                                  "misfire_grace_time": MISFIRE_GRACE})
    for job in registry.values():
        scheduler.add_job("reconciliation.scheduler:fire", CronTrigger(timezone=TOKYO, **job.cron),
                          args=[job.name], id=job.name, name=job.description or job.name, replace_existing=True)
    return scheduler


def serve(app: Flask, stop: threading.Event, registry: Mapping[str, Job] = JOBS, *,
          standby_poll: float = 15.0, check_every: float = 15.0) -> None:
    """Run the scheduler until `stop` is set: lead if the lock is free, else stand by and retry."""
    leadership = Leadership(_database(app).engine.url)
    try:
        while not stop.is_set():
            if leadership.try_acquire():
                log.info("scheduler %s leads", RUNNER)
                _lead(app, registry, leadership, stop, check_every)
            else:
                stop.wait(standby_poll)
    finally:
        leadership.release()


def _lead(app: Flask, registry: Mapping[str, Job], leadership: Leadership, stop: threading.Event,
          check_every: float) -> None:
    # BackgroundScheduler rather than BlockingScheduler: the main thread must keep watching
    # the lock and the stop signal, and shut the scheduler down (waiting for running jobs)
    # from outside a job.
    _RUNTIME.update(app=app, registry=registry)
    catch_up(app, registry)
    scheduler = build_scheduler(app, registry)
    scheduler.start()
    for stored in scheduler.get_jobs():  # jobs a previous version registered
        if stored.id not in registry:
            stored.remove()
    try:
        while not stop.wait(check_every):
            if not leadership.alive():
                break
    finally:
        scheduler.shutdown(wait=True)
