"""Ready to shard, step 3: the keys between tenant tables go through the ward.

Distributed by municipality (docs/scaling.md), Citus enforces a key only when it contains the
distribution column, and joins a row to its parent on one node only when both are keyed by it.
So, for the tenant tables whose rows live with their ward:

- PostgreSQL: every primary key `(id)` becomes `(id, municipality_id)`. `id` stays first, so a
  lookup by id alone still uses the key's index; the receipts queue's key becomes
  `(record_id, municipality_id)`. SQLite keeps `id INTEGER PRIMARY KEY`, the only key it numbers
  itself, and gives each parent table a unique index `uq_<table>_ward_id (municipality_id, id)`
  for the foreign keys to refer to.
- Both: every foreign key between tenant tables becomes `(municipality_id, x_id)` to the parent's
  `(municipality_id, id)`, under its old name. A payment can then only point at a slip, an
  instalment or a sale of its own ward, whoever writes it.
- Both: every unique key of these tables gains `municipality_id`, last, so that its index still
  serves the lookups it served: per ward already (an instalment's revisions, an item's fees, a
  sale's payment, a payment applied per instalment, a record's reversal, a live slip per
  instalment, a sale's receipt number, a terminal's device) or random tokens looked up alone (a
  slip's pay token, an attempt's provider reference and our own: 128 bits and more).

Left for later (docs/scaling.md): a notification's event id and a ledger file's digest (their
tables have no ward yet) and the audit chains. The staff accounts, their sessions and grants and
the API keys are the service's own, looked up before any ward is known: reference tables.

Revision ID: 0026
Revises: 0025
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

WARD = 'municipality_id'

# (table, column, parent): a foreign key to a parent's id, named fk_<table>_<column>_<parent>.
FOREIGN_KEYS = (
    ('agency_reports', 'payment_id', 'payments'),
    ('assessment_revisions', 'assessment_id', 'assessments'),
    ('assessments', 'fund_type_id', 'fund_types'),
    ('fee_items', 'fund_type_id', 'fund_types'),
    ('fee_prices', 'item_id', 'fee_items'),
    ('payment_attempts', 'payment_id', 'payments'),
    ('payments', 'slip_id', 'slips'),
    ('payments', 'assessment_id', 'assessments'),
    ('payments', 'sale_id', 'sales'),
    ('receipt_records', 'agency_report_id', 'agency_reports'),
    ('receipt_records', 'assessment_id', 'assessments'),
    ('receipt_records', 'fund_type_id', 'fund_types'),
    ('receipt_records', 'payment_id', 'payments'),
    ('receipt_records', 'reverses_id', 'receipt_records'),
    ('recon_exception_comments', 'exception_id', 'recon_exceptions'),
    ('recon_exceptions', 'agency_report_id', 'agency_reports'),
    ('recon_exceptions', 'payment_id', 'payments'),
    ('refunds', 'payment_id', 'payments'),
    ('sale_lines', 'fund_type_id', 'fund_types'),
    ('sale_lines', 'item_id', 'fee_items'),
    ('sale_lines', 'sale_id', 'sales'),
    ('sales', 'counter_id', 'counters'),
    ('sales', 'terminal_id', 'terminals'),
    ('slips', 'issue_run_id', 'issue_runs'),
    ('slips', 'assessment_id', 'assessments'),
    ('terminals', 'counter_id', 'counters'),
)
PARENTS = tuple(sorted({parent for _, _, parent in FOREIGN_KEYS}))

# PostgreSQL: tables keyed by `id` alone until now (their key becomes (id, municipality_id)).
REKEYED = (
    'agency_deposits', 'agency_imports', 'agency_reports', 'assessment_revisions', 'assessments', 'counters',
    'fee_items', 'fee_prices', 'fund_types', 'idempotency_keys', 'issue_runs', 'outbound_files',
    'payment_attempts', 'payments', 'provider_settlements', 'receipt_records', 'recon_exception_comments',
    'recon_exceptions', 'recon_runs', 'refunds', 'sale_lines', 'sales', 'slips', 'terminals',
)

# (table, the unique key's columns): after, `municipality_id` last, so that the key's index still
# serves the lookups it served (by sale, by reversed record, by a token: a random token of 128
# bits and more, a pay link's or an attempt's reference, is unique in practice across wards).
UNIQUES = (
    ('assessment_revisions', ('assessment_id', 'revision')),
    ('fee_prices', ('item_id', 'valid_from')),
    ('payments', ('sale_id',)),
    ('sales', ('receipt_number',)),
    ('terminals', ('adapter', 'device_id')),
    ('payment_attempts', ('adapter', 'provider_ref')),
    ('payment_attempts', ('reference',)),
    ('slips', ('pay_token',)),
)
# (table, index name, its columns, its WHERE): partial unique indexes, `municipality_id` last after.
PARTIAL = (
    ('payments', 'uq_payments_applied_assessment', ('assessment_id',), 'applied'),
    ('receipt_records', 'uq_receipt_records_reverses', ('reverses_id',), 'reverses_id IS NOT NULL'),
    ('slips', 'uq_slips_live_assessment', ('assessment_id',), "status <> 'void'"),
)


def _unique_name(table: str, columns: tuple[str, ...]) -> str:
    return f"uq_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    _drop_partial()
    if _postgresql():
        for table, column, parent in FOREIGN_KEYS:
            op.drop_constraint(f'fk_{table}_{column}_{parent}', table, type_='foreignkey')
        for table in REKEYED:
            _primary_key(table, ('id', WARD))
        _primary_key('receipt_records_unsent', ('record_id', WARD))
        for table, column, parent in FOREIGN_KEYS:
            op.create_foreign_key(f'fk_{table}_{column}_{parent}', table, parent, [WARD, column], [WARD, 'id'])
        for table, columns in UNIQUES:
            op.drop_constraint(_unique_name(table, columns), table, type_='unique')
            op.create_unique_constraint(_unique_name(table, (*columns, WARD)), table, [*columns, WARD])
    else:
        for parent in PARENTS:
            op.create_index(f'uq_{parent}_ward_id', parent, [WARD, 'id'], unique=True)
        _sqlite_keys(through_ward=True)
    _create_partial(with_ward=True)


def downgrade() -> None:
    _drop_partial()
    if _postgresql():
        for table, columns in UNIQUES:
            op.drop_constraint(_unique_name(table, (*columns, WARD)), table, type_='unique')
            op.create_unique_constraint(_unique_name(table, columns), table, list(columns))
        for table, column, parent in FOREIGN_KEYS:
            op.drop_constraint(f'fk_{table}_{column}_{parent}', table, type_='foreignkey')
        for table in REKEYED:
            _primary_key(table, ('id',))
        _primary_key('receipt_records_unsent', ('record_id',))
        for table, column, parent in FOREIGN_KEYS:
            op.create_foreign_key(f'fk_{table}_{column}_{parent}', table, parent, [column], ['id'])
    else:
        _sqlite_keys(through_ward=False)
        for parent in PARENTS:
            op.drop_index(f'uq_{parent}_ward_id', parent)
    _create_partial(with_ward=False)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def _primary_key(table: str, columns: tuple[str, ...]) -> None:
    op.drop_constraint(f'pk_{table}', table, type_='primary')
    op.create_primary_key(f'pk_{table}', table, list(columns))


def _drop_partial() -> None:
    for table, name, _columns, _where in PARTIAL:
        op.drop_index(name, table_name=table)


def _create_partial(*, with_ward: bool) -> None:
    for table, name, columns, where in PARTIAL:
        op.create_index(name, table, [*columns, WARD] if with_ward else list(columns), unique=True,
                        sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def _sqlite_keys(*, through_ward: bool) -> None:
    """SQLite alters a table's keys by building it again (Alembic's batch mode), table by table.

    Building receipt_records again drops its trigger (the receipts queue): it is made again after.
    """
    tables = sorted({table for table, _, _ in FOREIGN_KEYS} | {table for table, _ in UNIQUES})
    for table in tables:
        with op.batch_alter_table(table, recreate='always') as batch:
            for owner, columns in UNIQUES:
                if owner == table:
                    old, new = (columns, (*columns, WARD)) if through_ward else ((*columns, WARD), columns)
                    batch.drop_constraint(_unique_name(table, old), type_='unique')
                    batch.create_unique_constraint(_unique_name(table, new), list(new))
            for owner, column, parent in FOREIGN_KEYS:
                if owner == table:
                    name = f'fk_{table}_{column}_{parent}'
                    batch.drop_constraint(name, type_='foreignkey')
                    local, remote = ([WARD, column], [WARD, 'id']) if through_ward else ([column], ['id'])
                    batch.create_foreign_key(name, parent, local, remote)
    op.execute("DROP TRIGGER IF EXISTS receipt_records_queued")
    op.execute("""
        CREATE TRIGGER receipt_records_queued AFTER INSERT ON receipt_records FOR EACH ROW
        BEGIN
            INSERT INTO receipt_records_unsent (record_id, municipality_id) VALUES (NEW.id, NEW.municipality_id);
        END""")
