"""Declarative base with a naming convention (Alembic batch mode on SQLite needs names)."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, ForeignKeyConstraint, FromClause, Index, MetaData, Table, and_
from sqlalchemy.orm import DeclarativeBase, declared_attr

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# `info=ENCRYPTED` on a column holding Fernet tokens of personal data (gateway.crypto): `kokin keys
# rotate` re-encrypts every such column, and `kokin keys check` reads each with the newest key.
ENCRYPTED = {"encrypted": True}


# Distribution by municipality (docs/scaling.md): a tenant row points at another tenant row only
# through its own ward. On PostgreSQL every tenant table's primary key is (id, municipality_id)
# (migration 0026): `id` first, so that a lookup by id alone still uses it; every unique key
# likewise ends with municipality_id. SQLite keeps `id INTEGER PRIMARY KEY` (the only key SQLite
# numbers itself) and gives the pair a unique index of its own.
WARD = "municipality_id"

# Global, small, the same on every node (Citus reference tables), or the service's own bookkeeping.
# The staff accounts, their sessions and grants, and the API keys are the service's: a sign-in, a
# session cookie or a bearer key is looked up before any ward is known, and a service
# administrator's account spans wards (docs/scaling.md).
REFERENCE_TABLES = frozenset({"municipalities", "alembic_version", "apscheduler_jobs", "job_runs",
                              "sandbox_state", "sign_in_failures", "staff_users", "staff_wards",
                              "staff_sessions", "api_keys"})

# Tables distributed by a column of another name holding the same value: the audit record and its
# chain heads by `chain`, the municipality's id (0: the service's own chain, domain.audit); the
# provider notifications handled likewise (0: those that name no attempt of ours).
DISTRIBUTED_BY = {"events": "chain", "audit_chain_heads": "chain", "webhook_deliveries": "chain"}


def ward_column(table: str) -> str | None:
    """The column a tenant table is distributed by, or None for a reference table."""
    return None if table in REFERENCE_TABLES else DISTRIBUTED_BY.get(table, WARD)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        """A tenant row's identity is (id, its ward), as its primary key is on PostgreSQL.

        So every load by key (`session.get(Payment, (id, ward))`), every UPDATE and DELETE the
        ORM writes for a changed row, names the ward: one node's work once tables are
        distributed by municipality (docs/scaling.md). Reference tables keep `id` alone.
        """
        table = cast(Table, cls.__table__)
        column = ward_column(table.name)
        key = list(table.primary_key.columns)
        if column is None or column not in table.c or table.c[column] in key:
            return {}
        return {"primary_key": [*key, table.c[column]]}


def ward_key(table: str, column: str, parent: str) -> ForeignKeyConstraint:
    """The foreign key (municipality_id, column) -> parent (municipality_id, id): a row of this ward's only.

    Named as the single-column key it replaced (migration 0026), so that it reads the same.
    """
    return ForeignKeyConstraint([WARD, column], [f"{parent}.{WARD}", f"{parent}.id"],
                                name=f"fk_{table}_{column}_{parent}")


def on_ward(child: Any, column: str, parent: Any) -> ColumnElement[bool]:
    """A join's ON clause along a ward_key: the parent's id and its ward, as the foreign key says.

    `child` and `parent`: tables, aliases of them, mapped classes or their aliases. The ward in
    the join lets the planner match the join to the foreign key (its estimates), and keeps the
    join on one node once tables are distributed by municipality (docs/scaling.md).
    """
    child_c, parent_c = _columns(child), _columns(parent)
    return and_(parent_c["id"] == child_c[column], parent_c[WARD] == child_c[WARD])


def _columns(selectable: Any) -> Any:
    """The columns of a table or alias (`.c`), or the attributes of a mapped class or alias, by name."""
    return selectable.c if isinstance(selectable, FromClause) else _Attributes(selectable)


class _Attributes:
    def __init__(self, entity: Any) -> None:
        self.entity = entity

    def __getitem__(self, name: str) -> Any:
        return getattr(self.entity, name)


def ward_id_index(table: str) -> Index:
    """SQLite's unique (municipality_id, id), the target of ward_key there; PostgreSQL's primary key is it."""
    return Index(f"uq_{table}_ward_id", WARD, "id", unique=True).ddl_if(dialect="sqlite")


def encrypted_columns() -> list[tuple[Table, str]]:
    """Every (table, column name) holding encrypted personal data, in a stable order."""
    return [(t, c.name) for t in Base.metadata.sorted_tables for c in t.columns if c.info.get("encrypted")]


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class, for statements on hot paths that skip the ORM."""
    return cast(Table, model.__table__)
