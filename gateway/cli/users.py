"""`kokin users create|password|unlock|reset-mfa|grant-ward|revoke-ward NAME`, `kokin users list`: staff accounts."""
from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from typing import Any

import click

from gateway.cli.base import municipality_option, operation, resolve_municipality, session
from gateway.errors import Conflict
from gateway.models import ROLES
from gateway.services.staff_accounts import create_user, reset_mfa, set_password, unlock_user, user_differences
from gateway.services.staff_wards import grant_ward, list_staff, revoke_ward

PASSWORD_ENV = "KOKIN_NEW_USER_PASSWORD"  # noqa: S105 - the name of a variable, not a password


@click.group("users")
def users() -> None:
    """Staff accounts, their passwords and authenticators, an administrator's wards."""


def password_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--password-stdin and --generate: the ways a password comes in other than the prompt."""
    func = click.option("--generate", is_flag=True,
                        help="make a random password and print it once")(func)
    return click.option("--password-stdin", is_flag=True,
                        help="read the password from the first line of standard input")(func)


def _password(password_stdin: bool, generate: bool) -> tuple[str, bool]:
    """The new password and whether to print it: --generate, stdin, KOKIN_NEW_USER_PASSWORD or the prompt."""
    if password_stdin and generate:
        raise click.UsageError("choose one of --password-stdin and --generate")
    if generate:
        return secrets.token_urlsafe(12), True
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.ClickException("no password on standard input")
        return line, False
    return os.environ.get(PASSWORD_ENV) or click.prompt("password", hide_input=True, confirmation_prompt=True), False


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--counter", "counter_code", default=None, help="the counter this person usually works at")
@password_options
@municipality_option
@operation
def users_create(name: str, role: str, counter_code: str | None, password_stdin: bool, generate: bool,
                 municipality_code: str | None) -> None:
    """Create a staff account; safe to run twice (an account that exists as asked is left as it is).

    The password is asked for, or read from KOKIN_NEW_USER_PASSWORD or standard input, or made up.
    """
    code = resolve_municipality(municipality_code)
    if user_differences(session(), name, code, role, counter_code) is None:
        password, show = _password(password_stdin, generate)
        try:
            user = create_user(session(), code, name, role, password, counter_code=counter_code, actor="cli")
        except Conflict:
            pass  # made by someone else meanwhile: compared below
        else:
            click.echo(f"user {user.username} created with role {user.role}")
            if show:
                click.echo(f"password (shown once): {password}")
            return
    differences = user_differences(session(), name, code, role, counter_code) or []
    if differences:
        raise click.ClickException(f"user {name} exists already with {', '.join(differences)}; nothing changed")
    click.echo(f"user {name} exists already with role {role}; nothing changed "
               f"(`kokin users password {name}` sets a new password)")


@users.command("password")
@click.argument("name")
@password_options
@operation
def users_password(name: str, password_stdin: bool, generate: bool) -> None:
    """Set a new password for a staff account (asked for, read from standard input, or made up)."""
    password, show = _password(password_stdin, generate)
    set_password(session(), name, password, actor="cli")
    click.echo(f"user {name}: new password set")
    if show:
        click.echo(f"password (shown once): {password}")


@users.command("unlock")
@click.argument("name")
@operation
def users_unlock(name: str) -> None:
    """Lift the lock that failed sign-ins put on a staff account (safe to run twice)."""
    unlock_user(session(), name, actor="cli")
    click.echo(f"user {name}: unlocked")


@users.command("reset-mfa")
@click.argument("name")
@operation
def users_reset_mfa(name: str) -> None:
    """Forget a staff account's authenticator app; it enrols a new one at its next sign-in."""
    reset_mfa(session(), name, actor="cli")
    click.echo(f"user {name}: authenticator reset; a new one is enrolled at the next sign-in")


@users.command("grant-ward")
@click.argument("name")
@click.option("--ward", "ward_code", required=True, help="6-digit local government code of the ward to grant")
@operation
def users_grant_ward(name: str, ward_code: str) -> None:
    """Let an administrator open the staff screens for another ward too (safe to run twice)."""
    if grant_ward(session(), name, ward_code, actor="cli"):
        click.echo(f"user {name}: ward {ward_code} granted")
    else:
        click.echo(f"user {name} holds ward {ward_code} already; nothing changed")


@users.command("revoke-ward")
@click.argument("name")
@click.option("--ward", "ward_code", required=True, help="6-digit local government code of the ward to take back")
@operation
def users_revoke_ward(name: str, ward_code: str) -> None:
    """Take a granted ward back; the user's screens showing it go back to the home ward (safe to run twice)."""
    if revoke_ward(session(), name, ward_code, actor="cli"):
        click.echo(f"user {name}: ward {ward_code} revoked")
    else:
        click.echo(f"user {name} holds no ward {ward_code} besides the home ward; nothing changed")


@users.command("list")
@operation
def users_list() -> None:
    """The staff accounts: name, role, home ward, the wards held besides, and whether it is active."""
    accounts = list_staff(session())
    if not accounts:
        click.echo("no staff accounts")
    for account in accounts:
        wards = " ".join(account.wards) or "-"
        click.echo(f"{account.username}  {account.role}  home {account.home}  wards [{wards}]"
                   f"{'' if account.active else '  inactive'}")
