"""`kokin demo` runs the main job end to end and is safe to run twice."""
from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import func, select

from gateway.cli import cli
from gateway.models import ReconException, Sale, Slip
from gateway.sandbox.agency import ANOMALY_KINDS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_demo_imports_issues_reissues_and_prints_and_a_second_run_changes_nothing(app, session) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    first = runner.invoke(cli, ["demo", "--payers", "150", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "reissued 3 slips" in first.output
    slips = session.scalar(select(func.count()).select_from(Slip))
    # three reissued after the amendments, one more by the agency sandbox (a payment on the void sheet)
    assert slips and session.scalar(select(func.count()).where(Slip.reissue == 1)) == 4
    for kind in ANOMALY_KINDS:
        assert f"exception {kind}: 1" in first.output
    eltax = first.output.split("eltax-csv: ", 1)[1].split("==>", 1)[0]  # the eLTAX step's own lines
    assert "20 booked" in eltax and "remittances recorded" in eltax
    assert [line.strip() for line in eltax.splitlines()[1:]] == [
        f"exception {kind}: 1" for kind in ("amount_mismatch", "double_payment", "unknown_slip")]
    exceptions = session.scalar(select(func.count()).select_from(ReconException))
    assert "by iD -> paid" in first.output and "by 交通系IC -> cancelled" in first.output
    assert "1,200 yen; settlement report 1,200 yen; matched" in first.output
    sales = session.scalar(select(func.count()).select_from(Sale))
    sample = Path(app.instance_path) / "demo" / "sample-slips.pdf"
    assert sample.read_bytes().startswith(b"%PDF")

    second = runner.invoke(cli, ["demo", "--payers", "150", "--no-serve"])
    assert second.exit_code == 0, second.output
    assert "already imported" in second.output and "issued 0 slips" in second.output
    assert session.scalar(select(func.count()).select_from(Slip)) == slips
    assert "agency payments were simulated by an earlier run" in second.output
    assert "eLTAX payments were simulated by an earlier run" in second.output
    assert "counter sales were made by an earlier run" in second.output
    assert session.scalar(select(func.count()).select_from(Sale)) == sales == 3
    assert session.scalar(select(func.count()).select_from(ReconException)) == exceptions >= len(ANOMALY_KINDS)
    assert "open exceptions of the day" in first.output and "receipts file 1:" in first.output
    assert "difference: 0 yen (every yen is in the receipts feed once)" in first.output  # conservation
    assert "receipts feed: nothing new to send" in second.output
    assert "difference: 0 yen (every yen is in the receipts feed once)" in second.output
    assert "not serving: `kokin serve` serves on http://127.0.0.1:5000" in second.output  # output not a terminal


def test_the_demo_writes_the_days_summary_files_and_prints_the_try_this_list_of_the_readme(app) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["demo", "--payers", "60", "--no-serve"])
    assert result.exit_code == 0, result.output
    folder = Path(result.output.split("files in ", 1)[1].split(":", 1)[0])
    assert folder.parent.parent == Path(app.instance_path) / "recon"
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["business_date"] == folder.name and (folder / "summary.csv").exists()

    printed = result.output.split("==> try this\n", 1)[1].split("\nnot serving", 1)[0]
    password = re.search(r"password \(sandbox, shown once\): (\S+)", result.output)
    assert password is not None and f"password: {password.group(1)}" in printed
    printed = printed.replace(password.group(1), "<password>")
    printed = re.sub(r"/pay/[A-Za-z0-9_-]{16,}", "/pay/<pay token>", printed)
    readme = README.read_text(encoding="utf-8").split("```text\n==> try this\n", 1)[1].split("\n```", 1)[0]
    assert printed == readme
