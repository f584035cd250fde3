"""Operations: schema, server, API keys."""
from __future__ import annotations

import click
from flask import current_app

from gateway import migrate
from gateway.cli.base import database, operation, session
from gateway.services.apikeys import create_api_key
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
    migrate.upgrade(engine)
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


@click.command("serve")
@click.option("--port", default=5000, show_default=True)
@operation
def serve(port: int) -> None:
    """Run the development server on 127.0.0.1 (production: gunicorn 'gateway:create_app()')."""
    current_app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False)


@click.group("apikeys")
def apikeys_group() -> None:
    """API keys of machine clients."""


@apikeys_group.command("create")
@click.argument("name")
@click.option("--municipality", "municipality_code", required=True, help="6-digit local government code")
@operation
def apikeys_create(name: str, municipality_code: str) -> None:
    """Create an API key acting for one municipality; it is printed once, never stored."""
    key = create_api_key(session(), name, municipality_code, actor="cli")
    click.echo(f"API key for {name} ({municipality_code}); store it now, it is not shown again:")
    click.echo(key)


COMMANDS = (db_group, serve, apikeys_group)
