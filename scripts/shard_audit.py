"""How far the schema is from distribution by municipality (Citus): what breaks the rule, table by table.

Usage: python scripts/shard_audit.py [--url URL]   (default: a fresh SQLite database, migrated)

The rule (issue 17, docs/scaling.md): every tenant table carries `municipality_id`; every
primary key, unique constraint and foreign key between tenant tables includes it; reference
tables (small, global: replicated to every node) are exempt. Prints each table's findings and
the totals; exits 0 (a report, not a gate: the gate is a test once the schema keeps the rule).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import migrate  # noqa: E402 - after the path is set
from gateway.models.base import DISTRIBUTED_BY, REFERENCE_TABLES, WARD  # noqa: E402

COLUMN = WARD
REFERENCE = REFERENCE_TABLES  # the rule's exemptions (docs/scaling.md), as the models' keys follow them


@dataclass
class Finding:
    table: str
    problems: list[str] = field(default_factory=list)


def audit(engine: Engine) -> list[Finding]:
    """Every tenant table's breaches of the rule, in table order."""
    inspector = inspect(engine)
    findings = []
    tables = sorted(set(inspector.get_table_names()) - REFERENCE)
    for table in tables:
        found = Finding(table)
        column = DISTRIBUTED_BY.get(table, COLUMN)
        columns = {c["name"] for c in inspector.get_columns(table)}
        if column not in columns:
            found.problems.append(f"no {column} column")
        # A table without a primary key (receipt_claims: rows that live inside one transaction)
        # has no key to break: Citus distributes it as it is.
        primary = inspector.get_pk_constraint(table).get("constrained_columns") or []
        if primary and column not in primary:
            found.problems.append(f"primary key ({', '.join(primary)}) without {column}")
        uniques = inspector.get_unique_constraints(table)
        for unique in uniques:
            if column not in unique["column_names"]:
                found.problems.append(f"unique {unique['name']} ({', '.join(unique['column_names'])}) without {column}")
        constraints = {unique["name"] for unique in uniques}  # PostgreSQL lists their indexes too
        for index in inspector.get_indexes(table):
            if index["name"] in constraints:
                continue
            if index.get("unique") and column not in index["column_names"]:
                found.problems.append(f"unique index {index['name']} without {column}")
        for key in inspector.get_foreign_keys(table):
            target = key["referred_table"]
            if target not in REFERENCE and column not in key["constrained_columns"]:
                found.problems.append(f"foreign key ({', '.join(key['constrained_columns'])}) -> {target} "
                                      f"without {column}")
        findings.append(found)
    return findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a migrated database (default: a fresh SQLite file, migrated here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kokin_audit_") as folder:
        engine = create_engine(args.url or f"sqlite:///{Path(folder) / 'audit.sqlite3'}")
        if not args.url:
            migrate.upgrade(engine)
        findings = audit(engine)
        engine.dispose()
    for finding in findings:
        print(f"{finding.table}: {'keeps the rule' if not finding.problems else '; '.join(finding.problems)}")
    breaking = [finding for finding in findings if finding.problems]
    print(f"\n{len(findings)} tenant tables ({len(REFERENCE)} reference tables exempt): "
          f"{len(findings) - len(breaking)} keep the rule, {len(breaking)} break it, "
          f"{sum(len(finding.problems) for finding in breaking)} breaches in all; "
          f"{sum(1 for finding in findings if any(p.startswith('no ' + COLUMN) for p in finding.problems))} "
          f"without {COLUMN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
