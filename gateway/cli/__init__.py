"""The `kokin` command: the Flask CLI of gateway.create_app, with the operators' commands."""
from __future__ import annotations

import click
from flask.cli import FlaskGroup

from gateway import create_app
from gateway.cli import admin, agency, counter, demo, ledger, payments, recon, scheduler, slips, users


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def cli() -> None:
    """kokin-gateway: payment slips, payments and reconciliation of public funds."""


for command in (*admin.COMMANDS, agency.agency, counter.counter, demo.demo, ledger.ledger, payments.payments,
                recon.recon, scheduler.scheduler, slips.slips, users.users):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="kokin")
