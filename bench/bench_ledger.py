"""Benchmark importing a ward's ledger file (調定) on PostgreSQL into a ledger that already holds earlier years.

Usage: python bench/bench_ledger.py [--rows 1000000] [--existing 1000000] [--layout kokin-csv]
                                    [--resend-share 0.01] [--no-resend] [--profile DIR]

Setup, not part of the figures (each step's time is printed): a fresh PostgreSQL database
`kokin_bench_<hex>` on 127.0.0.1:5432 (dropped at the end), migrated and seeded; `--existing`
assessments of municipality 131075 for fiscal years 2021-2025 (synthetic ward rows, each
with a Fernet token for a name) loaded with COPY, then VACUUM ANALYZE. The file: `--rows`
instalments of fiscal year 2026 from the same synthetic ward (`ward_rows`), every one new,
in `--layout` (kokin-csv, or kokin-fixed).

Measured, each in a fresh Python process (this script with --phase) on the file written to
a temporary directory, as `kokin ledger import` would run:

  parse    `read_pieces` alone: reading, validating, encrypting the names and making the
           COPY text of every record (one process per core, as the import does), no database;
  import   `import_ledger(...)` end to end, with its phases timed by the progress it reports:
           read+stage (reading, checking, encrypting, COPY into the staging table, overlapped),
           check (duplicates, the keys already known, fund/year conflicts, payer changes),
           apply (inserts, amendments, payer updates) and commit;
  again    the same bytes again: already imported;
  resend   (unless --no-resend) the same rows with `--resend-share` of them amended (amount
           +100 yen), as a new file: every key is known, every stored name is decrypted and
           compared.

Also timed in the parent: encrypting `min(rows, 100,000)` names with DataCipher alone, one
process, scaled to the file, to show what encryption costs.

It prints seconds, rows/s and the ratio parse/import (1.0 would mean importing costs no more
than reading). The goal (issue 12, point 5): at most 60 s and 1 GB for a million rows.
Memory is the measuring process's peak resident set size, VmHWM in /proc/self/status, whole
and over its start (the file's bytes already loaded); the forked readers' are printed too
(their own VmHWM, largest of them). Figures only, never assertions.
"""
from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench_agency import _max_rss, _vacuum_analyze  # bench/ is on sys.path when run
from bench_issue import MUNICIPALITY, PAYER_REF_KEY, fresh_database
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text

from gateway import migrate
from gateway.config import load_settings
from gateway.crypto import DataCipher, payer_ref_hmac
from gateway.db import Database
from gateway.layouts import load_layout
from gateway.models import Assessment, AssessmentRevision, FundType, Municipality
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services import ledger_file
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data

FISCAL_YEAR = 2026
EARLIER_YEARS = range(2021, 2026)
PAYERS_PER_ROW = 1 / 6  # ward_rows yields about 6.05 instalments per payer
COPY_CHUNK = 100_000


# -- setup (not measured) -------------------------------------------------------------------------

