"""The operators' commands: each prints what it did and is safe to run twice."""
from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

from gateway.cli import cli
from gateway.sandbox.ward import ledger_file_bytes, ward_rows


def test_db_upgrade_twice_reports_nothing_to_do_the_second_time(app) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output and "reference data: up to date" in result.output


def test_import_then_issue_with_pdf_renders_one_page_per_new_slip(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = list(ward_rows("131075", 2026, 4, seed=11))
    ledger = tmp_path / "ledger.csv"
    ledger.write_bytes(ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)))
    runner = app.test_cli_runner()
    imported = runner.invoke(cli, ["ledger", "import", str(ledger)])
    assert imported.exit_code == 0, imported.output
    assert f"{len(rows)} new" in imported.output
    again = runner.invoke(cli, ["ledger", "import", str(ledger)])
    assert again.exit_code == 0 and "already imported" in again.output

    pdf = tmp_path / "slips.pdf"
    issued = runner.invoke(cli, ["slips", "issue", "--fiscal-year", "2026", "--pdf", str(pdf)])
    assert issued.exit_code == 0, issued.output
    assert f"issued {len(rows)} slips" in issued.output and f"wrote {len(rows)} pages" in issued.output
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:"))
    assert int(pages) == len(rows)

    nothing = runner.invoke(cli, ["slips", "issue", "--pdf", str(tmp_path / "none.pdf")])
    assert nothing.exit_code == 0 and "issued 0 slips" in nothing.output
    assert not (tmp_path / "none.pdf").exists()


def test_an_api_key_is_printed_once_and_authenticates(app, client) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["apikeys", "create", "agency-x", "--municipality", "131075"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert client.get("/api/v1/funds", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_an_api_key_for_an_unknown_municipality_fails_with_a_one_line_reason(app) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["apikeys", "create", "x", "--municipality", "130001"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == "Error: municipality 130001 is not configured"


def test_an_api_key_is_for_the_only_configured_municipality_when_none_is_named(app, client) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["apikeys", "create", "agency-y"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("API key for agency-y (131075), "
                                    "scopes payments:read reconciliation:read slips:read;")
    key = result.output.strip().splitlines()[-1]
    assert client.get("/api/v1/funds", headers={"Authorization": f"Bearer {key}"}).status_code == 200
