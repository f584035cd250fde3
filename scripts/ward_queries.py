"""How many of the gateway's statements name their ward: the part of the distribution rule a schema cannot show.

Usage: python scripts/ward_queries.py [--days N] [--payers N] [--url URL] [--show N]

Plays N days of a ward (`kokin demo --days N`: ledger, slips, online and store payments, agency
files, the counter, deposits, the nightly jobs and the receipts feed) with every statement the
gateway sends recorded (`recording`: on PostgreSQL at the driver's cursors, which also see the
statements the hot paths send past SQLAlchemy), on a new database (a fresh SQLite file by
default; --url a new, empty PostgreSQL database). Then, for each distinct statement that touches a tenant table
(docs/scaling.md), it says whether Citus could route it to one ward's node:

- an INSERT is routed when it writes the ward's column;
- any other statement when its WHERE names the ward (`municipality_id = ...`, `IN`, `= ANY`,
  or `chain` for the audit record), or, when the first table read is not a tenant's (a staged
  file), a join's ON gives the ward as a value;
- a join between tenant tables stays on one node only when its ON clause joins the ward too.

A reading of the SQL text, not a planner: it counts, it does not prove. Prints the figures and
the statements not routed, the most executed first. Exits 0 (a measurement, not a gate).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARD = re.compile(r"\b(municipality_id|chain)\b\s*(=\s*(any\b|\(|%\(|\?|:|\$|\d|'|\w+\.\w+\s*\)?\s*$)|in\b)", re.I)
# The ward given as a value (not another table's column): in a join's condition, it routes the join.
WARD_VALUE = re.compile(r"\b(municipality_id|chain)\b\s*(=\s*(\?|%\(\w+\)s|%s|\$\d|:\w|\d|')|in\b)", re.I)
TABLE = re.compile(r"\b(?:from|join|update|into)\s+\"?(\w+)\"?", re.I)
JOIN_ON = re.compile(r"\bjoin\s+\"?(\w+)\"?(?:\s+(?:as\s+)?\w+)?\s+on\s+(.*?)(?=\bjoin\b|\bwhere\b|\bgroup\b|\border\b|"
                     r"\blimit\b|\bunion\b|\)\s*(?:as\b|$)|$)", re.I | re.S)


PARAMETER = r"(?:\?|%\(\w+\)s|\$\d+|:\w+)"
IN_LIST = re.compile(rf"\bIN \({PARAMETER}(?:, {PARAMETER})*\)", re.I)


def normalized(statement: str) -> str:
    """The statement on one line, parameters `?`, a list of them `IN (...)`: one text whatever the values and driver."""
    text = re.sub(r"%\(\w+\)s|%s|\$\d+", "?", " ".join(statement.split()))
    text = re.sub(r"::(?:TIMESTAMP WITH TIME ZONE|[A-Z]+(?:\(\d+\))?(?:\[\])?)", "", text)  # PostgreSQL's casts
    return IN_LIST.sub("IN (...)", text)


def tenant_tables() -> set[str]:
    from gateway.models import Base

    spec = importlib.util.spec_from_file_location("shard_audit", ROOT / "scripts" / "shard_audit.py")
    assert spec and spec.loader
    audit = importlib.util.module_from_spec(spec)
    sys.modules["shard_audit"] = audit  # its dataclass looks its module up there
    spec.loader.exec_module(audit)
    return set(Base.metadata.tables) - set(audit.REFERENCE)


def classify(statement: str, tenants: set[str]) -> tuple[str, list[str]] | None:
    """('routed' | 'not routed', the tenant tables joined without the ward) or None: no tenant table."""
    text = " ".join(statement.split())
    tables = {name.lower() for name in TABLE.findall(text)} & tenants
    if not tables:
        return None
    unaligned = [name for name, condition in JOIN_ON.findall(text)
                 if name.lower() in tenants and not re.search(r"\b(municipality_id|chain)\b", condition, re.I)]
    lowered = text.lower()
    if lowered.startswith("insert") or re.match(r"with \"?\w+\"? as \(insert into", lowered):
        columns = re.search(r"insert into \"?\w+\"?\s*\(([^)]*)\)", lowered)
        routed = columns is not None and re.search(r"\b(municipality_id|chain)\b", columns.group(1)) is not None
    else:
        where = lowered.split(" where ", 1)[1] if " where " in lowered else ""
        driving = TABLE.search(text)  # the first table read; a join's ward value routes only what it restricts
        routed = WARD.search(where) is not None or (
            driving is not None and driving.group(1).lower() not in tenants
            and any(WARD_VALUE.search(condition) for _, condition in JOIN_ON.findall(text)))
    return ("routed" if routed else "not routed"), unaligned


@contextmanager
def recording(engine: Engine) -> Iterator[Counter[str]]:
    """Count every statement sent to the database while the block runs, by its text.

    SQLite: SQLAlchemy's event before each cursor's execute, on every engine. PostgreSQL: the driver's own
    cursors (psycopg), which every statement passes, whether SQLAlchemy sends it or the hot
    paths do (`gateway.db.Statements`, binary cursors, pipelines, COPY).
    """
    executed: Counter[str] = Counter()
    if engine.dialect.name != "postgresql":
        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            executed[statement] += 1

        event.listen(Engine, "before_cursor_execute", record)  # every engine: the replica's, the scheduler's
        try:
            yield executed
        finally:
            event.remove(Engine, "before_cursor_execute", record)
        return
    import psycopg
    from psycopg import sql

    def text_of(cursor: Any, query: Any) -> str:
        if isinstance(query, sql.Composable):
            return query.as_string(cursor.connection)
        return query.decode() if isinstance(query, bytes) else str(query)

    def counting(name: str, original: Any) -> Any:
        def method(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            executed[text_of(self, query)] += 1
            return original(self, query, *args, **kwargs)
        method.__name__ = name
        return method

    patched = [(cls, name, getattr(cls, name)) for cls in (psycopg.Cursor, psycopg.ServerCursor)
               for name in ("execute", "executemany", "copy") if name in vars(cls)]
    for cls, name, original in patched:
        setattr(cls, name, counting(name, original))
    try:
        yield executed
    finally:
        for cls, name, original in patched:
            setattr(cls, name, original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--payers", type=int, default=2_000)
    parser.add_argument("--url", help="a new, empty database (default: a fresh SQLite file)")
    parser.add_argument("--show", type=int, default=15, help="how many statements not routed to print")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kokin_queries_") as folder:
        os.environ["KOKIN_DATABASE_URL"] = args.url or f"sqlite:///{Path(folder) / 'month.sqlite3'}"
        from gateway import create_app, migrate
        from gateway.cli.base import cipher, database
        from gateway.cli.demo_month import play_month

        app = create_app({"INSTANCE_PATH": folder})
        with app.app_context():
            migrate.upgrade(database().engine, payer_ref_key=cipher().payer_ref_key)  # not counted: the schema's
            with recording(database().engine) as executed:
                play_month(args.days, args.payers)
    tenants = tenant_tables()
    distinct: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    joins: Counter[str] = Counter()
    not_routed: list[tuple[int, str]] = []
    merged: Counter[str] = Counter()
    for statement, count in executed.items():
        merged[normalized(statement)] += count
    for statement, count in merged.items():
        found = classify(statement, tenants)
        if found is None:
            continue
        verdict, unaligned = found
        distinct[verdict] += 1
        runs[verdict] += count
        joins.update(unaligned)
        if verdict == "not routed":
            not_routed.append((count, " ".join(statement.split())))
    total, total_runs = sum(distinct.values()), sum(runs.values())
    print(f"\n{total:,} distinct statements on tenant tables, run {total_runs:,} times")
    for verdict in ("routed", "not routed"):
        print(f"  {verdict:>10}: {distinct[verdict]:,} statements ({distinct[verdict] / max(total, 1):.0%}), "
              f"{runs[verdict]:,} runs ({runs[verdict] / max(total_runs, 1):.0%})")
    print(f"  joins of tenant tables not on the ward: {sum(joins.values()):,} "
          f"({', '.join(f'{name} {count}' for name, count in joins.most_common(8))})")
    if not_routed:
        print(f"\nnot routed, the most run first ({min(args.show, len(not_routed))} of {len(not_routed)}):")
    for count, text in sorted(not_routed, reverse=True)[:args.show]:
        print(f"  {count:>7,}  {text[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
