"""The scheduler process: runs gateway/scheduler/jobs.py's jobs once per business date, whoever else runs.

Two guards, because APScheduler 3 coordinates nothing across processes (every scheduler on
one job store runs every job; coalesce and max_instances are per process):

- the run guard (guard.py): a daily job first inserts its JobRun row (job, business date)
  with ON CONFLICT DO NOTHING; only the process whose insert made the row runs the job.
- the leader: on PostgreSQL, only the holder of a session-level advisory lock runs a
  scheduler at all; another process is a hot standby that retries the lock. This keeps
  the frequent, unguarded housekeeping jobs single and stops a standby from advancing
  the shared job store's next run times behind the leader's back. SQLite (one machine,
  the embedded default) has no advisory locks: run one scheduler there; the run guard
  still keeps daily jobs once per date if a second one is started by mistake.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask
from sqlalchemy import URL, Connection, create_engine, inspect, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from domain.calendar import TOKYO
from gateway.db import utcnow
from gateway.scheduler.guard import RUNNER, database, run_guarded, run_job, tokyo_today
from gateway.scheduler.jobs import JOBS, Job

log = logging.getLogger(__name__)
LEADER_LOCK_KEY = 0x6B6F6B696E5343  # "kokinSC": one key for the whole database
MISFIRE_GRACE = 3600  # seconds late a job may still fire (a restart around 02:00)


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
    store = MigratedJobStore(engine=database(app).engine, tablename="apscheduler_jobs")
    scheduler = BackgroundScheduler(timezone=TOKYO, jobstores={"default": store},
                                    executors={"default": ThreadPoolExecutor(4)},
                                    job_defaults={"coalesce": True, "max_instances": 1,
                                                  "misfire_grace_time": MISFIRE_GRACE})
    for job in registry.values():
        scheduler.add_job("gateway.scheduler.process:fire", CronTrigger(timezone=TOKYO, **job.cron),
                          args=[job.name], id=job.name, name=job.description or job.name, replace_existing=True)
    return scheduler


def serve(app: Flask, stop: threading.Event, registry: Mapping[str, Job] = JOBS, *,
          standby_poll: float = 15.0, check_every: float = 15.0) -> None:
    """Run the scheduler until `stop` is set: lead if the lock is free, else stand by and retry."""
    # A session-level lock: on a connection of its own to PostgreSQL itself, never through a
    # transaction-mode pooler (which would hand its server session to others between statements).
    direct = app.config.get("DATABASE_DIRECT_URL")
    if app.config.get("DATABASE_POOLER") == "transaction" and not direct:
        raise RuntimeError("KOKIN_DATABASE_POOLER=transaction: set KOKIN_DATABASE_DIRECT_URL to PostgreSQL itself "
                           "for the scheduler's leader lock (a pooler in transaction mode cannot hold it)")
    leadership = Leadership(make_url(direct) if direct else database(app).engine.url)
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
