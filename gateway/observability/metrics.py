"""Prometheus metrics: what this process counts, and what the database holds, read at each scrape.

Counted in the process (prometheus_client; with PROMETHEUS_MULTIPROC_DIR set, as under
gunicorn, every process of the machine writes its own files there and `/metrics` sums them,
commands and the scheduler included when they are given the same folder):

- kokin_http_requests_total{method,route,status} and kokin_http_request_duration_seconds
  {method,route}: the route is the URL rule (`/api/v1/slips/<int:slip_id>`), never the path, so
  that ids and tokens never become labels;
- kokin_webhook_deliveries_total{adapter,outcome}: applied, unchanged, ignored, duplicate,
  rejected (verified but unusable), invalid_signature, provider_unavailable, error;
- kokin_file_imports_total{kind,outcome} (applied, rejected, failed),
  kokin_file_import_records_total{kind}, kokin_file_import_duration_seconds{kind};
- kokin_job_runs_total{job,outcome} and kokin_job_duration_seconds{job};
- kokin_db_connections_checked_out and kokin_db_pool_size (summed over live processes).

Read from the database at each scrape (the same figures from every instance, whichever
process booked them): payments by municipality, channel and status; open exceptions by
municipality and kind; when each municipality's reconciliation and each job last succeeded;
how late the scheduler's most overdue job is.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, func, select

from domain import clock

P = ParamSpec("P")
R = TypeVar("R")

HTTP_REQUESTS = Counter("kokin_http_requests", "HTTP requests answered", ["method", "route", "status"])
HTTP_SECONDS = Histogram("kokin_http_request_duration_seconds", "Time to answer an HTTP request",
                         ["method", "route"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
WEBHOOKS = Counter("kokin_webhook_deliveries", "Provider notifications received", ["adapter", "outcome"])
IMPORTS = Counter("kokin_file_imports", "Files imported", ["kind", "outcome"])
IMPORT_RECORDS = Counter("kokin_file_import_records", "Records in files applied", ["kind"])
IMPORT_SECONDS = Histogram("kokin_file_import_duration_seconds", "Time to validate and apply a file", ["kind"],
                           buckets=(.1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800))
JOB_RUNS = Counter("kokin_job_runs", "Scheduler job runs", ["job", "outcome"])
JOB_SECONDS = Histogram("kokin_job_duration_seconds", "Time a scheduler job ran", ["job"],
                        buckets=(.1, 1, 5, 15, 60, 300, 900, 1800, 3600))
POOL_CHECKED_OUT = Gauge("kokin_db_connections_checked_out", "Database connections in use",
                         multiprocess_mode="livesum")
POOL_SIZE = Gauge("kokin_db_pool_size", "Database connections the pools may keep", multiprocess_mode="livesum")

# A file import's error types whose failure means the file was refused (nothing applied).
REJECTED_STATUSES = range(400, 500)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)


def observe_webhook(adapter: str, outcome: str) -> None:
    WEBHOOKS.labels(adapter, outcome).inc()


def observed_import(kind: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count a file import's outcome, records and seconds. A GatewayError of status 4xx is a rejected file."""
    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @wraps(function)
        def observed(*args: P.args, **kwargs: P.kwargs) -> R:
            began = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                rejected = getattr(exc, "status", None) in REJECTED_STATUSES
                IMPORTS.labels(kind, "rejected" if rejected else "failed").inc()
                raise
            finally:
                IMPORT_SECONDS.labels(kind).observe(time.perf_counter() - began)
            IMPORTS.labels(kind, "applied").inc()
            records = getattr(result, "records", None)
            if isinstance(records, int):
                IMPORT_RECORDS.labels(kind).inc(records)
            return result
        return observed
    return decorate


def observe_job(job: str, outcome: str, seconds: float) -> None:
    JOB_RUNS.labels(job, outcome).inc()
    JOB_SECONDS.labels(job).observe(seconds)


def observe_pool(engine: Engine) -> None:
    """Follow the engine's pool: connections checked out, and how many it may keep."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        POOL_SIZE.inc(size())

    @event.listens_for(engine, "checkout")
    def _out(*_: Any) -> None:
        POOL_CHECKED_OUT.inc()

    @event.listens_for(engine, "checkin")
    def _in(*_: Any) -> None:
        POOL_CHECKED_OUT.dec()


class DatabaseCollector(Collector):
    """The figures the database holds, read at each scrape through `session_factory`."""

    def __init__(self, session_factory: Callable[[], Any]) -> None:
        self.session_factory = session_factory

    def collect(self) -> Iterator[Metric]:
        from gateway.models import JobRun, Municipality, Payment, ReconException, ReconRun, SchedulerJob

        with self.session_factory() as session:
            codes = {id_: code for id_, code in session.execute(select(Municipality.id, Municipality.code))}
            payments = GaugeMetricFamily("kokin_payments", "Payments held, by channel and status",
                                         labels=["municipality", "channel", "status"])
            for municipality, channel, status, count in session.execute(
                    select(Payment.municipality_id, Payment.channel, Payment.status, func.count())
                    .group_by(Payment.municipality_id, Payment.channel, Payment.status)):
                payments.add_metric([codes.get(municipality, "?"), channel, status], count)
            yield payments
            open_ = GaugeMetricFamily("kokin_open_exceptions", "Reconciliation exceptions not resolved, by kind",
                                      labels=["municipality", "kind"])
            for municipality, kind, count in session.execute(
                    select(ReconException.municipality_id, ReconException.kind, func.count())
                    .where(ReconException.status != "resolved")
                    .group_by(ReconException.municipality_id, ReconException.kind)):
                open_.add_metric([codes.get(municipality, "?"), kind], count)
            yield open_
            recon = GaugeMetricFamily("kokin_reconciliation_last_success_timestamp_seconds",
                                      "When the municipality's reconciliation last finished", labels=["municipality"])
            for municipality, finished in session.execute(
                    select(ReconRun.municipality_id, func.max(ReconRun.finished_at))
                    .where(ReconRun.status == "succeeded").group_by(ReconRun.municipality_id)):
                if finished is not None:
                    recon.add_metric([codes.get(municipality, "?")], _seconds(finished))
            yield recon
            jobs = GaugeMetricFamily("kokin_job_last_success_timestamp_seconds", "When each job last succeeded",
                                     labels=["job"])
            for job, finished in session.execute(select(JobRun.job, func.max(JobRun.finished_at))
                                                 .where(JobRun.status == "succeeded").group_by(JobRun.job)):
                if finished is not None:
                    jobs.add_metric([job], _seconds(finished))
            yield jobs
            due = session.scalar(select(func.min(SchedulerJob.next_run_time)))
            lag = GaugeMetricFamily("kokin_scheduler_lag_seconds",
                                    "How late the most overdue scheduled job is (0: none is due)")
            lag.add_metric([], max(0.0, clock.timestamp() - due) if due is not None else 0.0)
            yield lag


def _seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def exposition(session_factory: Callable[[], Any]) -> tuple[bytes, str]:
    """The text exposition: this machine's processes (or this process) and the database's figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    database = CollectorRegistry()
    database.register(DatabaseCollector(session_factory))
    return generate_latest(registry) + generate_latest(database), CONTENT_TYPE_LATEST
