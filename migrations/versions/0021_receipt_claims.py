"""The receipts export's claimed ids in a table its parallel workers can read.

- receipt_claims: the ids an export took from the queue, written and deleted inside the
  export's transaction. Unlogged on PostgreSQL: nothing in it outlives a transaction. It
  replaces a temporary table, which PostgreSQL's parallel workers cannot read, so that the day's
  join of a million records runs in parallel again.

Revision ID: 0021
Revises: 0020
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table('receipt_claims',
                    sa.Column('municipality_id', sa.Integer(), nullable=False),
                    sa.Column('outbound_file_id', sa.Integer(), nullable=False),
                    sa.Column('record_id', sa.Integer(), nullable=False),
                    prefixes=unlogged)


def downgrade() -> None:
    op.drop_table('receipt_claims')
