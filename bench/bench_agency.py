"""Benchmark importing a collection agency's 速報 and 確報 files of N records on PostgreSQL.

Usage: python bench/bench_agency.py [--records 1000000] [--seed 7] [--sql] [--profile DIR]

Setup, not part of the figures (each step's time is printed): a fresh PostgreSQL database
`kokin_bench_<hex>` on 127.0.0.1:5432 (dropped at the end), migrated and seeded; synthetic
instalments of municipality 131075 loaded with Core (`ward_rows`) and their slips issued by
`issue_slips`, topped up until `--records` slips carry a barcode (instalments above the
barcode limit get none); one store payment per slip (paid 1-25 days before its due date, at
a random time and store, at chains and apps weighted as in the agency sandbox). The agency
writes one 速報 file and one 確報 file for all of them in the 120-byte cp932 layout
`agency-fixed120`.

Measured, each in a fresh Python process (this script with --phase) on the file written to a
temporary directory, as `kokin agency import` would run it:

  bare     the baseline: the payments, agency reports and their lines the 速報 import writes, made in
           Python beforehand (ids from the sequences, every column), COPYed into the same
           tables with their indexes and foreign keys, then rolled back; only the COPYs timed;
  速報     `import_agency_file` on the 速報 file: every record a new payment, decided in Python
           and booked (payments, agency reports, slips marked paid). Wall time and its steps,
           timed by wrapping the service's functions in that process: parse (the adapter's
           read), stage (keys staged, known records applied, new ones staged in full), decide
           (the new payments read with their slips, instalments locked, `_decide`), write (the
           decisions copied and written), the rest (import row, event, commit). Ratios: bare
           COPY to the write step and to the whole import;
  again    the same 速報 file again, which must answer already_imported;
  parse    `agency.read(data, workers=cores)` on the 確報 bytes (after VACUUM ANALYZE, as
           autovacuum would have run in the days between);
  確報     `import_agency_file(...)` on the 確報 bytes end to end (the UPDATE confirming the
           known payments), and the ratio parse/import; then the 確報 again.

The issue's goals: a 速報 of one million records in at most 20 s with at most 1 GB peak
memory; the 確報 in at most 20 s.

Memory is the measuring process's peak resident set size, VmHWM in /proc/self/status (Linux),
printed whole and as the increase over the peak just before the call (interpreter, imports
and the file's bytes already loaded). Not getrusage's ru_maxrss: it keeps the parent's size
across fork and exec. Not tracemalloc: it slows allocation-heavy code severalfold.

After the 確報 import the database is checked and printed (figures, never assertions): reports
carrying this import as final_import_id against N, reports without one, remittance dates,
applied agency payments, paid slips, exceptions raised.

With --sql each import's SQL statements sent through SQLAlchemy are timed (cursor events: not
the COPYs nor the statements the service sends on the driver's cursor) and printed grouped,
slowest first. --profile DIR implies --sql and also runs both imports under cProfile, their
times then inflated by it; the stats are saved as DIR/sokuho.pstats and DIR/kakuho.pstats
and the 確報's top entries printed.
"""
from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from bench_issue import (  # bench/ is on sys.path when run
    FISCAL_YEAR,
    INSTALMENTS_PER_PAYER,
    MUNICIPALITY,
    SETUP_CHUNK,
    PrintProgress,
    _assessment,
    fresh_database,
)
from sqlalchemy import Engine, event, func, insert, select, text

from adapters.agency import AgencyAdapter, make_agency_adapter
from adapters.agency.simulator import Scheduled, StorePayment, planned_remittance, write_file
from domain.calendar import business_day_after
from gateway import migrate
from gateway.config import load_settings
from gateway.db import Database, utcnow
from gateway.models import (
    AgencyReport,
    AgencyReportLine,
    Assessment,
    FundType,
    Municipality,
    Payment,
    ReconException,
    Slip,
)
from gateway.sandbox.agency import CHAINS
from gateway.sandbox.ward import ward_rows
from gateway.services import agency_import, agency_new_payments
from gateway.services.agency_import import import_agency_file
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips

