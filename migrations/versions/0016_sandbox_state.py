"""Sandbox providers' state: the simulators' objects, shared by every process on the database.

In sandbox mode the simulated Stripe, PayPay and Square keep their sessions, payments,
refunds and events here (one row per object, JSON text), so that `kokin serve`, `kokin recon
run` and `kokin scheduler run` see the same provider. A row per scope with an empty bucket
and key is the scope's lock (each simulator operation updates it first). Never used outside
sandbox mode.

Revision ID: 0016
Revises: 0015
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sandbox_state',
    sa.Column('scope', sa.String(length=40), nullable=False),
    sa.Column('bucket', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'bucket', 'key', name=op.f('pk_sandbox_state'))
    )


def downgrade() -> None:
    op.drop_table('sandbox_state')
