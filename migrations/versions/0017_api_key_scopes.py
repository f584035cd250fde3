"""API keys with scopes, an expiry and their last use.

A key made before this revision could do anything its municipality's API offers; it keeps
only the read-only scopes (slips:read payments:read reconciliation:read). A client that books
money needs a new key made with its scopes (`kokin apikeys create NAME --scope ...`).

Revision ID: 0017
Revises: 0016
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

READ_ONLY = "slips:read payments:read reconciliation:read"


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('scopes', sa.String(length=500), nullable=False, server_default=READ_ONLY))
        batch.add_column(sa.Column('expires_at', gateway.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('last_used_at', gateway.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('api_keys') as batch:
        batch.alter_column('scopes', server_default=None)
    op.create_index('ix_api_keys_name', 'api_keys', ['name'])


def downgrade() -> None:
    op.drop_index('ix_api_keys_name', table_name='api_keys')
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('last_used_at')
        batch.drop_column('expires_at')
        batch.drop_column('scopes')
