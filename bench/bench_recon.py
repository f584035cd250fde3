"""Benchmark reconciling one business date on PostgreSQL against a bare three-way join in DuckDB.

Usage: python bench/bench_recon.py [--payments 1000000] [--grow 5000000] [--profile FILE]

Setup, not part of the figures (each step's time is printed): a fresh PostgreSQL database
`kokin_bench_<hex>` on 127.0.0.1:5432 (dropped at the end), migrated and seeded with the
reference data; then ONE business date (2026-07-31, Asia/Tokyo) of municipality 131075
written with COPY (psycopg `cursor.copy`, text format, foreign-key triggers off for the load
only: the rows are consistent by construction), then the sequences set and VACUUM ANALYZE, as
autovacuum would have run before a nightly reconciliation. For `--payments` N:

  assessments   about N / 1.005 instalments paid that day (funds 01/02/11/12/13 of the seeded
                reference data), plus 10% more nobody paid (issued slips), so the day is not
                the whole ledger;
  slips         one per assessment, numbers from `make_slip_number`; paid, issued, or void;
  payments      N accepted across the day (status succeeded): 60% agency, 30% card, 10% paypay
                (card with its system usage fee); one applied payment per paid assessment;
  anomalies     on card and paypay only (agency payments were judged when their file came
                in, so reconcile_day skips them): 0.5% of N are second, overpaid payments of an
                already paid instalment (applied false, overpaid true: double_payment), 0.5%
                are paid after a due date of 2026-06-30 (paid_after_due_date), 1 in 20,000
                assessments has a void slip that was paid (payment_on_void_slip) and 1 in
                20,000 was paid 100 yen more than billed (amount_mismatch);
  agency        one agency_reports row per agency payment (adapter agency-fixed120, 速報 and
                確報 both pointing at one agency_imports row, remittance_on set: stores on
                `planned_remittance(day)`, apps two business days later) and one
                agency_deposits row per remittance date, the apps' one 1,000 yen short. Both
                dates fall after the business date, so reconcile_day reads all 確報 data for
                its remittance check but none of them is due yet (nothing raised there).

Measured, each in a fresh Python process (this script with --phase):

  reconcile     `reconcile_day(session, "131075", 2026-07-31, adapters=None,
                agency_fees=AGENCY_FEES)` end to end: gathering the day's payments with their
                slips, assessments and agency reports, the figures, raising the exceptions,
                the agency checks, the run record, its commits;
  rerun         the same call again on the same data (nothing new to raise; the run record
                is updated);
  bare          DuckDB (in-process, all cores) over the same data: the payments of the day,
                their assessments and their agency reports exported from PostgreSQL with
                `COPY (...) TO STDOUT (FORMAT csv)` into temporary files (the export's time
                is printed apart), loaded into DuckDB tables (load time printed apart); timed
                is only the three-way join with the aggregates: count and sum (amount, fee)
                of the applied payments by channel, all payments and agency-reported ones by
                channel, and the applied payments whose amount differs from the billed one.
                Best of three runs.

Printed: seconds and payments/s for each, the ratio reconcile/bare (how many times the bare
join's time the whole reconciliation takes), the exceptions raised, and whether DuckDB's
per-channel figures equal those in reconcile_day's summary. The issue's goal is at most 20 s
and 1 GB for one million payments, growing linearly: `--grow 5000000` runs a second size
in a second fresh database and prints the growth factors of time and memory.

Memory is the measuring process's peak resident set size, VmHWM from /proc/self/status
(Linux), printed whole and as its growth during the call (peak after minus peak just before
it: interpreter, imports and the engine already loaded; for bare the growth includes loading
the CSV files into DuckDB). getrusage's ru_maxrss is read too
and its growth printed alongside, but on Linux it is kept across fork and exec, so a child
starts with its parent's peak and its growth can be understated; VmHWM is the child's own.

With --profile FILE the first reconcile runs under cProfile (its time then inflated), the
stats are saved in FILE and the top entries printed. Figures, never assertions.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from bench_issue import MUNICIPALITY, fresh_database  # bench/ is on sys.path when run
from sqlalchemy import func, select, text

from adapters.agency.simulator import planned_remittance
from domain.calendar import business_day_after
from domain.identifiers import make_slip_number
from gateway import migrate
from gateway.config import load_settings
from gateway.db import Database
from gateway.fees import system_fee
from gateway.models import FundType, Municipality, ReconException
from gateway.services.reference import seed_reference_data

BUSINESS_DATE = date(2026, 7, 31)  # a Friday, a business day; most instalments fall due that day
LATE_DUE = date(2026, 6, 30)  # the due date of the instalments paid late
FISCAL_YEAR = 2026
ADAPTER = "agency-fixed120"
FUNDS = ("01", "02", "11", "12", "13")
UNPAID_SHARE = 0.10  # assessments nobody paid that day, beyond the paid ones
CHUNK = 50_000  # rows per COPY write
STORE_CHAINS = ("010", "020", "030", "080")  # convenience stores; the others are apps
CHAINS = ("010", "020", "030", "080", "820", "780", "800", "830")
CHAIN_NAMES = {"010": "Seven-Eleven", "020": "Lawson", "030": "FamilyMart", "080": "Ministop", "820": "PayPay",
               "780": "au PAY", "800": "d払い", "830": "楽天銀行"}
SHORT_BY = 1_000  # yen missing from the apps' deposit


# -- the synthetic day --------------------------------------------------------------------------------

class Day:
    """Which assessment, slip and payment is what: pure arithmetic on the row number k (0-based)."""

    def __init__(self, payments: int) -> None:
        self.paid = payments - payments // 201  # instalments paid that day; the rest are double payments
        self.doubles = payments - self.paid
        self.unpaid = int(self.paid * UNPAID_SHARE)
        self.assessments = self.paid + self.unpaid
        self.payments = payments

    @staticmethod
    def channel(k: int) -> str:
        r = k % 10
        return "agency" if r < 6 else "card" if r < 9 else "paypay"

    @staticmethod
    def billed(k: int) -> int:
        return 1_000 + (k * 7_919 % 9_000) * 10

    def is_double(self, k: int) -> bool:  # card; the first `doubles` of them get a second payment
        return k % 200 == 6 and k // 200 < self.doubles

    @staticmethod
    def is_late(k: int) -> bool:  # card
        return k % 200 == 7

    @staticmethod
    def is_void(k: int) -> bool:  # card
        return k % 20_000 == 8

    @staticmethod
    def is_mismatch(k: int) -> bool:  # paypay
        return k % 20_000 == 9


def _stamps(day: date) -> list[str]:
    """The UTC timestamp text of every second of the Tokyo day (COPY text format)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=9)
    return [(start + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S+00") for s in range(86_400)]


def _barcode(number: str, due: date, amount: int) -> str:
    """A 44-digit store barcode shaped like the real one (prefix, slip number, reissue, due date, amount)."""
    return f"9191310713107{number}0{due:%y%m%d}0{amount:06d}"[:43] + "0"


def load_day(url: str, day: Day) -> dict[str, int]:
    """COPY the day into the migrated, seeded database; return the anomalies planted, by exception kind."""
    database = Database(url)
    with database.engine.connect() as conn:
        muni_id = conn.execute(select(Municipality.id).where(Municipality.code == MUNICIPALITY)).scalar_one()
        funds = dict(conn.execute(select(FundType.code, FundType.id).where(FundType.municipality_id == muni_id)).all())
    database.dispose()
    fund_ids = [funds[code] for code in FUNDS]
    stamps = _stamps(BUSINESS_DATE)
    now = stamps[-1]
    fee_schedules = load_settings()["FEE_SCHEDULES"]
    remit_store = planned_remittance(BUSINESS_DATE)
    remit_app = business_day_after(remit_store, 2)
    planted = dict(double_payment=0, paid_after_due_date=0, payment_on_void_slip=0, amount_mismatch=0)
    expected: dict[date, int] = {remit_store: 0, remit_app: 0}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=False) as pg:
        pg.execute("SET session_replication_role = replica")  # no FK triggers for this load
        pg.execute("INSERT INTO agency_imports (id, municipality_id, adapter, filename, sha256, source, created_on, "
                   "records, total_amount, new_records, imported_by, imported_at) VALUES (1, %s, %s, 'bench.dat', "
                   "repeat('0', 64), 'bench', %s, 0, 0, 0, 'bench', now())", (muni_id, ADAPTER, BUSINESS_DATE))

        def copy(table: str, columns: str, rows: Any, total: int) -> None:
            began, done = time.perf_counter(), 0
            with pg.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as out:
                batch: list[str] = []
                for line in rows:
                    batch.append(line)
                    if len(batch) >= CHUNK:
                        out.write("".join(batch))
                        done += len(batch)
                        batch.clear()
                out.write("".join(batch))
                done += len(batch)
            print(f"    copied {done:,} {table} in {time.perf_counter() - began:.1f} s (of {total:,})", flush=True)

        def assessments() -> Any:
            for k in range(day.assessments):
                due = LATE_DUE if k < day.paid and day.is_late(k) else BUSINESS_DATE
                fund = k % 5
                yield (f"{k + 1}\t{muni_id}\t{FUNDS[fund]}-{FISCAL_YEAR}-{k:010d}\t{fund_ids[fund]}\t{FISCAL_YEAR}\t1\t"
                       f"{k:064x}\t{day.billed(k)}\t{due}\t1\t{now}\t{now}\n")

        def slips() -> Any:
            for k in range(day.assessments):
                paid = k < day.paid
                due = LATE_DUE if paid and day.is_late(k) else BUSINESS_DATE
                number = make_slip_number(FISCAL_YEAR, k + 1)
                status = "issued" if not paid else "void" if day.is_void(k) else "paid"
                yield (f"{k + 1}\t{muni_id}\t{k + 1}\t{number}\t0\t{day.billed(k)}\t{due}\t"
                       f"{_barcode(number, due, day.billed(k))}\tt{k:042d}\t{status}\t{now}\n")

        def payments() -> Any:
            pid = 0
            for k in range(day.paid):
                for second in (False, True) if day.is_double(k) else (False,):
                    pid += 1
                    channel = "card" if second else day.channel(k)
                    amount = day.billed(k) + (100 if day.is_mismatch(k) else 0)
                    fee = system_fee(amount, fee_schedules.get(channel)) if channel != "agency" else 0
                    at = stamps[(pid - 1) * 86_400 // day.payments]
                    applied, overpaid = ("f", "t") if second else ("t", "f")
                    yield (f"{pid}\t{muni_id}\t{k + 1}\t{k + 1}\t{channel}\tsucceeded\t{amount}\t{fee}\t0\t"
                           f"{applied}\t{overpaid}\t{at}\t{at}\t{at}\n")

        def reports() -> Any:
            pid, rid = 0, 0
            for k in range(day.paid):
                pid += 1
                if day.is_double(k):
                    pid += 1  # the second payment is by card
                if day.channel(k) != "agency":
                    continue
                rid += 1
                at = stamps[(pid - 1) * 86_400 // day.payments]
                chain = CHAINS[k % len(CHAINS)]
                remit = remit_store if chain in STORE_CHAINS else remit_app
                expected[remit] += day.billed(k)
                number = make_slip_number(FISCAL_YEAR, k + 1)
                yield (f"{rid}\t{muni_id}\t{ADAPTER}\t{rid:032x}\t{_barcode(number, BUSINESS_DATE, day.billed(k))}\t"
                       f"{number}\t0\t{day.billed(k)}\t{at}\t{BUSINESS_DATE}\t{k % 9_999_999:07d}\t{chain}\t"
                       f"{CHAIN_NAMES[chain]}\t1\t1\t{remit}\t{pid}\t{now}\n")

        copy("assessments", "id, municipality_id, source_key, fund_type_id, fiscal_year, installment, payer_ref_hmac, "
             "amount, due_date, revision, created_at, updated_at", assessments(), day.assessments)
        copy("slips", "id, municipality_id, assessment_id, number, reissue, amount, due_date, barcode, pay_token, "
             "status, issued_at", slips(), day.assessments)
        copy("payments", "id, municipality_id, slip_id, assessment_id, channel, status, amount, fee_amount, "
             "refunded_amount, applied, overpaid, accepted_at, created_at, updated_at", payments(), day.payments)
        copy("agency_reports", "id, municipality_id, adapter, match_key, barcode, slip_number, reissue, amount, "
             "paid_at, paid_on, store_code, chain_code, channel, preliminary_import_id, final_import_id, "
             "remittance_on, payment_id, created_at", reports(), day.paid * 6 // 10)
        for remit, amount in expected.items():
            short = SHORT_BY if remit == remit_app else 0
            pg.execute("INSERT INTO agency_deposits (municipality_id, adapter, deposited_on, amount, reference, "
                       "entered_by, created_at) VALUES (%s, %s, %s, %s, %s, 'bench', now())",
                       (muni_id, ADAPTER, remit, amount - short, f"bench-{remit}"))
        pg.execute("SET session_replication_role = DEFAULT")
        for name in ("assessments", "slips", "payments", "agency_reports", "agency_imports"):
            pg.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
        pg.commit()
    for k in range(day.paid):  # count what was planted (cheap next to the COPY)
        planted["double_payment"] += day.is_double(k)
        if day.channel(k) != "agency":
            planted["paid_after_due_date"] += day.is_late(k)
            planted["payment_on_void_slip"] += day.is_void(k)
            planted["amount_mismatch"] += day.is_mismatch(k)
    print(f"    remittances: {remit_store} {expected[remit_store]:,} yen, {remit_app} {expected[remit_app]:,} yen "
          f"(deposit {SHORT_BY:,} yen short)", flush=True)
    return planted


def vacuum_analyze(url: str) -> float:
    began = time.perf_counter()
    database = Database(url)
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    database.dispose()
    return time.perf_counter() - began


# -- the export for DuckDB ----------------------------------------------------------------------------

EXPORTS = {
    "payments": "SELECT p.id, p.assessment_id, p.channel, p.amount, p.fee_amount, p.applied, p.overpaid, "
                "p.accepted_at FROM payments p JOIN municipalities m ON m.id = p.municipality_id "
                "WHERE m.code = %(code)s AND p.status IN ('succeeded', 'partially_refunded', 'refunded') "
                "AND p.accepted_at >= %(start)s AND p.accepted_at < %(end)s",
    "assessments": "SELECT a.id, a.amount, a.due_date, a.fund_type_id, a.fiscal_year FROM assessments a "
                   "WHERE a.id IN (SELECT assessment_id FROM day_payments)",
    "agency_reports": "SELECT r.id, r.payment_id, r.amount, r.remittance_on FROM agency_reports r "
                      "WHERE r.payment_id IN (SELECT id FROM day_payments)",
}


def export(url: str, folder: Path) -> tuple[float, dict[str, int]]:
    """Write the day's payments, their assessments and agency reports as CSV files; return seconds and sizes."""
    start = datetime(BUSINESS_DATE.year, BUSINESS_DATE.month, BUSINESS_DATE.day, tzinfo=UTC) - timedelta(hours=9)
    params = {"code": MUNICIPALITY, "start": start, "end": start + timedelta(days=1)}
    began, sizes = time.perf_counter(), {}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg, pg.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE day_payments AS " + EXPORTS["payments"], params)
        cur.execute("ANALYZE day_payments")
        for name in EXPORTS:
            query = "SELECT * FROM day_payments" if name == "payments" else EXPORTS[name]
            path = folder / f"{name}.csv"
            with path.open("wb") as out, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy:
                for data in copy:
                    out.write(data)
            sizes[name] = path.stat().st_size
    return time.perf_counter() - began, sizes


BARE_QUERY = """
SELECT p.channel,
       count(*) FILTER (WHERE p.applied) AS count,
       coalesce(sum(p.amount) FILTER (WHERE p.applied), 0) AS amount,
       coalesce(sum(p.fee_amount) FILTER (WHERE p.applied), 0) AS fee,
       count(*) AS payments,
       count(r.id) AS reported,
       count(*) FILTER (WHERE p.applied AND p.amount <> a.amount) AS mismatched
FROM payments p
LEFT JOIN assessments a ON a.id = p.assessment_id
LEFT JOIN agency_reports r ON r.payment_id = p.id
GROUP BY p.channel
ORDER BY p.channel
"""


# -- the measuring processes ----------------------------------------------------------------------------

def run_phase(phase: str, url: str, folder: Path, profile: str | None = None) -> dict[str, Any]:
    out = folder / f"{phase}.json"
    command = [sys.executable, __file__, "--phase", phase, "--url", url, "--folder", str(folder)]
    command += ["--profile", profile] if profile else []
    subprocess.run(command, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return figures


def child(phase: str, url: str, folder: Path, profile: str | None) -> None:
    """The --phase process: time one call, write seconds, its result and memory as JSON."""
    figures: dict[str, Any] = {}
    if phase == "reconcile":
        from reconciliation.run import reconcile_day

        database = Database(url)
        fees = load_settings()["AGENCY_FEES"]
        figures.update(_memory("before"))
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        began = time.perf_counter()
        with database.session() as session:
            summary = reconcile_day(session, MUNICIPALITY, BUSINESS_DATE, adapters=None, agency_fees=fees)
        figures["seconds"] = time.perf_counter() - began
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        figures.update(_memory("after"))
        database.dispose()
        figures.update(payments=summary.payments, revenue=summary.revenue, fees=summary.fees, runs=summary.runs,
                       raised=dict(summary.raised), open=dict(summary.open_exceptions),
                       by_channel=[{k: r[k] for k in ("channel", "count", "amount", "fee")}
                                   for r in summary.by_channel])
    else:
        import duckdb

        con = duckdb.connect()
        figures.update(_memory("before"))
        began = time.perf_counter()
        for name in EXPORTS:
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{folder / name}.csv', header = true)")
        figures["load_seconds"] = time.perf_counter() - began
        times = []
        for _ in range(3):
            began = time.perf_counter()
            rows = con.execute(BARE_QUERY).fetchall()
            times.append(time.perf_counter() - began)
        figures.update(_memory("after"))
        figures.update(seconds=min(times), times=times, threads=con.execute("SELECT current_setting('threads')")
                       .fetchone()[0], version=duckdb.__version__,  # type: ignore[index]
                       payments=sum(r[4] for r in rows), mismatched=sum(r[6] for r in rows),
                       reported=sum(r[5] for r in rows),
                       by_channel=[dict(channel=r[0], count=r[1], amount=int(r[2]), fee=int(r[3])) for r in rows
                                   if r[1]])
    (folder / f"{phase}.json").write_text(json.dumps(figures, ensure_ascii=False))


def _memory(when: str) -> dict[str, int]:
    """VmHWM (this process's own peak RSS) and ru_maxrss, KiB."""
    hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return {f"hwm_{when}": hwm, f"maxrss_{when}": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


# -- the run ----------------------------------------------------------------------------------------------

def run(payments: int, profile: str | None) -> dict[str, Any]:
    print(f"[postgresql] {payments:,} payments on {BUSINESS_DATE} (Asia/Tokyo), municipality {MUNICIPALITY}",
          flush=True)
    day = Day(payments)
    with fresh_database("postgresql") as url, tempfile.TemporaryDirectory(prefix="kokin_bench_") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        database = Database(url)
        migrate.upgrade(database.engine)
        seed_reference_data(database.session(), load_settings()["MUNICIPALITIES"])
        database.dispose()
        print(f"    migrated and seeded in {time.perf_counter() - began:.1f} s", flush=True)
        planted = load_day(url, day)
        print(f"    VACUUM ANALYZE in {vacuum_analyze(url):.1f} s", flush=True)
        setup = time.perf_counter() - began
        print(f"    setup in all: {setup:.1f} s", flush=True)
        print("    reconcile_day" + (" under cProfile" if profile else ""), flush=True)
        first = run_phase("reconcile", url, folder, profile)
        print(f"      {first['seconds']:.2f} s, raised {first['raised'] or 'nothing'}", flush=True)
        print("    reconcile_day again (rerun)", flush=True)
        rerun = run_phase("reconcile", url, folder)
        print(f"      {rerun['seconds']:.2f} s, raised {rerun['raised'] or 'nothing'}, run {rerun['runs']}", flush=True)
        export_seconds, sizes = export(url, folder)
        print(f"    exported the day for DuckDB in {export_seconds:.1f} s ("
              + ", ".join(f"{name} {size / 2**20:,.0f} MiB" for name, size in sizes.items()) + ")", flush=True)
        bare = run_phase("bare", url, folder)
        database = Database(url)
        with database.engine.connect() as conn:
            stored = conn.scalar(select(func.count()).select_from(ReconException)) or 0
        database.dispose()
    figures = dict(payments=payments, setup=setup, first=first, rerun=rerun, bare=bare, export=export_seconds,
                   planted=planted, stored=stored)
    report(figures)
    if profile:
        print_profile(profile)
    return figures


def report(f: dict[str, Any]) -> None:
    first, rerun, bare = f["first"], f["rerun"], f["bare"]
    n = f["payments"]
    print(f"\nsummary, {n:,} payments (setup {f['setup']:.0f} s, not measured)")
    for label, g in (("reconcile_day", first), ("rerun", rerun), ("bare DuckDB join", bare)):
        peak, grown = g["hwm_after"] / 1024, (g["hwm_after"] - g["hwm_before"]) / 1024
        rss = (g["maxrss_after"] - g["maxrss_before"]) / 1024
        print(f"  {label:<17} {g['seconds']:8.2f} s = {n / g['seconds']:10,.0f} payments/s   peak RSS "
              f"{peak:7,.0f} MiB (+{grown:,.0f} MiB during the call; ru_maxrss +{rss:,.0f} MiB)")
    print(f"  DuckDB {bare['version']}, {bare['threads']} threads: runs "
          + ", ".join(f"{t:.3f}" for t in bare["times"]) + f" s; load {bare['load_seconds']:.1f} s, "
          f"export from PostgreSQL {f['export']:.1f} s (neither timed above)")
    print(f"  ratio reconcile/bare: {first['seconds'] / bare['seconds']:,.0f}   (rerun/bare "
          f"{rerun['seconds'] / bare['seconds']:,.0f})")
    print(f"  goal: at most 20 s and 1 GB for 1,000,000 payments; reconcile_day took {first['seconds']:.1f} s and "
          f"grew by {(first['hwm_after'] - first['hwm_before']) / 1024:,.0f} MiB")
    same = first["by_channel"] == bare["by_channel"]
    print(f"  payments: reconcile_day {first['payments']:,}, DuckDB {bare['payments']:,}; by-channel figures "
          f"{'equal' if same else 'DIFFER'}; DuckDB mismatched amounts {bare['mismatched']:,}, agency-reported "
          f"{bare['reported']:,}")
    for kind, count in sorted(f["planted"].items()):
        print(f"  {kind:<22} planted {count:>7,}  raised {first['raised'].get(kind, 0):>7,}  "
              f"on the rerun {rerun['raised'].get(kind, 0):>5,}")
    others = {k: v for k, v in first["raised"].items() if k not in f["planted"]}
    print(f"  other kinds raised: {others or 'none'}; exceptions stored: {f['stored']:,}", flush=True)


def print_profile(path: str) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(25)


def grow(small: dict[str, Any], large: dict[str, Any]) -> None:
    factor = large["payments"] / small["payments"]
    print(f"\ngrowth {small['payments']:,} -> {large['payments']:,} payments (x{factor:.1f}; linear is x{factor:.1f})")
    for label, key in (("reconcile_day", "first"), ("rerun", "rerun"), ("bare DuckDB join", "bare")):
        a, b = small[key], large[key]
        mem_a, mem_b = a["hwm_after"] - a["hwm_before"], b["hwm_after"] - b["hwm_before"]
        print(f"  {label:<17} time {a['seconds']:7.2f} -> {b['seconds']:7.2f} s (x{b['seconds'] / a['seconds']:.1f})"
              f"   memory +{mem_a / 1024:,.0f} -> +{mem_b / 1024:,.0f} MiB (x{mem_b / max(mem_a, 1):.1f})")
    print(f"  setup {small['setup']:.0f} -> {large['setup']:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1_000_000, help="payments accepted on the day")
    parser.add_argument("--grow", type=int, metavar="N", help="then the same with N payments, and the growth")
    parser.add_argument("--profile", metavar="FILE", help="run the first reconcile under cProfile, stats in FILE")
    for name in ("--phase", "--url", "--folder"):  # the measuring process (run_phase)
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args.phase, args.url, Path(args.folder), args.profile)
        return
    small = run(args.payments, args.profile)
    if args.grow:
        grow(small, run(args.grow, None))


if __name__ == "__main__":
    main()
