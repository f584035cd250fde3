"""Staff sign-in a ward can defend: server-side sessions, lockout, throttling per address, TOTP.

- staff_sessions: one row per signed-in browser (the cookie holds a random token, the row its
  SHA-256); logout, the idle timeout, the absolute lifetime and a password reset revoke it.
- sign_in_failures: failed sign-ins by address, for throttling.
- staff_users: failures in a row and the lock they set; the TOTP secret (encrypted), when it
  was enrolled and the last time step a code was used for.

Sessions signed before this revision (Flask-Login's user id in the cookie) are not read any
more: everyone signs in again.

Revision ID: 0020
Revises: 0019
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.add_column(sa.Column('failed_sign_ins', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('locked_at', gateway.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('locked_until', gateway.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('mfa_secret', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('mfa_enrolled_at', gateway.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('mfa_last_step', sa.BigInteger(), nullable=True))
    op.create_table('staff_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('created_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('enrol_secret', sa.LargeBinary(), nullable=True),
    sa.Column('revoked_at', gateway.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'], name=op.f('fk_staff_sessions_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions'))
    )
    op.create_index(op.f('ix_staff_sessions_user_id'), 'staff_sessions', ['user_id'], unique=False)
    op.create_table('sign_in_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.Column('failed_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_failures'))
    )
    op.create_index('ix_sign_in_failures_address_failed_at', 'sign_in_failures', ['address', 'failed_at'],
                    unique=False)
    op.create_index(op.f('ix_sign_in_failures_failed_at'), 'sign_in_failures', ['failed_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sign_in_failures_failed_at'), table_name='sign_in_failures')
    op.drop_index('ix_sign_in_failures_address_failed_at', table_name='sign_in_failures')
    op.drop_table('sign_in_failures')
    op.drop_index(op.f('ix_staff_sessions_user_id'), table_name='staff_sessions')
    op.drop_table('staff_sessions')
    with op.batch_alter_table('staff_users') as batch:
        batch.drop_column('mfa_last_step')
        batch.drop_column('mfa_enrolled_at')
        batch.drop_column('mfa_secret')
        batch.drop_column('locked_until')
        batch.drop_column('locked_at')
        batch.drop_column('failed_sign_ins')
