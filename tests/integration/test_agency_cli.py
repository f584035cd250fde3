"""`kokin agency ...`: import, pull, deposit, remittances and check, through the real command group."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from adapters.agency.simulator import StorePayment, files_by_day, schedule, write_file
from gateway import create_app
from gateway.cli import cli
from gateway.models import AgencyImport, AgencyReport, Payment, ReconException, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from tests.conftest import MUNICIPALITIES

CODE = "131075"
CLIENT_CODE = "13107"
ADAPTER = "agency-csv"
PULL_URL = "https://agency.example/download"
PAID_AT = datetime(2026, 6, 1, 10, 30)


@pytest.fixture
def pull_app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The gateway with agency-csv set up for pulling (the `app` fixture takes no overrides)."""
    monkeypatch.setenv("KOKIN_DATA_KEYS", Fernet.generate_key().decode())
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
                      "MUNICIPALITIES": MUNICIPALITIES,
                      "AGENCIES": {ADAPTER: {"pull_url": PULL_URL, "company_id": "C001", "password": "pw"}}})
    yield app
    app.extensions["kokin.db"].dispose()


def _issue(app: Any) -> list[Slip]:
    rows = [dict(municipality_code=CODE, assessment_id=f"01-2026-{n:010d}", fund_code="01", fiscal_year=2026,
                 installment=1, payer_ref=f"{n:010d}", payer_name="墨田　太郎", amount=amount,
                 due_date=date(2026, 6, 30)) for n, amount in ((1, 12_300), (2, 4_500))]
    with app.extensions["kokin.db"].session() as session:
        import_ledger(session, app.extensions["kokin.cipher"], ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)),
                      filename="ledger.csv")
        issue_slips(session, CODE)
        slips = list(session.scalars(select(Slip).order_by(Slip.amount)))
        session.expunge_all()
    assert len(slips) == 2
    return slips


def _payments(slips: list[Slip]) -> list[StorePayment]:
    return [StorePayment(s.barcode or "", PAID_AT + timedelta(minutes=i), f"{i + 1:07d}", "010")
            for i, s in enumerate(slips)]


def _counts(app: Any) -> tuple[int, ...]:
    with app.extensions["kokin.db"].session() as session:
        return tuple(int(session.scalar(select(func.count()).select_from(m)) or 0)
                     for m in (AgencyImport, AgencyReport, Payment, ReconException))


def _statuses(app: Any) -> set[str]:
    with app.extensions["kokin.db"].session() as session:
        return set(session.scalars(select(Slip.status)))


def test_an_agency_file_is_imported_once_and_a_bad_file_is_refused_with_every_reason(  # type: ignore[no-untyped-def]
        app, tmp_path: Path) -> None:
    slips = _issue(app)
    agency = app.extensions["kokin.agencies"][ADAPTER]
    data = write_file(agency, schedule(_payments(slips)), created_on=date(2026, 6, 15))
    path = tmp_path / "agency-20260615.csv"
    path.write_bytes(data)
    runner = app.test_cli_runner()

    first = runner.invoke(cli, ["agency", "import", str(path), "--adapter", ADAPTER])
    assert first.exit_code == 0, first.output
    assert "agency-20260615.csv: 4 records, 33,600 yen; 2 payments booked, 2 confirmed (確報)" in first.output
    assert _statuses(app) == {"paid"}
    counts = _counts(app)
    assert counts == (1, 2, 2, 0)
    again = runner.invoke(cli, ["agency", "import", str(path), "--adapter", ADAPTER])
    assert again.exit_code == 0, again.output
    assert "agency-20260615.csv: already imported (4 records); nothing changed" in again.output
    assert _counts(app) == counts

    lines = data.split(b"\r\n")
    fields = lines[1].split(b",")
    fields[7] = b"45x0"  # the amount column of record 2
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\r\n".join([lines[0], b",".join(fields), lines[2].rsplit(b",", 3)[0], *lines[3:]]))
    refused = runner.invoke(cli, ["agency", "import", str(bad), "--adapter", ADAPTER])
    assert refused.exit_code != 0
    assert "  record 2, field amount: must be a whole number, got '45x0'" in refused.output
    assert "  record 3: has 10 columns, expected 13" in refused.output
    assert refused.output.strip().splitlines()[-1] == (
        "Error: agency-csv file rejected with 2 error(s); nothing was applied")
    assert _counts(app) == counts

    unknown = runner.invoke(cli, ["agency", "import", str(path), "--adapter", "agency-nowhere"])
    assert unknown.exit_code != 0 and "'agency-nowhere' is not configured" in unknown.output


