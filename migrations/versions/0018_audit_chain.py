"""The audit record as hash chains: each event carries its chain, place, predecessor's hash and hash.

One chain per municipality (0: events of none), in domain.audit's form; `audit_chain_heads`
holds each chain's newest place and hash, and its row is the chain's lock. The events
recorded so far are chained here in id order (the append-only triggers are lifted for that
and put back), then the columns are made NOT NULL and (chain, chain_seq) unique.

Revision ID: 0018
Revises: 0017
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from domain.audit import GENESIS, canonical_body, chain_hash, chain_of

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

BATCH = 5_000


def upgrade() -> None:
    op.create_table('audit_chain_heads',
    sa.Column('chain', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('chain', name=op.f('pk_audit_chain_heads'))
    )
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('chain', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('chain_seq', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    postgresql = op.get_bind().dialect.name == 'postgresql'
    if postgresql:
        op.execute('ALTER TABLE events DISABLE TRIGGER events_append_only')
    else:
        op.execute('DROP TRIGGER IF EXISTS events_no_update')
    _chain_recorded_events()
    if postgresql:
        op.execute('ALTER TABLE events ENABLE TRIGGER events_append_only')
    with op.batch_alter_table('events') as batch:
        for column, kind in (('chain', sa.Integer()), ('chain_seq', sa.BigInteger()),
                             ('prev_hash', sa.String(length=64)), ('hash', sa.String(length=64))):
            batch.alter_column(column, existing_type=kind, nullable=False)
        batch.create_unique_constraint('uq_events_chain_seq', ['chain', 'chain_seq'])
    if not postgresql:
        _sqlite_append_only()  # a rebuilt SQLite table has lost its triggers


def _chain_recorded_events() -> None:
    bind = op.get_bind()
    events = sa.table('events', sa.column('id', sa.Integer), sa.column('municipality_id', sa.Integer),
                      sa.column('kind', sa.String), sa.column('subject_type', sa.String),
                      sa.column('subject_id', sa.String), sa.column('data', sa.JSON),
                      sa.column('actor', sa.String), sa.column('recorded_at', sa.DateTime(timezone=True)),
                      sa.column('chain', sa.Integer), sa.column('chain_seq', sa.BigInteger),
                      sa.column('prev_hash', sa.String), sa.column('hash', sa.String))
    heads: dict[int, tuple[int, str]] = {}
    last = 0
    while True:
        rows = bind.execute(sa.select(events).where(events.c.id > last).order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            break
        changes = []
        for row in rows:
            chain = chain_of(row.municipality_id)
            seq, previous = heads.get(chain, (0, GENESIS))
            recorded_at = row.recorded_at if row.recorded_at.tzinfo else row.recorded_at.replace(tzinfo=_utc())
            body = canonical_body(row.municipality_id, row.kind, row.subject_type, row.subject_id, row.actor,
                                  recorded_at, row.data)
            digest = chain_hash(previous, seq + 1, body)
            heads[chain] = (seq + 1, digest)
            changes.append({'b_id': row.id, 'b_chain': chain, 'b_seq': seq + 1, 'b_prev': previous, 'b_hash': digest})
        bind.execute(events.update().where(events.c.id == sa.bindparam('b_id')).values(
            chain=sa.bindparam('b_chain'), chain_seq=sa.bindparam('b_seq'), prev_hash=sa.bindparam('b_prev'),
            hash=sa.bindparam('b_hash')), changes)
        last = rows[-1].id
    if heads:
        heads_table = sa.table('audit_chain_heads', sa.column('chain', sa.Integer), sa.column('seq', sa.BigInteger),
                               sa.column('hash', sa.String))
        bind.execute(heads_table.insert(), [{'chain': c, 'seq': s, 'hash': h} for c, (s, h) in heads.items()])


def _utc():  # type: ignore[no-untyped-def]
    from datetime import UTC
    return UTC


def _sqlite_append_only() -> None:
    for action in ('UPDATE', 'DELETE'):
        op.execute(f'DROP TRIGGER IF EXISTS events_no_{action.lower()}')
        op.execute(f'CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events'
                   " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    with op.batch_alter_table('events') as batch:
        batch.drop_constraint('uq_events_chain_seq', type_='unique')
        batch.drop_column('hash')
        batch.drop_column('prev_hash')
        batch.drop_column('chain_seq')
        batch.drop_column('chain')
    if not postgresql:
        _sqlite_append_only()
    op.drop_table('audit_chain_heads')
