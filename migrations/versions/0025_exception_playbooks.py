"""A ward's own playbook per exception kind (over the defaults of domain/playbooks.toml).

Keyed by (municipality_id, kind), so the table keeps the distribution rule of docs/scaling.md
from its first day.

Revision ID: 0025
Revises: 0024
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exception_playbooks',
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('meaning', sa.String(length=2000), nullable=False),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.Column('resolutions', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'],
                            name=op.f('fk_exception_playbooks_municipality_id_municipalities')),
    sa.PrimaryKeyConstraint('municipality_id', 'kind', name=op.f('pk_exception_playbooks'))
    )


def downgrade() -> None:
    op.drop_table('exception_playbooks')
