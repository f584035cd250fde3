"""scripts/shard_audit.py finds every breach of the distribution rule (docs/scaling.md)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("shard_audit", ROOT / "scripts" / "shard_audit.py")
assert _spec and _spec.loader
shard_audit = importlib.util.module_from_spec(_spec)
sys.modules["shard_audit"] = shard_audit  # its dataclass looks its module up there
_spec.loader.exec_module(shard_audit)


def test_the_audit_names_each_kind_of_breach_and_passes_a_table_that_keeps_the_rule(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'schema.sqlite3'}")
    with engine.begin() as connection:
        for statement in (
            "CREATE TABLE municipalities (id INTEGER PRIMARY KEY)",
            "CREATE TABLE good (municipality_id INTEGER, id INTEGER, token TEXT, PRIMARY KEY (municipality_id, id), "
            "UNIQUE (municipality_id, token))",
            "CREATE TABLE child (id INTEGER PRIMARY KEY, good_id INTEGER REFERENCES good (id))",
            "CREATE TABLE keyed (municipality_id INTEGER REFERENCES municipalities (id), id INTEGER PRIMARY KEY, "
            "token TEXT UNIQUE)",
            "CREATE TABLE heap (municipality_id INTEGER)",
        ):
            connection.execute(text(statement))
    found = {finding.table: finding.problems for finding in shard_audit.audit(engine)}
    engine.dispose()
    assert found["good"] == []
    assert found["child"] == ["no municipality_id column", "primary key (id) without municipality_id",
                              "foreign key (good_id) -> good without municipality_id"]
    assert found["keyed"][0] == "primary key (id) without municipality_id"
    assert any(problem.startswith("unique") and "(token)" in problem for problem in found["keyed"])
    assert not any("-> municipalities" in problem for problem in found["keyed"])  # a reference table may be named
    assert found["heap"] == []  # no key, so no key to break: Citus distributes it as it is
    assert "municipalities" not in found
