"""Operations: schema, server, API keys."""
from __future__ import annotations

import click
from flask import current_app

from gateway import migrate
from gateway.cli.base import cipher, database, municipality_option, operation, resolve_municipality, serve_app, session
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


@apikeys_group.command("create")
@click.argument("name")
@municipality_option
@operation
def apikeys_create(name: str, municipality_code: str | None) -> None:
    """Create an API key acting for one municipality; it is printed once, never stored."""
    code = resolve_municipality(municipality_code)
    key = create_api_key(session(), name, code, actor="cli")
    click.echo(f"API key for {name} ({code}); store it now, it is not shown again:")
    click.echo(key)


COMMANDS = (db_group, serve, apikeys_group)
