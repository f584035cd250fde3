"""Benchmark sending the receipts feed after a day of one million payments, on PostgreSQL.

Usage: python bench/bench_feed.py [--payments 1000000] [--profile FILE]

Setup, not part of the figures (each step's time is printed): a fresh PostgreSQL database
(dropped at the end), migrated and seeded, and the synthetic day of bench_recon.py
(`load_day`: N payments across 2026-07-31, 60% agency, 30% card, 10% PayPay, with double
payments, void slips and mismatches, agency reports with their remittance dates); then the
journal records those payments wrote when they were booked, one INSERT ... SELECT (a
receipt per applied payment, an overpayment per payment kept), and VACUUM ANALYZE.

Measured, each in a fresh Python process:

  export        `export_next(session, "131075", "receipts-csv", actor="bench")`: the records
                claimed for file 1, read with their claims, funds and agency reports, the
                fiscal year attributed, the CSV rendered and read back in full, compressed and
                kept, the double payments handed over, committed. Then the file written.
  resend        `resend(session, "131075", 1)`: the kept bytes again, checked.
  bare          PostgreSQL alone: `COPY (SELECT <the same join, the values formatted by SQL>)
                TO STDOUT (FORMAT csv)` into a file: what the database needs to hand over the
                same rows, no claim, no check, no keeping.

Printed: seconds and records/s, the ratio export/bare, the file's size, and whether the file
holds as many records and the same net total as the journal. The issue's goal: the export
after a day of 1,000,000 payments in at most 20 s. Figures, never assertions.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from bench_issue import MUNICIPALITY, fresh_database  # bench/ is on sys.path when run
from bench_recon import Day, load_day, vacuum_analyze

from gateway import migrate
from gateway.config import load_settings
from gateway.db import Database
from gateway.services.reference import seed_reference_data

# The journal as booking writes it: a receipt per applied payment, an overpayment per one kept.
JOURNAL = """
INSERT INTO receipt_records (municipality_id, kind, reason, amount, channel, paid_at, business_date, payment_id,
                             assessment_id, agency_report_id, created_at)
SELECT p.municipality_id, CASE WHEN p.applied THEN 'receipt' ELSE 'overpayment' END,
       CASE WHEN p.applied THEN NULL WHEN p.overpaid THEN 'double_payment' ELSE 'amount_mismatch' END,
       p.amount, p.channel, p.accepted_at, (p.accepted_at AT TIME ZONE 'Asia/Tokyo')::date, p.id, p.assessment_id,
       r.id, p.accepted_at
FROM payments p LEFT JOIN agency_reports r ON r.payment_id = p.id
ORDER BY p.accepted_at, p.id
"""
BARE = """
COPY (SELECT 1, m.code || '-' || lpad(j.id::text, 12, '0'), j.kind, '', m.code, a.source_key, f.code, a.fiscal_year,
             a.installment, j.amount, j.amount, 0, 0, to_char(j.paid_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD'),
             to_char(j.paid_at AT TIME ZONE 'Asia/Tokyo', 'HH24:MI:SS'), r.remittance_on, a.fiscal_year, j.channel,
             j.reason
      FROM receipt_records j JOIN municipalities m ON m.id = j.municipality_id
      LEFT JOIN assessments a ON a.id = j.assessment_id LEFT JOIN fund_types f ON f.id = a.fund_type_id
      LEFT JOIN agency_reports r ON r.id = j.agency_report_id ORDER BY j.id) TO STDOUT (FORMAT csv, HEADER)
"""


def child(phase: str, url: str, folder: Path, profile: str | None) -> None:
    """The measuring process: time one call, write its figures as JSON."""
    from reconciliation.receipts import export_next, resend, write_export

    database = Database(url)
    session = database.session()
    out: dict[str, Any] = {}
    began = time.perf_counter()
    if phase == "export":
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        result = export_next(session, MUNICIPALITY, "receipts-csv", actor="bench")
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        assert result is not None
        write_export(result, folder / "receipts-000001.csv")
        out = {"records": result.count, "total": result.total, "bytes": len(result.data)}
    elif phase == "resend":
        result = resend(session, MUNICIPALITY, 1)
        out = {"records": result.count, "bytes": len(result.data)}
    else:
        target = folder / "bare.csv"
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg, pg.cursor() as cur, \
                target.open("wb") as handle, cur.copy(BARE) as copy:
            for block in copy:
                handle.write(block)
        out = {"bytes": target.stat().st_size}
    out["seconds"] = time.perf_counter() - began
    session.close()
    database.dispose()
    (folder / f"{phase}.json").write_text(json.dumps(out))


def run_phase(phase: str, url: str, folder: Path, profile: str | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--url", url, "--folder", str(folder)]
    subprocess.run(command + (["--profile", profile] if profile else []), check=True)
    return dict(json.loads((folder / f"{phase}.json").read_text()))


def run(payments: int, profile: str | None) -> None:
    print(f"[postgresql] the receipts feed after {payments:,} payments, municipality {MUNICIPALITY}", flush=True)
    with fresh_database("postgresql") as url, tempfile.TemporaryDirectory(prefix="kokin_bench_") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        database = Database(url)
        migrate.upgrade(database.engine)
        seed_reference_data(database.session(), load_settings()["MUNICIPALITIES"])
        database.dispose()
        load_day(url, Day(payments))
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg:
            step = time.perf_counter()
            records = pg.execute(JOURNAL).rowcount
            net = pg.execute("SELECT sum(amount) FROM receipt_records").fetchone()[0]  # type: ignore[index]
            print(f"    journal: {records:,} records, {net:,} yen, in {time.perf_counter() - step:.1f} s", flush=True)
        print(f"    VACUUM ANALYZE in {vacuum_analyze(url):.1f} s; setup in all {time.perf_counter() - began:.1f} s",
              flush=True)
        bare = run_phase("bare", url, folder)
        export = run_phase("export", url, folder, profile)
        again = run_phase("resend", url, folder)
    print(f"    export_next  {export['seconds']:7.2f} s  {export['records'] / export['seconds']:>10,.0f} records/s  "
          f"{export['bytes'] / 2**20:,.0f} MiB", flush=True)
    print(f"    resend       {again['seconds']:7.2f} s", flush=True)
    print(f"    bare COPY    {bare['seconds']:7.2f} s  {records / bare['seconds']:>10,.0f} records/s  "
          f"{bare['bytes'] / 2**20:,.0f} MiB", flush=True)
    print(f"    ratio export/bare: {export['seconds'] / bare['seconds']:.1f}", flush=True)
    print(f"    the file holds every record: {export['records'] == records} ({export['records']:,}); "
          f"net total matches: {export['total'] == net}", flush=True)
    print(f"    goal: export after {payments:,} payments <= 20 s: "
          f"{'met' if export['seconds'] <= 20 else 'NOT met'} ({export['seconds']:.1f} s)", flush=True)
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments accepted on the day")
    parser.add_argument("--profile", metavar="FILE", help="run the export under cProfile, stats in FILE")
    for name in ("--phase", "--url", "--folder"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args.phase, args.url, Path(args.folder), args.profile)
        return
    run(args.payments, args.profile)


if __name__ == "__main__":
    main()