ADAPTER = "agency-fixed120"
CLIENT_CODE = "13107"  # municipality 131075 at the agency (gateway/defaults.toml)
MARGIN = 1.005  # instalments loaded per slip wanted: about 0.1% are above the barcode limit


# -- setup (not measured) -------------------------------------------------------------------------

def prepare(url: str, records: int) -> Sequence[Any]:
    """Migrate, seed, load instalments and issue slips until `records` carry a barcode; return those."""
    database = Database(url)
    migrate.upgrade(database.engine)
    seed_reference_data(database.session(), load_settings()["MUNICIPALITIES"])
    loaded, wanted = 0, int(records * MARGIN) + 100
    while True:
        began = time.perf_counter()
        loaded = _load(database.engine, loaded, wanted)
        print(f"    loaded {loaded:,} instalments in {time.perf_counter() - began:.1f} s", flush=True)
        began = time.perf_counter()
        with database.session() as session:
            result = issue_slips(session, MUNICIPALITY, progress=PrintProgress())
        print(f"    issued {result.issued:,} slips ({result.without_barcode:,} without a barcode) "
              f"in {time.perf_counter() - began:.1f} s", flush=True)
        with database.engine.connect() as conn:
            slips = conn.execute(select(Slip.barcode, Slip.due_date).where(Slip.barcode.is_not(None))
                                 .order_by(Slip.id).limit(records)).all()
        if len(slips) >= records:
            break
        wanted = loaded + (records - len(slips)) * 2 + 100
    database.dispose()
    _vacuum_analyze(url)
    return slips


