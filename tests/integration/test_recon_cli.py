"""`kokin recon run --date`: the day's files written, the same bytes on a rerun, the run counted."""
from __future__ import annotations

import hashlib
import itertools
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.cli import cli
from gateway.models import Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from tests.card import pay_by_card

TODAY = datetime.now(ZoneInfo("Asia/Tokyo")).date()


def test_a_rerun_writes_byte_identical_files_and_counts_the_run(app, session, cipher, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = list(itertools.islice(ward_rows("131075", 2026, 10), 20))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="l.csv")
    issue_slips(session, "131075")
    slip = session.scalar(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id))
    pay_by_card(app, session, slip)
    runner = app.test_cli_runner()

    first = runner.invoke(cli, ["recon", "run", "--date", TODAY.isoformat(), "--out-dir", str(tmp_path / "a")])
    second = runner.invoke(cli, ["recon", "run", "--date", TODAY.isoformat(), "--out-dir", str(tmp_path / "b")])

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "(run 1)" in first.output and "(run 2)" in second.output
    assert "new exceptions: none" in second.output
    for name in ("summary.csv", "summary.json", "receipts.csv", "receipts.csv.sha256"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    receipts = (tmp_path / "a" / "receipts.csv").read_bytes()
    assert (tmp_path / "a" / "receipts.csv.sha256").read_text().startswith(hashlib.sha256(receipts).hexdigest())
    assert f"{slip.amount:,} yen revenue" in first.output


def test_a_bad_date_is_a_one_line_failure(app) -> None:  # type: ignore[no-untyped-def]
    answer = app.test_cli_runner().invoke(cli, ["recon", "run", "--date", "2026-13-01"])
    assert answer.exit_code != 0 and "--date must be a date YYYY-MM-DD" in answer.output
