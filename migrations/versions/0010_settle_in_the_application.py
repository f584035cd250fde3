"""Payments are settled by the application alone: the settlement function of 0008 is dropped.

`kokin_settle_delivery` restated the booking rules of the application in SQL; every channel
now books through `domain.booking.decide`, on both databases. The attempts table keeps its
free space (fillfactor 75, HOT settlement updates): that is not a rule.

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# The function's signature, as 0008 created it.
SIGNATURE = ('kokin_settle_delivery(text, text, text, timestamptz, text, text, jsonb, text, text, text, text, '
             'text, timestamptz, timestamptz, text, text)')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f'DROP FUNCTION IF EXISTS {SIGNATURE}')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    # The function as 0008 made it, read from that migration rather than copied here.
    spec = importlib.util.spec_from_file_location('settle_delivery_0008',
                                                  Path(__file__).with_name('0008_settle_delivery_function.py'))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    op.execute(module.FUNCTION)
