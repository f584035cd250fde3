"""Benchmark slip issuing against a bare bulk insert of the same rows.

Usage: python bench/bench_issue.py [--slips 500000] [--backend sqlite|postgresql|both]

For each backend: a fresh migrated and seeded database, a synthetic ward ledger of
`--slips` instalments (set up with Core, not measured), then

  service  issue_slips(session, "131075") end to end, with its own transactions;
  bare     the very rows the service inserted, read back, the slips table emptied,
           and inserted again with Core executemany in batches of the service's
           batch size, one transaction per batch (only the inserts and commits timed).

It prints rows, seconds and slips/s for both and the ratio service/bare (the issue's
goal is at least 0.5). Figures, never assertions: see bench/README.md.
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, func, insert, select, text

from gateway import migrate
from gateway.config import load_settings
from gateway.crypto import payer_ref_hmac
from gateway.db import Database, utcnow
from gateway.models import Assessment, FundType, Municipality
from gateway.sandbox.ward import ward_rows
from gateway.services import slips as slip_service
from gateway.services.reference import seed_reference_data

MUNICIPALITY = "131075"
PAYER_REF_KEY = b"bench-payer-reference-key-of-32-bytes"  # assessments keep the keyed hash
FISCAL_YEAR = 2026
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SETUP_CHUNK = 20_000
INSTALMENTS_PER_PAYER = 6  # ward_rows yields about 6.05 per payer; a margin is cut off


class PrintProgress:
    """Print a line per tenth of the work, with the rate so far."""

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.step, self.next_report, self.began = max(total // 10, 1), max(total // 10, 1), time.perf_counter()
        print(f"    {label}: {total:,}", flush=True)

    def advance(self, count: int) -> None:
        self.done += count
        if self.done >= self.next_report:
            elapsed = time.perf_counter() - self.began
            print(f"    {self.label}: {self.done:,}/{self.total:,} ({self.done / elapsed:,.0f}/s)", flush=True)
            self.next_report += self.step

    def finish(self) -> None:
        pass


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """Yield the URL of a new empty database; drop it afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="kokin_bench_") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        return
    name = f"kokin_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(url: str, instalments: int) -> None:
    """Migrate, seed and load `instalments` assessments of a synthetic ward (not measured).

    No ANALYZE afterwards: issuing often follows an import before autovacuum has run.
    """
    database = Database(url)
    migrate.upgrade(database.engine)
    seed_reference_data(database.session(), load_settings()["MUNICIPALITIES"])
    payers = instalments // INSTALMENTS_PER_PAYER + 1
    rows = itertools.islice(ward_rows(MUNICIPALITY, FISCAL_YEAR, payers), instalments)
    with database.engine.connect() as conn:
        muni_id = conn.execute(select(Municipality.id).where(Municipality.code == MUNICIPALITY)).scalar_one()
        funds = dict(conn.execute(select(FundType.code, FundType.id).where(FundType.municipality_id == muni_id)).all())
        now, loaded = utcnow(), 0
        while chunk := list(itertools.islice(rows, SETUP_CHUNK)):
            conn.execute(insert(Assessment), [_assessment(row, muni_id, funds, now) for row in chunk])
            conn.commit()
            loaded += len(chunk)
    database.dispose()
    print(f"    set up {loaded:,} instalments", flush=True)


def _assessment(row: dict[str, Any], muni_id: int, funds: dict[str, int], now: Any) -> dict[str, Any]:
    return dict(municipality_id=muni_id, source_key=row["assessment_id"], fund_type_id=funds[row["fund_code"]],
                fiscal_year=row["fiscal_year"], installment=row["installment"],
                payer_ref_hmac=payer_ref_hmac(PAYER_REF_KEY, MUNICIPALITY, row["payer_ref"]),
                payer_name_enc=None, amount=row["amount"], due_date=row["due_date"], revision=1,
                created_at=now, updated_at=now)