def prepare(url: str, existing: int, key: bytes) -> None:
    """Migrate, seed, and COPY `existing` assessments of earlier fiscal years into the ledger."""
    database = Database(url)
    migrate.upgrade(database.engine)
    seed_reference_data(database.session(), load_settings()["MUNICIPALITIES"])
    began = time.perf_counter()
    token = DataCipher([key]).encrypt("佐々木　真由美").decode("ascii")  # one real token's width for every row
    per_year = -(-existing // len(EARLIER_YEARS))
    with database.engine.connect() as conn:
        muni_id = conn.execute(select(Municipality.id).where(Municipality.code == MUNICIPALITY)).scalar_one()
        funds = dict(conn.execute(select(FundType.code, FundType.id).where(FundType.municipality_id == muni_id)).all())
        driver = conn.connection.driver_connection
        assert driver is not None
        left = existing
        for year in EARLIER_YEARS:
            rows = itertools.islice(ward_rows(MUNICIPALITY, year, int(per_year * PAYERS_PER_ROW) + 1000, seed=year),
                                    min(per_year, left))
            with driver.cursor().copy("COPY assessments (municipality_id, source_key, fund_type_id, fiscal_year, "
                                      "installment, payer_ref_hmac, payer_name_enc, amount, due_date, revision, "
                                      "created_at, updated_at) FROM STDIN") as copy:
                for chunk in iter(lambda rows=rows: list(itertools.islice(rows, COPY_CHUNK)), []):
                    copy.write("".join(
                        f"{muni_id}\t{r['assessment_id']}\t{funds[r['fund_code']]}\t{r['fiscal_year']}\t"
                        f"{r['installment']}\t{payer_ref_hmac(PAYER_REF_KEY, MUNICIPALITY, r['payer_ref'])}\t"
                        f"{token}\t{r['amount']}\t{r['due_date']}\t1\t"
                        f"2025-04-01 00:00:00+00\t2025-04-01 00:00:00+00\n" for r in chunk))
                    left -= len(chunk)
            driver.commit()
        count = conn.scalar(select(func.count()).select_from(Assessment))
    database.dispose()
    print(f"    loaded {count:,} assessments of fiscal years {EARLIER_YEARS[0]}-{EARLIER_YEARS[-1]} "
          f"in {time.perf_counter() - began:.1f} s", flush=True)
    _vacuum_analyze(url)


def file_rows(rows: int) -> list[dict[str, Any]]:
    payers = int(rows * PAYERS_PER_ROW * 1.02) + 100
    return list(itertools.islice(ward_rows(MUNICIPALITY, FISCAL_YEAR, payers), rows))


def write_file(folder: Path, name: str, rows: list[dict[str, Any]], layout: str) -> Path:
    began = time.perf_counter()
    path = folder / name
    path.write_bytes(ledger_file_bytes(rows, layout, date(FISCAL_YEAR, 4, 1)))
    print(f"    wrote {path.name}: {len(rows):,} rows, {path.stat().st_size:,} bytes in "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    return path


def encryption_cost(key: bytes, rows: int) -> dict[str, float]:
    """Seconds to encrypt the file's names in one process, measured on up to 100,000 and scaled."""
    cipher, sample = DataCipher([key]), min(rows, 100_000)
    names = [f"佐々木　真由美{i % 97}" for i in range(sample)]
    began = time.perf_counter()
    for name in names:
        cipher.encrypt(name)
    seconds = time.perf_counter() - began
    return {"sample": sample, "seconds": seconds, "scaled": seconds * rows / sample}


# -- one measured call in a fresh process -----------------------------------------------------------

class PhaseClock:
    """Progress that notes when each stage starts and finishes (the import's phases)."""

    def __init__(self) -> None:
        self.marks: list[list[Any]] = []
        self.began = time.perf_counter()

    def start(self, label: str, total: int) -> None:
        self.marks.append([label, time.perf_counter() - self.began, None])

    def advance(self, count: int) -> None:
        pass

    def finish(self) -> None:
        if self.marks and self.marks[-1][2] is None:
            self.marks[-1][2] = time.perf_counter() - self.began


def run_phase(phase: str, path: Path, url: str, layout: str, key: bytes, profile: str | None = None) -> dict[str, Any]:
    out = path.with_suffix(f".{phase}.json")
    command = [sys.executable, __file__, "--phase", phase, "--file", str(path), "--url", url, "--layout", layout,
               "--key", key.decode("ascii"), "--out", str(out)]
    command += ["--profile", profile] if profile else []
    subprocess.run(command, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return figures


def child(phase: str, path: Path, url: str, layout: str, key: bytes, out: Path, profile: str | None) -> None:
    """The --phase process: time one call; write seconds, phases, result and peak RSS as JSON."""
    cipher = DataCipher([key], payer_ref_key=PAYER_REF_KEY)
    data = path.read_bytes()
    figures: dict[str, Any] = {"rss_before_kib": _max_rss()}
    profiler = cProfile.Profile() if profile else None
    clock = PhaseClock()
    if profiler is not None:
        profiler.enable()
    began = time.perf_counter()
    if phase == "parse":
        figures["records"] = parse_only(load_layout(layout), data, cipher, url)
    else:
        database = Database(url)
        with database.session() as session:
            clock.began = began
            result = import_ledger(session, cipher, data, filename=path.name, layout_name=layout, progress=clock)
        database.dispose()
        figures.update(records=result.records, created=result.created, amended=result.amended,
                       unchanged=result.unchanged, payer_updated=result.payer_updated,
                       already_imported=result.already_imported)
    figures["seconds"] = time.perf_counter() - began
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    figures["phases"] = clock.marks
    figures["rss_peak_kib"] = _max_rss()
    figures["children_peak_kib"] = _children_peak()
    out.write_text(json.dumps(figures))


def parse_only(layout: Any, data: bytes, cipher: DataCipher, url: str) -> int:
    database = Database(url)
    with database.session() as session:
        municipalities = {code: id_ for code, id_ in session.execute(select(Municipality.code, Municipality.id))}
        funds = {(m, code): (id_, active) for id_, m, code, active in
                 session.execute(select(FundType.id, FundType.municipality_id, FundType.code, FundType.active))}
    database.dispose()
    records = 0
    for piece in ledger_file.read_pieces(layout, data, ledger_file.References(municipalities, funds), cipher,
                                         name_key=os.urandom(32), copy=True, workers=ledger_file.default_workers()):
        records += piece.records
    return records


def _children_peak() -> int:
    """The largest VmHWM of the forked readers, KiB, from getrusage (they are gone; theirs was their own)."""
    import resource
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


# -- the run ----------------------------------------------------------------------------------------

def run(rows: int, existing: int, layout: str, resend_share: float | None, profile: str | None) -> None:
    print(f"[postgresql] a {rows:,}-row {layout} file into a ledger of {existing:,} earlier assessments; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    key = Fernet.generate_key()
    with fresh_database("postgresql") as url, tempfile.TemporaryDirectory(prefix="kokin_bench_") as folder:
        prepare(url, existing, key)
        content = file_rows(rows)
        path = write_file(Path(folder), f"fy{FISCAL_YEAR}.{layout}", content, layout)
        cost = encryption_cost(key, rows)
        print(f"    encrypting {cost['sample']:,} names in one process: {cost['seconds']:.2f} s "
              f"({cost['scaled']:.1f} s for {rows:,})", flush=True)
        figures = {"parse": run_phase("parse", path, url, layout, key)}
        print(f"    load average {os.getloadavg()[0]:.2f} before the import", flush=True)
        figures["import"] = run_phase("import", path, url, layout, key, profile and f"{profile}/import.pstats")
        check(url, existing, rows)
        figures["again"] = run_phase("import", path, url, layout, key)
        if resend_share is not None:
            step = max(int(1 / resend_share), 1) if resend_share > 0 else len(content) + 1
            amended = [dict(r, amount=int(r["amount"]) + 100) if i % step == 0 else r for i, r in enumerate(content)]
            resend = write_file(Path(folder), f"fy{FISCAL_YEAR}-resend.{layout}", amended, layout)
            _vacuum_analyze(url)
            figures["resend"] = run_phase("import", resend, url, layout, key)
    summarise(figures)


def check(url: str, existing: int, rows: int) -> None:
    database = Database(url)
    with database.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(Assessment))
        revisions = conn.scalar(select(func.count()).select_from(AssessmentRevision))
        year = conn.scalar(select(func.count()).select_from(Assessment).where(Assessment.fiscal_year == FISCAL_YEAR))
        names = conn.scalar(text("SELECT count(*) FROM assessments WHERE fiscal_year = :y AND payer_name_enc IS NULL"),
                            {"y": FISCAL_YEAR})
    database.dispose()
    print(f"      assessments {stored:,} (expected {existing + rows:,}); of fiscal year {FISCAL_YEAR}: {year:,}; "
          f"revisions {revisions:,} (expected {rows:,}); new rows without a name {names:,}", flush=True)


def summarise(figures: dict[str, dict[str, Any]]) -> None:
    print("\nsummary")
    for label, f in figures.items():
        peak, grown = f["rss_peak_kib"] / 1024, (f["rss_peak_kib"] - f["rss_before_kib"]) / 1024
        done = "already imported" if f.get("already_imported") else (
            f"{f.get('created', 0):,} new, {f.get('amended', 0):,} amended, {f.get('unchanged', 0):,} unchanged"
            if label != "parse" else "read only")
        print(f"  {label:<7} {f['records']:>9,} rows in {f['seconds']:7.2f} s = {f['records'] / f['seconds']:9,.0f} "
              f"rows/s   peak RSS {peak:6,.0f} MiB (+{grown:,.0f}), readers {f['children_peak_kib'] / 1024:,.0f} MiB"
              f"   {done}")
        phases = phases_of(f)
        if phases:
            print("          " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases))
    print(f"  ratio parse/import: {figures['parse']['seconds'] / figures['import']['seconds']:.2f}   "
          f"import {figures['import']['seconds']:.1f} s (goal: at most 60 s and 1 GB for 1,000,000 rows)", flush=True)


def phases_of(figures: dict[str, Any]) -> list[tuple[str, float]]:
    """read+stage, check, apply, commit from the progress marks of one import."""
    marks = {label: (start, end) for label, start, end in figures.get("phases", [])}
    if "reading the file" not in marks or "applying" not in marks:
        return []
    read_start, read_end = marks["reading the file"]
    apply_start, apply_end = marks["applying"]
    return [("setup", read_start), ("read+stage", read_end - read_start), ("check", apply_start - read_end),
            ("apply", apply_end - apply_start), ("commit", figures["seconds"] - apply_end)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the file")
    parser.add_argument("--existing", type=int, default=1_000_000, help="assessments of earlier years already held")
    parser.add_argument("--layout", default="kokin-csv", choices=["kokin-csv", "kokin-fixed"])
    parser.add_argument("--resend-share", type=float, default=0.01, help="share of rows amended in the re-sent file")
    parser.add_argument("--no-resend", action="store_true", help="skip the re-sent file")
    parser.add_argument("--profile", metavar="DIR", help="run the import under cProfile (stats saved in DIR)")
    for name in ("--phase", "--file", "--url", "--out", "--key"):  # the measuring process (run_phase)
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args.phase, Path(args.file), args.url, args.layout, args.key.encode("ascii"), Path(args.out),
              args.profile)
    else:
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
        run(args.rows, args.existing, args.layout, None if args.no_resend else args.resend_share, args.profile)


if __name__ == "__main__":
    main()
