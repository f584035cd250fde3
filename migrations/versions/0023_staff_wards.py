"""A service administrator may hold several wards; a staff session names the ward in effect.

- staff_wards: the wards granted to a staff user besides their home ward. Each grant carries
  the user's role and references (staff_users.id, staff_users.role), which a new unique index
  on staff_users makes referable, and checks that role is administrator: no other role can
  hold a second ward, and an administrator holding one cannot change role.
- staff_sessions.municipality_id: the ward chosen in that session (null: the home ward).

Revision ID: 0023
Revises: 0022
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('uq_staff_users_id_role', 'staff_users', ['id', 'role'], unique=True)
    op.create_table('staff_wards',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('municipality_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('granted_by', sa.String(length=100), nullable=False),
    sa.Column('granted_at', gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role = 'administrator'", name=op.f('ck_staff_wards_administrator_only')),
    sa.ForeignKeyConstraint(['municipality_id'], ['municipalities.id'],
                            name=op.f('fk_staff_wards_municipality_id_municipalities')),
    sa.ForeignKeyConstraint(['user_id', 'role'], ['staff_users.id', 'staff_users.role'],
                            name='fk_staff_wards_user_id_role_staff_users'),
    sa.PrimaryKeyConstraint('user_id', 'municipality_id', name=op.f('pk_staff_wards'))
    )
    with op.batch_alter_table('staff_sessions') as batch:
        batch.add_column(sa.Column('municipality_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(batch.f('fk_staff_sessions_municipality_id_municipalities'), 'municipalities',
                                 ['municipality_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('staff_sessions') as batch:
        batch.drop_constraint(batch.f('fk_staff_sessions_municipality_id_municipalities'), type_='foreignkey')
        batch.drop_column('municipality_id')
    op.drop_table('staff_wards')
    op.drop_index('uq_staff_users_id_role', table_name='staff_users')
