"""The scheduler's jobs as data: what runs, when (cron fields in Asia/Tokyo) and for which business date.

Two kinds, decided by how often they run:

- daily jobs (reconciliation, agency pull, agency checks) are guarded: one JobRun row per
  (job, business date) means they run once per date however many schedulers there are;
  a failed run is retried by the next attempt (the scheduler's catch-up, or `--once`).
- frequent housekeeping (janitor, expiry) runs every few minutes and is idempotent by
  nature (what it does is decided by the database's state, applied through the same path
  as a webhook). It is not guarded per run, only by the advisory-lock leader; its JobRun
  row for today is a heartbeat that each run updates (attempts = runs today).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import Flask

from adapters.agency import AgencyAdapter
from gateway.db import Database

JobFunc = Callable[[Flask, date], dict[str, Any]]  # run(app, business_date) -> JSON-able summary


@dataclass(frozen=True)
class Job:
    """One scheduled job: `run(app, business_date)` returns a JSON-able summary."""

    name: str
    run: JobFunc
    cron: Mapping[str, Any]  # apscheduler CronTrigger fields, Asia/Tokyo
    date_offset: int = 0  # business date = the Tokyo date it fires on + this (reconciliation: the day before)
    guarded: bool = True  # False: frequent, idempotent housekeeping (leader only, heartbeat row)
    description: str = field(default="", compare=False)

    def business_date(self, fired_on: date) -> date:
        return fired_on + timedelta(days=self.date_offset)


def _db(app: Flask) -> Database:
    return app.extensions["kokin.db"]


def _municipality_codes(app: Flask) -> list[str]:
    return [str(m["code"]) for m in app.config["MUNICIPALITIES"]]


def reconcile(app: Flask, business_date: date) -> dict[str, Any]:
    """Reconcile the business date of every configured municipality."""
    from reconciliation.run import reconcile_day  # here: the scheduler starts without loading the matching

    summary: dict[str, Any] = {}
    for code in _municipality_codes(app):
        with _db(app).session() as session:
            result = reconcile_day(session, code, business_date, adapters=app.extensions["kokin.adapters"],
                                   agency_fees=app.config.get("AGENCY_FEES"))
        summary[code] = result.as_dict()
    return summary


def _agency_municipality(app: Flask, agency: AgencyAdapter) -> str:
    codes = {str(m["client_code"]): str(m["code"]) for m in app.config["MUNICIPALITIES"]}
    if agency.client_code in codes:
        return codes[agency.client_code]
    if len(codes) == 1:
        return next(iter(codes.values()))
    raise ValueError(f"{agency.name}: no municipality has client code {agency.client_code!r}")


def pull_agencies(app: Flask, business_date: date) -> dict[str, Any]:
    """Pull and import every agency's newest file; agencies without pull_url are skipped.

    Safe to repeat: the same file twice is one import. One agency failing fails the run
    (so it is retried) after the others were imported.
    """
    from adapters.base import RetryableError
    from gateway.errors import AgencyFileInvalid
    from gateway.services.agency_import import import_agency_file

    agencies: dict[str, AgencyAdapter] = app.extensions["kokin.agencies"]
    summary: dict[str, Any] = {"imported": {}, "skipped_without_pull_url": []}
    failures: list[str] = []
    for name, agency in sorted(agencies.items()):
        if not agency.pull_url:
            summary["skipped_without_pull_url"].append(name)
            continue
        try:
            data = agency.pull()
            filename = f"{name}-pull-{business_date:%Y%m%d}.dat"
            with _db(app).session() as session:
                result = import_agency_file(session, agency, data, municipality_code=_agency_municipality(app, agency),
                                            filename=filename, source="pull", actor="scheduler")
        except (RetryableError, ValueError, AgencyFileInvalid) as exc:
            failures.append(f"{name}: {exc}")
            continue
        summary["imported"][name] = {"records": result.records, "already_imported": result.already_imported,
                                     "booked": result.booked, "confirmed": result.confirmed,
                                     "cancelled": result.cancelled, "exceptions": dict(result.exceptions)}
    if failures:
        raise RuntimeError(f"{len(failures)} agency pull(s) failed: " + "; ".join(failures))
    return summary


def check_agencies(app: Flask, business_date: date) -> dict[str, Any]:
    """Raise overdue 確報 and remittance differences due by the business date (each once)."""
    from gateway.services.agency_checks import check_agency_data

    summary: dict[str, Any] = {}
    for code in _municipality_codes(app):
        with _db(app).session() as session:
            summary[code] = dict(check_agency_data(session, code, business_date))
    return summary


def export_receipts(app: Flask, business_date: date) -> dict[str, Any]:
    """Write each municipality's next receipts file (everything not sent yet) into the instance folder.

    Runs after the agency pull, so the 速報 of the night are in it. With nothing new, no file.
    """
    from reconciliation.receipts import export_next

    return _write_next_files(app, "receipts", "records",
                             lambda session, code: export_next(session, code, actor="scheduler"))


def export_counter_revenue(app: Flask, business_date: date) -> dict[str, Any]:
    """Write each municipality's next counter revenue file (closed days up to `business_date`) into the instance folder.

    The business date is the day before the run: that day is over. With no new line, no file.
    """
    from reconciliation.counter_revenue import export_next

    return _write_next_files(app, "counter-revenue", "lines", lambda session, code: export_next(
        session, code, actor="scheduler", through=business_date))


def _write_next_files(app: Flask, prefix: str, counted: str, export: Callable[[Any, str], Any]) -> dict[str, Any]:
    """Each municipality's next file of a feed, written with its sidecar into instance/outbound/<code>/."""
    from pathlib import Path

    from reconciliation.outbound import write_export

    summary: dict[str, Any] = {}
    for code in _municipality_codes(app):
        with _db(app).session() as session:
            result = export(session, code)
        if result is None:
            summary[code] = "nothing new"
            continue
        folder = Path(app.instance_path) / "outbound" / code
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{prefix}-{result.sequence:06d}.{'csv' if result.layout.endswith('csv') else 'dat'}"
        write_export(result, out)
        summary[code] = {"sequence": result.sequence, counted: result.count, "total": result.total,
                         "file": out.name, "sha256": result.sha256}
    return summary


