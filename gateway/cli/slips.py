"""`kokin slips issue`: a slip for every instalment that has none, optionally as one PDF."""
from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.base import (
    ClickProgress,
    cipher,
    municipality_option,
    operation,
    resolve_municipality,
    session,
)
from gateway.services.printing import render_pdf
from gateway.services.reference import get_municipality
from gateway.services.slips import issue_slips, slips_of_run


@click.group("slips")
def slips() -> None:
    """Payment slips (納付書)."""


@slips.command("issue")
@municipality_option
@click.option("--fund", "fund_code", default=None, help="only this fund code")
@click.option("--fiscal-year", type=int, default=None, help="only this fiscal year (e.g. 2026)")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="render the slips issued now into one PDF")
@operation
def slips_issue(municipality_code: str | None, fund_code: str | None, fiscal_year: int | None,
                pdf_out: Path | None) -> None:
    """Issue slips for instalments that have none (reissues where a slip was voided)."""
    db_session = session()
    progress = ClickProgress()
    result = issue_slips(db_session, resolve_municipality(municipality_code), fund_code=fund_code,
                         fiscal_year=fiscal_year, progress=progress)
    click.echo(f"issued {result.issued:,} slips ({result.reissued:,} reissues, "
               f"{result.without_barcode:,} without barcode: above 300,000 yen)")
    if pdf_out is not None:
        slip_ids = slips_of_run(db_session, result.issue_run_id)
        if not slip_ids:
            click.echo(f"no new slips: {pdf_out} not written")
            return
        with pdf_out.open("wb") as out:
            ward = get_municipality(db_session, resolve_municipality(municipality_code)).id
            pages = render_pdf(db_session, cipher(), ward, slip_ids, out, progress=progress)
        click.echo(f"wrote {pages:,} pages to {pdf_out}")
