"""Ready to shard, step 1: the child tables carry their ward (municipality_id), as every tenant table must.

Distributed by municipality (docs/scaling.md), a row lives on its ward's node, and the node is
known from the row itself. Seven tables knew their ward only through a parent; each gains
`municipality_id`, filled from that parent, NOT NULL, referencing municipalities:

| table | its parent |
|---|---|
| assessment_revisions | assessments (assessment_id) |
| fee_prices | fee_items (item_id) |
| payment_attempts | payments (payment_id) |
| recon_exception_comments | recon_exceptions (exception_id) |
| refunds | payments (payment_id) |
| sale_lines | sales (sale_id) |
| terminals | counters (counter_id) |

The application writes the column from this revision on. Two tables still have none:
ledger_imports (a core-system file may carry several wards) and webhook_deliveries (a provider's
notification names no ward before it is routed); docs/scaling.md says how each is to be split.

Revision ID: 0024
Revises: 0023
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

# table -> (its parent table, the column that names the parent)
PARENTS = {
    'assessment_revisions': ('assessments', 'assessment_id'),
    'fee_prices': ('fee_items', 'item_id'),
    'payment_attempts': ('payments', 'payment_id'),
    'recon_exception_comments': ('recon_exceptions', 'exception_id'),
    'refunds': ('payments', 'payment_id'),
    'sale_lines': ('sales', 'sale_id'),
    'terminals': ('counters', 'counter_id'),
}


def upgrade() -> None:
    for table, (parent, column) in PARENTS.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('municipality_id', sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET municipality_id = (SELECT p.municipality_id FROM {parent} p "  # noqa: S608 - names from PARENTS
                   f"WHERE p.id = {table}.{column})")
        with op.batch_alter_table(table) as batch:
            batch.alter_column('municipality_id', existing_type=sa.Integer(), nullable=False)
            batch.create_foreign_key(batch.f(f'fk_{table}_municipality_id_municipalities'), 'municipalities',
                                     ['municipality_id'], ['id'])


def downgrade() -> None:
    for table in reversed(PARENTS):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(batch.f(f'fk_{table}_municipality_id_municipalities'), type_='foreignkey')
            batch.drop_column('municipality_id')
