"""The `kokin` command: the operators' commands, each run inside an app from gateway.create_app.

A plain click group rather than Flask's FlaskGroup: FlaskGroup adds options that mean nothing
here (`--app`, `--env-file` that needs python-dotenv, `--debug`), merges in commands of the
app's own (flask-smorest's `openapi`), and marks the process so that `app.run` does nothing.
"""
from __future__ import annotations

import os
import sys

import click
from flask.cli import ScriptInfo

from gateway import create_app
from gateway.cli import admin, agency, audit, counter, demo, keys, ledger, payments, recon, scheduler, slips, users

# `kokin --help` lists the commands in these sections and in this order, the first ones first.
SECTIONS: tuple[tuple[str, tuple[click.Command, ...]], ...] = (
    ("Start here", (demo.demo, admin.serve, admin.db_group)),
    ("The ward's money", (ledger.ledger, slips.slips, payments.payments, agency.agency, recon.recon,
                          counter.counter, scheduler.scheduler)),
    ("Accounts", (users.users, admin.apikeys_group)),
    ("Security", (keys.keys, audit.audit)),
)


class KokinGroup(click.Group):
    """The top-level group: commands in sections, each group's subcommands named beside it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        ordered = [command.name for _, commands in SECTIONS for command in commands if command.name]
        return ordered + sorted(set(self.commands) - set(ordered))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed: set[str] = set()
        for title, commands in SECTIONS:
            with formatter.section(title):
                formatter.write_dl([_row(command) for command in commands])
            listed.update(command.name or "" for command in commands)
        others = [self.commands[name] for name in self.list_commands(ctx) if name not in listed]
        if others:
            with formatter.section("Other commands"):
                formatter.write_dl([_row(command) for command in others])


def _row(command: click.Command) -> tuple[str, str]:
    text = command.get_short_help_str(limit=200)
    if isinstance(command, click.Group):
        text = f"{text} [{', '.join(sorted(command.commands))}]"
    return command.name or "", text


@click.group(cls=KokinGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """kokin-gateway: payment slips, payments and reconciliation of public funds.

    New here? `kokin demo` builds a sandbox ward and serves it on http://127.0.0.1:5000;
    `kokin COMMAND --help` tells more about each command.
    """


for _, _commands in SECTIONS:
    for _command in _commands:
        cli.add_command(_command)


def main() -> None:
    """Run `kokin`; a reader that stops early (`kokin ... | head`) ends it quietly."""
    try:
        try:
            cli.main(prog_name="kokin", obj=ScriptInfo(create_app=create_app, set_debug_flag=False))
        finally:
            sys.stdout.flush()  # here, where a broken pipe can still be caught, not at exit
    except BrokenPipeError:
        # The reader has gone: what is left in stdout's buffer cannot be written, and Python
        # would report that again when it flushes stdout at exit. Point stdout at devnull
        # (the way the Python documentation gives for SIGPIPE) and exit 1 as click does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
