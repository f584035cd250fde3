"""`kokin keys rotate`, `kokin keys check`: personal data under the newest data key, then old keys retired."""
from __future__ import annotations

import click
from flask import current_app

from gateway.cli.base import ClickProgress, cipher, operation, session
from gateway.services.key_rotation import BATCH, MAX_BATCH, ColumnKeys, check_keys, rotate_keys

BATCH_OPTION = click.option("--batch", default=BATCH, show_default=True, type=click.IntRange(1, MAX_BATCH),
                            help="rows per transaction")


@click.group("keys")
def keys() -> None:
    """Data encryption keys: re-encrypt under the newest, prove the older ones can go."""


@keys.command("rotate")
@BATCH_OPTION
@operation
def rotate(batch: int) -> None:
    """Re-encrypt personal data under the newest key (the first of the data keys).

    Resumable: run it again after a failure; values already under the newest key are left.
    """
    found = rotate_keys(session(), cipher(), batch=batch, progress=ClickProgress())
    for column in found:
        parts = [f"{column.rows:,} values", f"{column.current:,} already under the newest key",
                 f"{column.rotated:,} re-encrypted"]
        if column.changed:
            parts.append(f"{column.changed:,} rewritten by another writer meanwhile (left as written)")
        click.echo(f"{column.column}: {', '.join(parts)}")
    _refuse_unreadable(found)
    click.echo("next: `kokin keys check`; when it passes, remove the older keys from "
               f"{current_app.config['DATA_KEYS_ENV']}")


@keys.command("check")
@BATCH_OPTION
@operation
def check(batch: int) -> None:
    """Prove that the newest key alone reads every encrypted value (exit 1 naming what does not)."""
    found = check_keys(session(), cipher(), batch=batch, progress=ClickProgress())
    for column in found:
        old = f", {column.needs_old_key:,} need an older key" if column.needs_old_key else ""
        click.echo(f"{column.column}: {column.rows:,} values, {column.current:,} under the newest key{old}")
    _refuse_unreadable(found)
    stale = sum(column.needs_old_key for column in found)
    if stale:
        raise click.ClickException(f"{stale:,} values still need an older key: run `kokin keys rotate`")
    older = cipher().key_count - 1
    click.echo("the newest key alone reads every value" + (
        f": the {older} older key(s) can be removed from {current_app.config['DATA_KEYS_ENV']}" if older else ""))


def _refuse_unreadable(found: list[ColumnKeys]) -> None:
    unreadable = [column for column in found if column.unreadable]
    if unreadable:
        first = unreadable[0]
        total = sum(column.unreadable for column in unreadable)
        raise click.ClickException(f"{total:,} values no configured key reads (first: {first.column} row "
                                   f"{first.first_unreadable_id}): the key that wrote them is missing")

