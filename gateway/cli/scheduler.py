"""`kokin scheduler run|runs`: the scheduler process and the run records staff see."""
from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from typing import Any

import click
from flask import current_app

from domain import clock
from domain.calendar import TOKYO
from gateway.cli.base import operation, session
from gateway.scheduler.guard import list_runs, run_all_due, tokyo_today
from gateway.scheduler.jobs import JOBS
from gateway.scheduler.process import serve


@click.group("scheduler")
def scheduler() -> None:
    """Nightly reconciliation, agency pulls, the janitor and expiry (Asia/Tokyo)."""


@scheduler.command("run")
@click.option("--once", "job_name", type=click.Choice(sorted(JOBS)), default=None,
              help="run this one job now (through its guard) and exit")
@click.option("--date", "business_date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="with --once: the business date (default: the job's date for now)")
@click.option("--standby-poll", default=15.0, show_default=True, help="seconds between a standby's leader attempts")
@click.option("--clock-start", type=click.DateTime(["%Y-%m-%dT%H:%M"]), default=None,
              help="sandbox only: rehearse from this Tokyo time (catch-up and business dates read the clock from "
                   "there; the timers keep the wall clock)")
@operation
def run(job_name: str | None, business_date: datetime | None, standby_poll: float,
        clock_start: datetime | None) -> None:
    """Run the scheduler until SIGTERM/SIGINT; a second process is a hot standby (PostgreSQL)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if clock_start is not None:
        if not app.config["SANDBOX"]:
            raise click.UsageError("--clock-start rehearses a night in sandbox mode; a live scheduler keeps the wall "
                                   "clock")
        with clock.playing(clock_start.replace(tzinfo=TOKYO)):
            _run(app, job_name, business_date, standby_poll)
        return
    _run(app, job_name, business_date, standby_poll)


def _run(app: Any, job_name: str | None, business_date: datetime | None, standby_poll: float) -> None:
    if job_name is not None:
        job = JOBS[job_name]
        day = business_date.date() if business_date else job.business_date(tokyo_today())
        outcome = run_all_due(app, {job.name: job}, [day])[(job.name, day)]
        click.echo(f"{job.name} {day}: {outcome}")
        if outcome == "failed":
            raise click.ClickException(f"{job.name} failed; see `kokin scheduler runs --date {day}`")
        return
    if business_date is not None:
        raise click.UsageError("--date goes with --once")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %s: stopping after running jobs finish", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve(app, stop, standby_poll=standby_poll)


@scheduler.command("runs")
@click.option("--date", "business_date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="only this business date (default: the latest runs)")
@operation
def runs(business_date: datetime | None) -> None:
    """Print the job run records: job, business date, status, attempts, times (Asia/Tokyo), outcome."""
    rows = list_runs(session(), business_date.date() if business_date else None)
    if not rows:
        click.echo("no job runs")
    for row in rows:
        finished = f"{row.finished_at.astimezone(TOKYO):%H:%M:%S}" if row.finished_at else "-"
        outcome = row.error if row.status == "failed" else ", ".join(f"{k}={v}" for k, v in row.summary.items())
        click.echo(f"{row.business_date} {row.job:<15} {row.status:<9} attempts={row.attempts} "
                   f"started={row.started_at.astimezone(TOKYO):%Y-%m-%d %H:%M:%S} finished={finished} "
                   f"runner={row.runner} {outcome}".rstrip())