def measure_service(url: str) -> tuple[int, float]:
    """Time issue_slips end to end; return (slips issued, seconds)."""
    database = Database(url)
    with database.session() as session:
        began = time.perf_counter()
        result = slip_service.issue_slips(session, MUNICIPALITY, progress=PrintProgress())
        seconds = time.perf_counter() - began
    database.dispose()
    return result.issued, seconds


def measure_bare(url: str) -> tuple[int, float]:
    """Re-insert the service's rows with bare Core executemany; return (rows, seconds inserting)."""
    database = Database(url)
    saved = _save_and_empty_slips(database.engine)
    total, rows, seconds = max(_count(database.engine, saved), 1), 0, 0.0
    print(f"    bare insert: {total:,}", flush=True)
    with database.engine.connect() as conn:
        for values in _saved_batches(conn, saved, slip_service.BATCH_SIZE):
            began = time.perf_counter()
            conn.execute(insert(slip_service.SLIPS), values)
            conn.commit()
            seconds += time.perf_counter() - began
            rows += len(values)
            if rows * 10 // total != (rows - len(values)) * 10 // total:  # a line per tenth
                print(f"    bare insert: {rows:,}/{total:,} ({rows / seconds:,.0f}/s)", flush=True)
    database.dispose()
    return rows, seconds


def _saved_batches(conn: Connection, saved: Table, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Yield the saved rows as the service built them (no id), batch by batch, each read ended."""
    columns = [c.name for c in slip_service.SLIPS.columns if c.name != "id"]
    after_id = 0
    while True:
        batch = conn.execute(select(saved.c.id, *(saved.c[name] for name in columns))
                             .where(saved.c.id > after_id).order_by(saved.c.id).limit(batch_size)).all()
        conn.rollback()  # end the read before the clock starts, as the service does
        if not batch:
            return
        after_id = batch[-1].id
        yield [{name: getattr(row, name) for name in columns} for row in batch]


def _save_and_empty_slips(engine: Engine) -> Table:
    """Copy slips aside as slips_saved and empty slips: same table, indexes and keys for the bare run."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE slips_saved AS SELECT * FROM slips"))
        conn.execute(text("CREATE UNIQUE INDEX ix_slips_saved_id ON slips_saved (id)"))  # for reading back in order
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE slips CASCADE"))  # only this bench's empty tables refer to it
        else:
            conn.execute(text("DELETE FROM slips"))
    # The copy keeps the model's column types, so values come back as the service built them.
    return slip_service.SLIPS.to_metadata(MetaData(), name="slips_saved")


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def run(backend: str, instalments: int) -> dict[str, float]:
    print(f"[{backend}] {instalments:,} instalments, batch size {slip_service.BATCH_SIZE:,}", flush=True)
    with fresh_database(backend) as url:
        prepare(url, instalments)
        service_rows, service_seconds = measure_service(url)
        bare_rows, bare_seconds = measure_bare(url)
    figures = dict(service_rows=service_rows, service_seconds=service_seconds,
                   service_rate=service_rows / service_seconds, bare_rows=bare_rows,
                   bare_seconds=bare_seconds, bare_rate=bare_rows / bare_seconds)
    figures["ratio"] = figures["service_rate"] / figures["bare_rate"]
    report(backend, figures)
    return figures


def report(backend: str, f: dict[str, float]) -> None:
    print(f"[{backend}] service: {f['service_rows']:>9,.0f} slips in {f['service_seconds']:7.2f} s "
          f"= {f['service_rate']:9,.0f} slips/s")
    print(f"[{backend}] bare:    {f['bare_rows']:>9,.0f} rows  in {f['bare_seconds']:7.2f} s "
          f"= {f['bare_rate']:9,.0f} rows/s")
    print(f"[{backend}] ratio service/bare: {f['ratio']:.2f} (goal >= 0.5)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slips", type=int, default=500_000, help="instalments to issue slips for")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {backend: run(backend, args.slips) for backend in backends}
    print("\nsummary")
    for backend, f in results.items():
        print(f"  {backend:<10} service {f['service_rate']:9,.0f} slips/s   bare {f['bare_rate']:9,.0f} rows/s"
              f"   ratio {f['ratio']:.2f}")


if __name__ == "__main__":
    main()
