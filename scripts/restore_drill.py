"""The backup and restore drill: a demo database dumped, restored, checked, and compared with its original.

Usage: python scripts/restore_drill.py [--payers 200] [--keep-dir DIR] [--corrupt-restore]
       (`make restore-drill`)

1. A fresh PostgreSQL database (the original) gets the whole demo (`kokin demo --no-serve`).
2. `pg_dump --format=custom` of it; a second fresh database; `pg_restore` into it. The data
   keys are not in the dump: both use the same instance folder, as a restore uses the keys
   kept apart from the backups (README, "Keys"; deploy/RUNBOOK.md).
3. On the restore: `kokin audit verify` (every chain unbroken) and `kokin recon run` again for
   every business date the original reconciled.
4. Compared, byte for byte, original against restore: each day's reconciliation files (the
   original's run again beside it: a rerun writes the same bytes), every receipts file sent
   (`resend`), the next receipts file (both exported with the same date), and every report
   (daily summary of each date, remittances, receipts by fund, cashless usage) as CSV.

Prints a line per comparison and exits 1 when anything differs or any step fails. Both
databases are dropped at the end. Needs PostgreSQL on 127.0.0.1:5432 (trust) and pg_dump,
pg_restore of its version (Debian's postgresql-client).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.fiscal import fiscal_year_of  # noqa: E402 - after the path is set
from gateway import create_app  # noqa: E402
from gateway.models import Municipality, ReconRun  # noqa: E402
from gateway.staff import usage_tables  # noqa: E402
from reconciliation import reports as reports_module  # noqa: E402
from reconciliation import usage as usage_module  # noqa: E402
from reconciliation.receipts import export_next, resend, sent_files  # noqa: E402

ADMIN_URL = os.environ.get("KOKIN_DRILL_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NEXT_FILE_DATE = date(2026, 12, 31)  # the next receipts file of both, dated alike


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    name = f"kokin_drill_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def kokin(env: dict[str, str], url: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *args],  # noqa: S603 - our own command
                          env={**env, "KOKIN_DATABASE_URL": url},
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"kokin {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def step(label: str, began: float) -> None:
    print(f"    {label} ({time.perf_counter() - began:.1f} s)", flush=True)


def evidence(env: dict[str, str], url: str, folder: Path, dates: list[date]) -> None:
    """Everything compared, of the database at `url`, written under `folder`."""
    os.environ.update({key: value for key, value in env.items() if key.startswith("KOKIN_")})
    app = create_app({"DATABASE_URL": url})
    database = app.extensions["kokin.db"]
    session = database.session()
    try:
        for municipality in session.scalars(select(Municipality)).all():
            code = municipality.code
            out = folder / code
            for day in dates:
                kokin(env, url, "recon", "run", "--date", day.isoformat(), "--municipality", code,
                      "--out-dir", str(out / "recon" / str(day)))
            (out / "reports").mkdir(parents=True, exist_ok=True)
            for sent in sent_files(session, municipality.id):
                (out / f"receipts-{sent.sequence:06d}").write_bytes(resend(session, code, sent.sequence).data)
            following = export_next(session, code, "receipts-csv", actor="restore-drill", today=NEXT_FILE_DATE)
            (out / "receipts-next").write_bytes(following.data if following else b"(nothing to send)")
            for name, build in reports_module.REPORTS.items():
                if name == "daily":
                    for day in dates:
                        data = reports_module.to_csv(build(session, code, day))
                        (out / "reports" / f"daily-{day}.csv").write_bytes(data)
                else:
                    (out / "reports" / f"{name}.csv").write_bytes(reports_module.to_csv(build(session, code)))
            for year in sorted({fiscal_year_of(day) for day in dates}):  # the council's page, a year at a time
                parts = usage_tables.sections(usage_module.usage(session, code, year))
                (out / "reports" / f"usage-{year}.csv").write_bytes(usage_module.to_csv(f"usage {year}", parts))
    finally:
        session.close()
        database.dispose()


def compare(original: Path, restored: Path) -> int:
    """Print each file's comparison; the count of differences."""
    names = sorted({path.relative_to(original) for path in original.rglob("*") if path.is_file()}
                   | {path.relative_to(restored) for path in restored.rglob("*") if path.is_file()})
    differences = 0
    for name in names:
        a, b = original / name, restored / name
        same = a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()
        differences += not same
        size = a.stat().st_size if a.is_file() else 0
        print(f"    {'identical' if same else 'DIFFERENT'}  {name}  ({size:,} bytes)", flush=True)
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payers", type=int, default=200, help="payers of the demo ward")
    parser.add_argument("--keep-dir", type=Path, help="keep the dump and the compared files here")
    parser.add_argument("--corrupt-restore", action="store_true",
                        help="the drill's own check: change one payment's amount in the restore; the drill must fail")
    args = parser.parse_args()
    tools = {tool: shutil.which(tool) for tool in ("pg_dump", "pg_restore")}
    for tool, found in tools.items():
        if found is None:
            raise SystemExit(f"{tool} is missing: apt-get install postgresql-client")
    with tempfile.TemporaryDirectory(prefix="kokin_drill_") as scratch:
        work = args.keep_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        config = work / "kokin.toml"
        config.write_text(f'instance_path = "{work / "instance"}"\n', encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if not key.startswith("KOKIN_")}
        env.update(KOKIN_CONFIG=str(config), PYTHONPATH=str(ROOT))
        with fresh_database("original") as original, fresh_database("restore") as restore:
            print(f"[restore drill] demo of {args.payers} payers on PostgreSQL", flush=True)
            began = time.perf_counter()
            kokin(env, original, "db", "upgrade")
            kokin(env, original, "demo", "--payers", str(args.payers), "--no-serve")
            step("the original: migrated and the demo played", began)
            engine = create_engine(original)
            with engine.connect() as connection:
                dates = sorted(set(connection.execute(select(ReconRun.business_date)).scalars()))
            engine.dispose()
            began = time.perf_counter()
            dump = work / "kokin.dump"
            subprocess.run([str(tools["pg_dump"]), "--format=custom", "--file", str(dump), libpq(original)],  # noqa: S603
                           check=True)
            step(f"pg_dump: {dump.stat().st_size:,} bytes", began)
            began = time.perf_counter()
            subprocess.run([str(tools["pg_restore"]), "--exit-on-error", "--dbname", libpq(restore), str(dump)],  # noqa: S603
                           check=True)
            step("pg_restore into a fresh database", began)
            if args.corrupt_restore:
                engine = create_engine(restore)
                with engine.begin() as connection:
                    connection.execute(text("UPDATE payments SET amount = amount + 1 "
                                            "WHERE id = (SELECT min(id) FROM payments WHERE applied)"))
                engine.dispose()
                print("    corrupted the restore on purpose: one payment's amount + 1 yen", flush=True)
            began = time.perf_counter()
            verified = kokin(env, restore, "audit", "verify")
            step(f"kokin audit verify on the restore: {verified.stdout.strip().splitlines()[-1]}", began)
            began = time.perf_counter()
            evidence(env, original, work / "original", dates)
            evidence(env, restore, work / "restored", dates)
            step(f"reconciliation rerun for {len(dates)} date(s) on both, receipts and reports written", began)
            differences = compare(work / "original", work / "restored")
        if differences:
            print(f"[restore drill] FAILED: {differences} file(s) differ between the original and the restore")
            return 1
        print("[restore drill] passed: the restore verifies and gives identical receipts, reconciliation files "
              "and reports")
        return 0


if __name__ == "__main__":
    sys.exit(main())