def janitor(app: Flask, business_date: date) -> dict[str, Any]:
    """Settle attempts and refunds left open by lost notifications (idempotent)."""
    from gateway.services.janitor import settle_stale_attempts
    from gateway.services.refunds import resume_refunds

    adapters = app.extensions["kokin.adapters"]
    with _db(app).session() as session:
        results = settle_stale_attempts(session, adapters)
        results += resume_refunds(session, adapters)
    return dict(results)


def expiry(app: Flask, business_date: date) -> dict[str, Any]:
    """Purge idempotency keys past their retention (idempotent).

    Attempts past their expiry are cancelled and expired by the janitor every 10 minutes
    (settle_stale_attempts does it past expires_at + grace); repeating that here would only
    ask the providers twice.
    """
    from gateway.services.idempotency import purge_expired

    with _db(app).session() as session:
        return {"idempotency_keys_purged": purge_expired(session)}


JOBS: dict[str, Job] = {job.name: job for job in (
    Job("reconciliation", reconcile, {"hour": 2, "minute": 0}, date_offset=-1,
        description="reconcile the previous business date"),
    Job("agency-pull", pull_agencies, {"hour": 6, "minute": 0}, description="pull agencies' newest files"),
    Job("receipts-export", export_receipts, {"hour": 6, "minute": 30},
        description="the next receipts file for the core system, after the agency pull"),
    Job("counter-revenue-export", export_counter_revenue, {"hour": 6, "minute": 40}, date_offset=-1,
        description="the next counter revenue file for financial accounting, the closed days up to yesterday"),
    Job("agency-checks", check_agencies, {"hour": 7, "minute": 0}, date_offset=-1,
        description="overdue 確報 and remittance differences due by yesterday (its bank statement is in)"),
    Job("janitor", janitor, {"minute": "*/10"}, guarded=False, description="settle stale attempts and refunds"),
    Job("expiry", expiry, {"minute": 5}, guarded=False, description="purge expired idempotency keys"),
)}
