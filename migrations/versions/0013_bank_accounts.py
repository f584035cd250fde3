"""Bank accounts: each fund's account, and the account a deposit arrived on.

Agencies remit per bank account (a ward keeps taxes and each insurance apart), and bank
statement files (全銀協 入出金取引明細) say which account each deposit is on. A deposit read
from a statement whose remitter is no configured agency is recorded with no adapter (and
raised), so `adapter` may be empty; a statement's deposits are unique per account and
reference.

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fund_types', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bank_account', sa.String(length=24), nullable=True))
    with op.batch_alter_table('agency_deposits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account', sa.String(length=24), nullable=True))
        batch_op.alter_column('adapter', existing_type=sa.String(length=40), nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_agency_deposits_municipality_id_account_reference'),
                                          ['municipality_id', 'account', 'reference'])


def downgrade() -> None:
    # Deposits of unknown remitters have no agency to give back to the old schema: they go.
    op.execute('DELETE FROM agency_deposits WHERE adapter IS NULL')
    with op.batch_alter_table('agency_deposits', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_agency_deposits_municipality_id_account_reference'), type_='unique')
        batch_op.alter_column('adapter', existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_column('account')
    with op.batch_alter_table('fund_types', schema=None) as batch_op:
        batch_op.drop_column('bank_account')