def _load(engine: Engine, start: int, stop: int) -> int:
    """Insert instalments start..stop of the synthetic ward (the generator is deterministic); return stop."""
    rows = itertools.islice(ward_rows(MUNICIPALITY, FISCAL_YEAR, stop // INSTALMENTS_PER_PAYER + 1), start, stop)
    with engine.connect() as conn:
        muni_id = conn.execute(select(Municipality.id).where(Municipality.code == MUNICIPALITY)).scalar_one()
        funds = dict(conn.execute(select(FundType.code, FundType.id).where(FundType.municipality_id == muni_id)).all())
        now = utcnow()
        while chunk := list(itertools.islice(rows, SETUP_CHUNK)):
            conn.execute(insert(Assessment), [_assessment(row, muni_id, funds, now) for row in chunk])
            conn.commit()
            start += len(chunk)
    return start


def _vacuum_analyze(url: str) -> None:
    began = time.perf_counter()
    database = Database(url)
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    database.dispose()
    print(f"    VACUUM ANALYZE in {time.perf_counter() - began:.1f} s", flush=True)


def store_payments(slips: Sequence[Any], seed: int) -> list[StorePayment]:
    """One store payment per slip, before its due date, sorted by when it was made."""
    rng = random.Random(seed)
    codes, weights = [c for c, _ in CHAINS], [w for _, w in CHAINS]
    chains = rng.choices(codes, weights, k=len(slips))
    payments = [StorePayment(slip.barcode, datetime.combine(slip.due_date - timedelta(days=rng.randint(1, 25)),
                                                            clock(rng.randint(7, 22), rng.randint(0, 59))),
                             f"{rng.randint(1, 9_999_999):07d}", chain)
                for slip, chain in zip(slips, chains, strict=True)]
    return sorted(payments, key=lambda p: p.paid_at)


def agency_file(agency: AgencyAdapter, payments: list[StorePayment], kind: str) -> bytes:
    """The agency's single file of `kind` records ("preliminary" or "final") for every payment."""
    last = max(p.paid_at.date() for p in payments)
    if kind == "preliminary":
        records = [Scheduled(business_day_after(last), "preliminary", p, None) for p in payments]
        created_on = business_day_after(last)
    else:
        remittance: dict[date, date] = {}  # a few hundred distinct days: compute each once
        for day in {p.paid_at.date() for p in payments}:
            remittance[day] = planned_remittance(day)
        created_on = business_day_after(last, 6)
        records = [Scheduled(created_on, "final", p, remittance[p.paid_at.date()]) for p in payments]
    return write_file(agency, records, created_on=created_on, client_code=CLIENT_CODE)


# -- one measured call in a fresh process -----------------------------------------------------------

def run_phase(phase: str, path: Path, url: str, *, sql: bool = False, profile: str | None = None) -> dict[str, Any]:
    """Run `phase` ("parse" or "import") on the file at `path` in a fresh process; return its figures."""
    out = path.with_suffix(f".{phase}.json")
    command = [sys.executable, __file__, "--phase", phase, "--file", str(path), "--url", url, "--out", str(out)]
    command += ["--sql"] if sql else []
    command += ["--profile", profile] if profile else []
    subprocess.run(command, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return figures


# The import's steps, timed by wrapping them in the measuring process only (the service is unchanged):
# parse = the adapter's read; stage = every key staged, the known records applied, the new ones staged
# in full; write = the decisions copied and written (SQLite: each chunk's inserts); decide = booking the
# new payments less the writes (reading the stage with its slips, locking, `_decide`). Each function
# is replaced where it is called from.
PHASES = {"stage": ((agency_import, "stage_keys"), (agency_import, "_apply_to_known"),
                    (agency_import, "stage_new_records")),
          "book": ((agency_import, "apply_new_payments"),),
          "write": ((agency_new_payments, "_copy_decisions"), (agency_new_payments, "_write_decided"),
                    (agency_new_payments, "_write"))}


def _time_phases(agency: AgencyAdapter, seconds: dict[str, float]) -> None:
    def timed(phase: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - began
        return wrapper
    for phase, functions in PHASES.items():
        for module, name in functions:
            setattr(module, name, timed(phase, getattr(module, name)))
    # on the class: the instance goes to the forked readers by pickle, a wrapper on it would not
    adapter_class = type(agency)
    adapter_class.read = timed("parse", adapter_class.read)  # type: ignore[method-assign]


def bare_copy(path: Path, url: str) -> dict[str, Any]:
    """The baseline: COPY the payments, reports and lines the 速報 import would write, then roll back.

    The rows (ids from the sequences, every column the import fills) are made before the clock
    starts; only the two COPYs are timed, into the same tables with their indexes and foreign keys.
    """
    agency = make_agency_adapter(ADAPTER, {})
    reports = agency.read(path.read_bytes(), workers=os.cpu_count() or 1).reports
    database = Database(url)
    with database.engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        slips = {(n, r): (i, a) for i, n, r, a in conn.execute(select(Slip.id, Slip.number, Slip.reissue,
                                                                     Slip.assessment_id))}
        ids = conn.execute(text("SELECT nextval('payments_id_seq'), nextval('agency_reports_id_seq') "
                                "FROM generate_series(1, :n)"), {"n": len(reports)}).all()
        muni = conn.execute(select(Municipality.id).where(Municipality.code == MUNICIPALITY)).scalar_one()
        now = utcnow().isoformat()
        payments, rows, lines = [], [], []
        for (payment_id, report_id), r in zip(ids, reports, strict=True):
            slip_id, assessment_id = slips[(r.barcode[13:29], int(r.barcode[29]))]
            paid_at = f"{r.paid_on.isoformat()} {r.paid_time.isoformat()}+09:00"
            payments.append(f"{payment_id}\t{muni}\t{slip_id}\t{assessment_id}\tagency\tsucceeded\t{r.amount}\t0\t0\t"
                            f"t\tf\t{paid_at}\t{now}\t{now}\n")
            rows.append(f"{report_id}\t{muni}\t{ADAPTER}\t{r.match_key}\t{r.barcode}\t{r.barcode[13:29]}\t"
                        f"{r.barcode[29]}\t{r.amount}\t{paid_at}\t{r.paid_on.isoformat()}\t{r.store_code}\t"
                        f"{r.chain_code}\t{r.channel}\t1\t\\N\t\\N\t\\N\t{payment_id}\t{now}\n")
            lines.append(f"{report_id}\tpreliminary\t{muni}\t{r.raw_line}\n")
        del reports, slips
        figures: dict[str, Any] = {"records": len(rows), "rss_before_kib": _max_rss()}
        cursor = driver.cursor()
        began = time.perf_counter()
        with cursor.copy("COPY payments (id, municipality_id, slip_id, assessment_id, channel, status, amount, "
                         "fee_amount, refunded_amount, applied, overpaid, accepted_at, created_at, updated_at) "
                         "FROM STDIN") as copy:
            for start in range(0, len(payments), 50_000):
                copy.write("".join(payments[start:start + 50_000]))
        figures["payments_seconds"] = time.perf_counter() - began
        with cursor.copy("COPY agency_reports (id, municipality_id, adapter, match_key, barcode, slip_number, "
                         "reissue, amount, paid_at, paid_on, store_code, chain_code, channel, preliminary_import_id, "
                         "final_import_id, cancel_import_id, remittance_on, payment_id, created_at) "
                         "FROM STDIN") as copy:
            for start in range(0, len(rows), 50_000):
                copy.write("".join(rows[start:start + 50_000]))
        figures["reports_seconds"] = time.perf_counter() - began - figures["payments_seconds"]
        with cursor.copy("COPY agency_report_lines (agency_report_id, kind, municipality_id, line) "
                         "FROM STDIN") as copy:
            for start in range(0, len(lines), 50_000):
                copy.write("".join(lines[start:start + 50_000]))
        figures["seconds"] = time.perf_counter() - began
        figures["lines_seconds"] = figures["seconds"] - figures["payments_seconds"] - figures["reports_seconds"]
        conn.rollback()
    database.dispose()
    figures["rss_peak_kib"] = _max_rss()
    return figures


def child(phase: str, path: Path, url: str, out: Path, sql: bool, profile: str | None) -> None:
    """The --phase process: read the file, time one call, write seconds, result and peak RSS as JSON."""
    if phase == "bare":
        out.write_text(json.dumps(bare_copy(path, url)))
        return
    agency = make_agency_adapter(ADAPTER, {})
    data = path.read_bytes()
    phases: dict[str, float] = {}
    if phase == "import":
        _time_phases(agency, phases)
    database = Database(url) if phase == "import" else None
    statements: list[list[Any]] = []
    if sql and database is not None:
        _time_statements(database.engine, statements)
    figures: dict[str, Any] = {"rss_before_kib": _max_rss(), "statements": statements}
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    began = time.perf_counter()
    if database is None:
        figures["records"] = len(agency.read(data, workers=os.cpu_count() or 1).reports)
    else:
        with database.session() as session:
            result = import_agency_file(session, agency, data, municipality_code=MUNICIPALITY, filename=path.name,
                                        source="bench", actor="bench")
        figures.update(records=result.records, import_id=result.import_id, already_imported=result.already_imported,
                       booked=result.booked, confirmed=result.confirmed, repeated=result.repeated,
                       cancelled=result.cancelled, exceptions=dict(result.exceptions))
    figures["seconds"] = time.perf_counter() - began
    figures["phases"] = phases
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    if database is not None:
        database.dispose()
    figures["rss_peak_kib"] = _max_rss()
    out.write_text(json.dumps(figures))


def _time_statements(engine: Engine, log: list[list[Any]]) -> None:
    """Note each statement's text, seconds and row count (the staging COPY goes around SQLAlchemy)."""
    started: list[float] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(*_: Any) -> None:
        started.append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        log.append([" ".join(statement.split())[:110], time.perf_counter() - started.pop(), cursor.rowcount])


def _max_rss() -> int:
    """This process's peak resident set size so far, KiB (VmHWM; unlike ru_maxrss, not the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: may include the parent's size


# -- the run ----------------------------------------------------------------------------------------

def run(records: int, seed: int, sql: bool, profile: str | None) -> None:
    print(f"[postgresql] {records:,} store payments, {ADAPTER}", flush=True)
    if profile:
        Path(profile).mkdir(parents=True, exist_ok=True)
        sql = True
    with fresh_database("postgresql") as url, tempfile.TemporaryDirectory(prefix="kokin_bench_") as folder:
        preliminary, final = write_files(url, records, seed, Path(folder))
        print("    baseline: a bare COPY of the 速報's payments, reports and lines (rolled back)", flush=True)
        bare = run_phase("bare", preliminary, url)
        print("    importing the 速報 file (a new payment per record)" + (" under cProfile" if profile else ""),
              flush=True)
        sokuho = run_phase("import", preliminary, url, sql=sql, profile=profile and f"{profile}/sokuho.pstats")
        print(f"    速報: booked {sokuho['booked']:,}, exceptions {sokuho['exceptions'] or 'none'}", flush=True)
        sokuho_again = run_phase("import", preliminary, url)
        print(f"    the 速報 file again: already_imported={sokuho_again['already_imported']} in "
              f"{sokuho_again['seconds']:.1f} s", flush=True)
        _vacuum_analyze(url)
        print("    parsing the 確報 file", flush=True)
        parse = run_phase("parse", final, url)
        print("    importing the 確報 file" + (" under cProfile" if profile else ""), flush=True)
        kakuho = run_phase("import", final, url, sql=sql, profile=profile and f"{profile}/kakuho.pstats")
        print(f"    確報: confirmed {kakuho['confirmed']:,}, booked {kakuho['booked']:,}, repeated "
              f"{kakuho['repeated']:,}, exceptions {kakuho['exceptions'] or 'none'}", flush=True)
        check(url, kakuho["import_id"], records)
        again = run_phase("import", final, url)
        print(f"    the 確報 file again: already_imported={again['already_imported']} in {again['seconds']:.1f} s",
              flush=True)
    summarise_sokuho(bare, sokuho, sokuho_again)
    summarise(sokuho, parse, kakuho)
    if sql:
        print_statements("速報 import", sokuho["statements"])
        print_statements("確報 import", kakuho["statements"])
    if profile:
        print_profile(f"{profile}/kakuho.pstats")


def write_files(url: str, records: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """Set the database up and write the 速報 and 確報 files of `records` store payments; return their paths."""
    agency = make_agency_adapter(ADAPTER, {})
    began = time.perf_counter()
    payments = store_payments(prepare(url, records), seed)
    print(f"    set up {len(payments):,} slips to pay in {time.perf_counter() - began:.1f} s", flush=True)
    paths = folder / "sokuho.dat", folder / "kakuho.dat"
    for path, kind in zip(paths, ("preliminary", "final"), strict=True):
        began = time.perf_counter()
        path.write_bytes(agency_file(agency, payments, kind))
        print(f"    wrote the {kind} file ({path.stat().st_size:,} bytes) in {time.perf_counter() - began:.1f} s",
              flush=True)
    return paths


def check(url: str, import_id: int, expected: int) -> None:
    """Count what the 確報 import left (figures, not assertions)."""
    database = Database(url)
    reports = select(func.count()).select_from(AgencyReport)
    queries = {
        "reports with this 確報 as final_import_id": (reports.where(AgencyReport.final_import_id == import_id),
                                                     expected),
        "reports without final_import_id": (reports.where(AgencyReport.final_import_id.is_(None)), 0),
        "reports with a remittance date": (reports.where(AgencyReport.remittance_on.is_not(None)), expected),
        "reports with both lines as received": (reports.where(*(
            select(AgencyReportLine.agency_report_id).where(
                AgencyReportLine.municipality_id == AgencyReport.municipality_id,
                AgencyReportLine.agency_report_id == AgencyReport.id, AgencyReportLine.kind == kind).exists()
            for kind in ("preliminary", "final"))), expected),
        "reports in all": (reports, expected),
        "applied agency payments": (select(func.count()).select_from(Payment)
                                    .where(Payment.channel == "agency", Payment.applied), expected),
        "paid slips": (select(func.count()).select_from(Slip).where(Slip.status == "paid"), expected),
        "exceptions raised": (select(func.count()).select_from(ReconException), 0),
    }
    with database.engine.connect() as conn:
        for label, (query, want) in queries.items():
            print(f"      {label:<42} {conn.scalar(query) or 0:>10,} of {want:,} expected", flush=True)
    database.dispose()


def summarise_sokuho(bare: dict[str, Any], sokuho: dict[str, Any], again: dict[str, Any]) -> None:
    """The 速報 import: wall time, its steps, peak memory, and the ratio of a bare COPY of its rows to it."""
    print("\nsummary: 速報 (every record a new payment)")
    peak, grown = sokuho["rss_peak_kib"] / 1024, (sokuho["rss_peak_kib"] - sokuho["rss_before_kib"]) / 1024
    print(f"  速報 import {sokuho['records']:>9,} records in {sokuho['seconds']:7.2f} s = "
          f"{sokuho['records'] / sokuho['seconds']:9,.0f} records/s   peak RSS {peak:7,.0f} MiB (+{grown:,.0f} MiB)")
    steps = dict(sokuho["phases"])
    steps["decide"] = steps.pop("book", 0.0) - steps.get("write", 0.0)
    steps["rest (import row, event, commit)"] = sokuho["seconds"] - sum(steps.values())
    for step in ("parse", "stage", "decide", "write", "rest (import row, event, commit)"):
        print(f"    {step:<34} {steps.get(step, 0.0):7.2f} s")
    print(f"  bare COPY of the same payments, reports and lines: {bare['seconds']:.2f} s (payments "
          f"{bare['payments_seconds']:.2f} s, reports {bare['reports_seconds']:.2f} s, lines "
          f"{bare['lines_seconds']:.2f} s); ratio bare/write "
          f"{bare['seconds'] / max(steps.get('write', 0.0), 1e-9):.2f}, bare/import "
          f"{bare['seconds'] / sokuho['seconds']:.2f}")
    print(f"  the same 速報 file again: already_imported={again['already_imported']} in {again['seconds']:.2f} s")
    print("  goal: at most 20 s and 1 GB for 1,000,000 records", flush=True)


def summarise(sokuho: dict[str, Any], parse: dict[str, Any], kakuho: dict[str, Any]) -> None:
    print("\nsummary: 確報 after it")
    for label, f in (("速報 import", sokuho), ("確報 parse only", parse), ("確報 import", kakuho)):
        peak, grown = f["rss_peak_kib"] / 1024, (f["rss_peak_kib"] - f["rss_before_kib"]) / 1024
        print(f"  {label:<20} {f['records']:>9,} records in {f['seconds']:7.2f} s = "
              f"{f['records'] / f['seconds']:9,.0f} records/s   peak RSS {peak:7,.0f} MiB (+{grown:,.0f} MiB "
              f"over the start)")
    print(f"  ratio parse/import: {parse['seconds'] / kakuho['seconds']:.2f}   "
          f"確報 import {kakuho['seconds']:.1f} s (goal: at most 20 s for 1,000,000 records)", flush=True)


def print_statements(label: str, statements: list[list[Any]]) -> None:
    """The statements of one import grouped by their first 100 characters: calls, seconds, rows, slowest first."""
    groups: dict[str, list[float]] = {}
    for statement, seconds, rows in statements:
        group = groups.setdefault(statement[:100], [0, 0.0, 0])
        group[0], group[1], group[2] = group[0] + 1, group[1] + seconds, group[2] + max(rows, 0)
    print(f"\n{label}: SQL statements, {sum(g[1] for g in groups.values()):.2f} s in all (calls, seconds, rows)")
    for text_, (calls, seconds, rows) in sorted(groups.items(), key=lambda item: -item[1][1])[:12]:
        print(f"  {calls:>5,.0f} {seconds:8.2f} s {rows:>10,.0f}  {text_}")


def print_profile(path: str) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="store payments, records per file")
    parser.add_argument("--seed", type=int, default=7, help="seed of the store payments")
    parser.add_argument("--sql", action="store_true", help="time each import's SQL statements")
    parser.add_argument("--profile", metavar="DIR", help="--sql, and both imports under cProfile (stats saved in DIR)")
    for name in ("--phase", "--file", "--url", "--out"):  # the measuring process (run_phase)
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args.phase, Path(args.file), args.url, Path(args.out), args.sql, args.profile)
    else:
        run(args.records, args.seed, args.sql, args.profile)


if __name__ == "__main__":
    main()
