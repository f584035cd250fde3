"""Operations: schema, server, API keys."""
from __future__ import annotations

from datetime import datetime, timedelta

import click
from flask import current_app

from gateway import migrate
from gateway.cli.base import cipher, database, municipality_option, operation, resolve_municipality, serve_app, session
from gateway.db import utcnow
from gateway.services.apikeys import (
    READ_ONLY,
    SCOPES,
    check_scopes,
    create_api_key,
    list_api_keys,
    revoke_api_keys,
)
from gateway.services.reference import ReferenceDataError, seed_reference_data


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@operation
def db_upgrade() -> None:
    """Apply migrations, then add configured municipalities and funds that are missing."""
    engine = database().engine
    before = migrate.current_revision(engine)
    migrate.upgrade(engine, payer_ref_key=cipher().payer_ref_key)
    after = migrate.current_revision(engine)
    click.echo(f"schema: {before or 'empty'} -> {after}" if before != after else f"schema: at {after}, nothing to do")
    try:
        added = seed_reference_data(session(), current_app.config["MUNICIPALITIES"])
    except ReferenceDataError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in added:
        click.echo(f"added {line}")
    if not added:
        click.echo("reference data: up to date")


@db_group.command("grant-runtime")
@click.argument("role")
@operation
def db_grant_runtime(role: str) -> None:
    """PostgreSQL: give ROLE the runtime rights (only INSERT and SELECT on the audit record); rerun after upgrades."""
    try:
        migrate.grant_runtime(database().engine, role)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"granted the runtime rights to {role}: every table, but only INSERT and SELECT on events")


@click.command("serve")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@operation
def serve(port: int) -> None:
    """Serve the pages and the API on http://127.0.0.1:5000 until Ctrl-C (production: gunicorn)."""
    click.echo(f"serving on http://127.0.0.1:{port}/ (Ctrl-C to stop); production: "
               "gunicorn --worker-class gthread --threads 4 'gateway:create_app()'")
    serve_app(port)


@click.group("apikeys")
def apikeys_group() -> None:
    """API keys of machine clients."""


_SCOPE_HELP = "; ".join(f"{scope}: {what}" for scope, what in SCOPES.items())


@apikeys_group.command("create")
@click.argument("name")
@municipality_option
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE",
              help=f"what the key may do (repeat for several; default read-only: {' '.join(READ_ONLY)}). "
                   f"{_SCOPE_HELP}")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None,
              help="the key stops working after this many days (default: never)")
@operation
def apikeys_create(name: str, municipality_code: str | None, scopes: tuple[str, ...],
                   expires_in_days: int | None) -> None:
    """Create an API key acting for one municipality within its scopes; printed once, never stored."""
    code = resolve_municipality(municipality_code)
    expires_at = None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
    granted = scopes or READ_ONLY
    key = create_api_key(session(), name, code, actor="cli", scopes=granted, expires_at=expires_at)
    click.echo(f"API key for {name} ({code}), scopes {' '.join(check_scopes(granted))}"
               f"{'' if expires_at is None else f', expires {expires_at:%Y-%m-%d %H:%M} UTC'}; "
               "store it now, it is not shown again:")
    click.echo(key)


@apikeys_group.command("revoke")
@click.argument("name")
@operation
def apikeys_revoke(name: str) -> None:
    """Revoke every live key of that name: it stops working at once."""
    count = revoke_api_keys(session(), name, actor="cli")
    click.echo(f"revoked {count} API key{'s' if count != 1 else ''} named {name}")


@apikeys_group.command("list")
@operation
def apikeys_list() -> None:
    """The keys: name, prefix, municipality, scopes, created, expires, last used, revoked."""
    keys = list_api_keys(session())
    if not keys:
        click.echo("no API keys")
    for key in keys:
        state = "revoked " + _when(key.revoked_at) if key.revoked_at else "live"
        click.echo(f"{key.name}  {key.prefix}…  {key.municipality_code}  [{' '.join(key.scopes)}]  "
                   f"created {_when(key.created_at)}  expires {_when(key.expires_at)}  "
                   f"last used {_when(key.last_used_at)}  {state}")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


COMMANDS = (db_group, serve, apikeys_group)
