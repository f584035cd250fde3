"""`kokin users create NAME --role ROLE`: staff accounts for the staff screens."""
from __future__ import annotations

import os

import click

from gateway.cli.base import municipality_option, operation, resolve_municipality, session
from gateway.models import ROLES
from gateway.services.staff_accounts import create_user

PASSWORD_ENV = "KOKIN_NEW_USER_PASSWORD"  # noqa: S105 - the name of a variable, not a password


@click.group("users")
def users() -> None:
    """Staff accounts."""


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--counter", "counter_code", default=None, help="the counter this person usually works at")
@municipality_option
@operation
def users_create(name: str, role: str, counter_code: str | None, municipality_code: str | None) -> None:
    """Create a staff account; the password is asked for (or read from KOKIN_NEW_USER_PASSWORD)."""
    password = os.environ.get(PASSWORD_ENV) or click.prompt("password", hide_input=True, confirmation_prompt=True)
    user = create_user(session(), resolve_municipality(municipality_code), name, role, password,
                       counter_code=counter_code, actor="cli")
    click.echo(f"user {user.username} created with role {user.role}")