def test_pull_posts_the_credentials_and_imports_the_file_and_a_refusal_is_one_clear_line(  # type: ignore[no-untyped-def]
        pull_app, tmp_path: Path) -> None:
    slips = _issue(pull_app)
    agency = pull_app.extensions["kokin.agencies"][ADAPTER]
    files = files_by_day(agency, schedule(_payments(slips)), client_code=CLIENT_CODE)
    data = files[min(files)]  # the 速報 file
    runner = pull_app.test_cli_runner()
    saved = tmp_path / "pulled.csv"
    with responses.RequestsMock(assert_all_requests_are_fired=True) as http:
        http.add(responses.POST, PULL_URL, body=data, status=200, content_type="application/octet-stream")
        pulled = runner.invoke(cli, ["agency", "pull", "--adapter", ADAPTER, "--save", str(saved)])
        assert pulled.exit_code == 0, pulled.output
        assert parse_qs(http.calls[0].request.body) == {"company_id": ["C001"], "password": ["pw"]}
    assert "2 records, 16,800 yen; 2 payments booked" in pulled.output
    assert saved.read_bytes() == data
    assert _statuses(pull_app) == {"paid"}
    assert _counts(pull_app)[:3] == (1, 2, 2)

    with responses.RequestsMock() as http:
        http.add(responses.POST, PULL_URL, body=data, status=200)
        repeat = runner.invoke(cli, ["agency", "pull", "--adapter", ADAPTER])
    assert repeat.exit_code == 0 and "already imported (2 records); nothing changed" in repeat.output

    with responses.RequestsMock() as http:
        http.add(responses.POST, PULL_URL, body="unauthorized", status=401)
        refused = runner.invoke(cli, ["agency", "pull", "--adapter", ADAPTER])
    assert refused.exit_code != 0
    assert refused.output.strip().splitlines()[-1] == (
        "Error: agency-csv: the agency refused the company id or password")
    assert _counts(pull_app)[:3] == (1, 2, 2)


def test_pull_without_credentials_says_what_to_configure(app) -> None:  # type: ignore[no-untyped-def]
    with responses.RequestsMock(assert_all_requests_are_fired=False):  # and never calls out
        result = app.test_cli_runner().invoke(cli, ["agency", "pull", "--adapter", ADAPTER])
    assert result.exit_code != 0
    assert "pulling needs pull_url, company_id and password" in result.output


def test_a_short_deposit_shows_as_a_difference_and_the_check_raises_it_once(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    slips = _issue(app)
    agency = app.extensions["kokin.agencies"][ADAPTER]
    scheduled = schedule(_payments(slips))
    runner = app.test_cli_runner()
    for day, data in files_by_day(agency, scheduled, client_code=CLIENT_CODE).items():
        path = tmp_path / f"{day:%Y%m%d}.csv"
        path.write_bytes(data)
        result = runner.invoke(cli, ["agency", "import", str(path), "--adapter", ADAPTER])
        assert result.exit_code == 0, result.output
    planned = {r.remittance_on for r in scheduled if r.kind == "final"}
    assert len(planned) == 1  # both paid the same morning
    remit_on = planned.pop()
    assert remit_on is not None
    expected = sum(s.amount for s in slips)

    deposit = ["agency", "deposit", "--adapter", ADAPTER, "--date", f"{remit_on:%Y-%m-%d}",
               "--amount", str(expected - 1_000), "--reference", "stmt-77"]
    recorded = runner.invoke(cli, deposit)
    assert recorded.exit_code == 0, recorded.output
    assert f"deposit stmt-77: {expected - 1_000:,} yen on {remit_on:%Y-%m-%d} recorded" in recorded.output
    repeat = runner.invoke(cli, deposit)
    assert repeat.exit_code == 0 and "was recorded before; nothing changed" in repeat.output
    zero = runner.invoke(cli, [*deposit[:-4], "--amount", "0", "--reference", "stmt-78"])
    assert zero.exit_code != 0

    shown = runner.invoke(cli, ["agency", "remittances"])
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith(ADAPTER))
    assert f"{remit_on:%Y-%m-%d}" in row and row.endswith("<- differs")
    assert row.split()[3:7] == ["2", f"{expected:,}", f"{expected - 1_000:,}", "-1,000"], row

    before = runner.invoke(cli, ["agency", "check", "--date", f"{remit_on - timedelta(days=1):%Y-%m-%d}"])
    assert before.exit_code == 0 and before.output.strip().endswith("no new exceptions"), before.output
    check = ["agency", "check", "--date", f"{remit_on + timedelta(days=1):%Y-%m-%d}"]
    first = runner.invoke(cli, check)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"checked agency data as of {remit_on + timedelta(days=1)}: remittance_mismatch 1"
    second = runner.invoke(cli, check)
    assert second.exit_code == 0 and second.output.strip().endswith(": no new exceptions"), second.output
    with app.extensions["kokin.db"].session() as session:
        raised = list(session.scalars(select(ReconException)))
    assert [(e.kind, e.amount, e.business_date) for e in raised] == [("remittance_mismatch", -1_000, remit_on)]

    settled = runner.invoke(cli, ["agency", "deposit", "--adapter", ADAPTER, "--date", f"{remit_on:%Y-%m-%d}",
                                  "--amount", "1000", "--reference", "stmt-79"])
    assert settled.exit_code == 0
    balanced = runner.invoke(cli, ["agency", "remittances", "--adapter", ADAPTER])
    assert "<- differs" not in balanced.output and f"{expected:,}" in balanced.output
