"""Ready to shard: a core-system file is on record once per ward it carries.

A ledger or status file may carry several wards. Distributed by municipality (docs/scaling.md),
each ward's part of it is recorded on the ward's node: `ledger_imports` gains `municipality_id`,
its unique key becomes `(sha256, municipality_id)` (the digest first: a file is found by its
digest alone), PostgreSQL's primary key `(id, municipality_id)`, and the instalments and
revisions a file changed point at their own ward's row through the ward
(`(municipality_id, closed_import_id)`, `(municipality_id, ledger_import_id)`).

Rows recorded before are split by the wards whose revisions or closures name them: the first
ward keeps the row, each other ward gets a copy, and its revisions and closures point at it. A
copy keeps the file's own figures (records, total): how many of them were each ward's was not
recorded. A file that changed nothing in any ward names none: it is recorded for every ward, so
that importing it again stays a no-op.

Down again, the copies are merged into the first row of each file (its lowest id).

Revision ID: 0028
Revises: 0027
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

WARD = 'municipality_id'
CHILDREN = (('assessments', 'closed_import_id'), ('assessment_revisions', 'ledger_import_id'))
COPIED = ('sha256', 'filename', 'layout', 'records', 'total_amount', 'created', 'amended', 'unchanged', 'imported_at')


def upgrade() -> None:
    with op.batch_alter_table('ledger_imports') as batch:
        batch.add_column(sa.Column(WARD, sa.Integer(), nullable=True))
        batch.drop_constraint('uq_ledger_imports_sha256', type_='unique')  # the copies share their file's digest
    _split_by_ward()
    postgresql = op.get_bind().dialect.name == 'postgresql'
    with op.batch_alter_table('ledger_imports', recreate='always' if not postgresql else 'auto') as batch:
        batch.alter_column(WARD, existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key('fk_ledger_imports_municipality_id_municipalities', 'municipalities', [WARD], ['id'])
        batch.create_unique_constraint('uq_ledger_imports_sha256_municipality_id', ['sha256', WARD])
    if postgresql:
        for table, column in CHILDREN:
            op.drop_constraint(f'fk_{table}_{column}_ledger_imports', table, type_='foreignkey')
        op.drop_constraint('pk_ledger_imports', 'ledger_imports', type_='primary')
        op.create_primary_key('pk_ledger_imports', 'ledger_imports', ['id', WARD])
        for table, column in CHILDREN:
            op.create_foreign_key(f'fk_{table}_{column}_ledger_imports', table, 'ledger_imports', [WARD, column],
                                  [WARD, 'id'])
    else:
        op.create_index('uq_ledger_imports_ward_id', 'ledger_imports', [WARD, 'id'], unique=True)
        for table, column in CHILDREN:
            with op.batch_alter_table(table, recreate='always') as batch:
                batch.drop_constraint(f'fk_{table}_{column}_ledger_imports', type_='foreignkey')
                batch.create_foreign_key(f'fk_{table}_{column}_ledger_imports', 'ledger_imports', [WARD, column],
                                         [WARD, 'id'])


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    if postgresql:
        for table, column in CHILDREN:
            op.drop_constraint(f'fk_{table}_{column}_ledger_imports', table, type_='foreignkey')
        op.drop_constraint('pk_ledger_imports', 'ledger_imports', type_='primary')
        op.create_primary_key('pk_ledger_imports', 'ledger_imports', ['id'])
    else:
        for table, column in CHILDREN:
            with op.batch_alter_table(table, recreate='always') as batch:
                batch.drop_constraint(f'fk_{table}_{column}_ledger_imports', type_='foreignkey')
        op.drop_index('uq_ledger_imports_ward_id', 'ledger_imports')
    _merge_copies()
    with op.batch_alter_table('ledger_imports', recreate='always' if not postgresql else 'auto') as batch:
        batch.drop_constraint('uq_ledger_imports_sha256_municipality_id', type_='unique')
        batch.create_unique_constraint('uq_ledger_imports_sha256', ['sha256'])
        batch.drop_constraint('fk_ledger_imports_municipality_id_municipalities', type_='foreignkey')
        batch.drop_column(WARD)
    for table, column in CHILDREN:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f'fk_{table}_{column}_ledger_imports', 'ledger_imports', [column], ['id'])


def _split_by_ward() -> None:
    connection = op.get_bind()
    wards_of: dict[int, set[int]] = {row.id: set() for row in connection.execute(sa.text(
        'SELECT id FROM ledger_imports'))}
    for table, column in CHILDREN:
        for import_id, ward in connection.execute(sa.text(
                f'SELECT DISTINCT {column}, {WARD} FROM {table} WHERE {column} IS NOT NULL')):  # noqa: S608
            wards_of[import_id].add(ward)
    every_ward = sorted(connection.execute(sa.text('SELECT id FROM municipalities')).scalars())
    columns = ', '.join(COPIED)
    for import_id, wards in sorted(wards_of.items()):
        first, *others = sorted(wards) or every_ward
        connection.execute(sa.text(f'UPDATE ledger_imports SET {WARD} = :ward WHERE id = :id'),
                           {'ward': first, 'id': import_id})
        for ward in others:
            connection.execute(sa.text(f'INSERT INTO ledger_imports ({columns}, {WARD}) '  # noqa: S608
                                       f'SELECT {columns}, :ward FROM ledger_imports WHERE id = :id'),
                               {'ward': ward, 'id': import_id})
            copy = connection.execute(sa.text(f'SELECT max(id) FROM ledger_imports WHERE {WARD} = :ward'),
                                      {'ward': ward}).scalar_one()
            for table, column in CHILDREN:
                connection.execute(sa.text(f'UPDATE {table} SET {column} = :copy '  # noqa: S608
                                           f'WHERE {column} = :id AND {WARD} = :ward'),
                                   {'copy': copy, 'id': import_id, 'ward': ward})


def _merge_copies() -> None:
    connection = op.get_bind()
    for table, column in CHILDREN:
        connection.execute(sa.text(
            f'UPDATE {table} SET {column} = (SELECT min(f.id) FROM ledger_imports f JOIN ledger_imports mine '  # noqa: S608
            f'ON mine.sha256 = f.sha256 WHERE mine.id = {table}.{column}) WHERE {column} IS NOT NULL'))
    connection.execute(sa.text('DELETE FROM ledger_imports WHERE id > (SELECT min(f.id) FROM ledger_imports f '
                               'WHERE f.sha256 = ledger_imports.sha256)'))
