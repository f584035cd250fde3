"""API keys with scopes and lifetimes: a read-only key books no money and reveals no name.

The finding: any key could import agency files (a one-record 速報 marked a slip paid and put
it in the receipts file), record deposits, reissue slips and download PDFs with the payer's
name, unaudited.
"""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from adapters.agency.simulator import StorePayment, schedule, write_file
from gateway.cli import cli
from gateway.db import utcnow
from gateway.models import AgencyDeposit, AgencyImport, ApiKey, Event, Payment, ReceiptRecord, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.apikeys import READ_ONLY, create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from tests.conftest import TEST_DATA_KEY, one_ward_config

ROOT = Path(__file__).resolve().parents[2]
CODE = "131075"
ADAPTER = "agency-csv"


@pytest.fixture
def slip(session: Session, cipher: Any) -> Slip:
    rows = [dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
                 installment=1, payer_ref="0000000001", payer_name="墨田　花子", amount=12_300,
                 due_date=date(2026, 6, 30))]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    found = session.scalars(select(Slip)).one()
    assert found.barcode
    return found


def _bearer(session: Session, *scopes: str, name: str = "client", **kwargs: Any) -> dict[str, str]:
    key = create_api_key(session, name, CODE, actor="test", scopes=scopes or READ_ONLY, **kwargs)
    return {"Authorization": f"Bearer {key}"}


def _sokuho(app: Any, slip: Slip) -> bytes:
    """One 速報 record paying the slip, as the agency sends it."""
    assert slip.barcode is not None
    agency = app.extensions["kokin.agencies"][ADAPTER]
    payment = StorePayment(slip.barcode, datetime(2026, 6, 1, 10, 30), "1234567", "010", records=("preliminary",))
    return write_file(agency, schedule([payment]), created_on=date(2026, 6, 2), client_code="13107")


def _upload(client: Any, headers: dict[str, str], data: bytes, adapter: str = ADAPTER) -> Any:
    return client.post(f"/api/v1/agency/{adapter}/imports?filename=sokuho.csv", data=data,
                       headers={**headers, "Content-Type": "application/octet-stream"})


def _count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _scope_refused(response: Any, scope: str) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_scope" and error["details"] == {"scope": scope}


def test_a_read_only_key_cannot_import_a_sokuho_and_nothing_is_booked(app: Any, client: Any, session: Session,
                                                                     slip: Slip) -> None:
    headers = _bearer(session)  # read-only: the default
    assert client.get(f"/api/v1/slips/{slip.number}", headers=headers).status_code == 200

    _scope_refused(_upload(client, headers, _sokuho(app, slip)), f"agency:import:{ADAPTER}")

    assert (_count(session, Payment), _count(session, AgencyImport), _count(session, ReceiptRecord)) == (0, 0, 0)
    session.refresh(slip)
    assert slip.status == "issued"


def test_an_import_key_imports_only_its_own_agencys_files(app: Any, client: Any, session: Session,
                                                          slip: Slip) -> None:
    headers = _bearer(session, "agency:import:agency-fixed120")
    _scope_refused(_upload(client, headers, _sokuho(app, slip)), f"agency:import:{ADAPTER}")
    assert _count(session, Payment) == 0

    allowed = _bearer(session, f"agency:import:{ADAPTER}", name="agency-csv client")
    response = _upload(client, allowed, _sokuho(app, slip))
    assert response.status_code == 200 and response.get_json()["booked"] == 1
    used = session.scalars(select(Event).where(Event.kind == "api_key.used")).all()
    assert [(e.actor, e.data["scope"], e.data["operation"]) for e in used] == [
        ("api:agency-csv client", f"agency:import:{ADAPTER}", "POST /api/v1/agency/<string:adapter>/imports")]


def test_a_read_only_key_cannot_record_deposits_reissue_or_download_the_named_pdf(client: Any, session: Session,
                                                                                 slip: Slip) -> None:
    headers = _bearer(session)
    deposit = {"deposited_on": "2026-06-05", "amount": 12_300, "reference": "statement 1"}
    _scope_refused(client.post(f"/api/v1/agency/{ADAPTER}/deposits", json=deposit, headers=headers), "deposits:write")
    _scope_refused(client.post(f"/api/v1/slips/{slip.number}/reissue", json={"reason": "lost"}, headers=headers),
                   "slips:reissue")
    _scope_refused(client.get(f"/api/v1/slips/{slip.number}/pdf", headers=headers), "personal-data:read")
    _scope_refused(client.post("/api/v1/payments", json={"slip_number": slip.number, "channel": "card",
                                                         "return_url": "https://a.example/r",
                                                         "cancel_url": "https://a.example/c"},
                               headers={**headers, "Idempotency-Key": "k-1"}), "payments:write")
    assert (_count(session, AgencyDeposit), _count(session, Payment)) == (0, 0)
    session.refresh(slip)
    assert slip.status == "issued"
    assert _count(session, Event) == len(session.scalars(select(Event).where(Event.kind != "api_key.used")).all())


def test_every_download_of_a_named_pdf_is_an_audit_event(client: Any, session: Session, slip: Slip) -> None:
    headers = _bearer(session, "slips:read", "personal-data:read", name="print shop")
    for _ in range(2):
        response = client.get(f"/api/v1/slips/{slip.number}/pdf", headers=headers)
        assert response.status_code == 200 and response.mimetype == "application/pdf"
    used = session.scalars(select(Event).where(Event.kind == "api_key.used").order_by(Event.id)).all()
    assert len(used) == 2
    assert {(e.actor, e.data["scope"], e.data["subject"]) for e in used} == {
        ("api:print shop", "personal-data:read", f"/api/v1/slips/{slip.number}/pdf")}
    key = headers["Authorization"].removeprefix("Bearer ")
    assert all(key not in str(e.data) and e.data["prefix"] == key[:10] for e in used)  # its prefix, never the key


def test_expired_and_revoked_keys_are_refused(app: Any, client: Any, session: Session) -> None:
    expired = _bearer(session, name="old")
    session.execute(update(ApiKey).where(ApiKey.name == "old").values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    answer = client.get("/api/v1/funds", headers=expired)
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "expired_api_key"

    revoked = _bearer(session, name="leaked")
    assert client.get("/api/v1/funds", headers=revoked).status_code == 200
    result = app.test_cli_runner().invoke(cli, ["apikeys", "revoke", "leaked"])
    assert result.exit_code == 0 and "revoked 1 API key named leaked" in result.output
    answer = client.get("/api/v1/funds", headers=revoked)
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "invalid_api_key"
    unknown = app.test_cli_runner().invoke(cli, ["apikeys", "revoke", "nobody"])
    assert unknown.exit_code != 0 and "no live API key is named 'nobody'" in unknown.output


def test_last_use_is_kept_to_the_minute(client: Any, session: Session) -> None:
    headers = _bearer(session, name="kiosk")
    assert session.scalars(select(ApiKey.last_used_at)).one() is None
    client.get("/api/v1/funds", headers=headers)
    session.expire_all()
    first = session.scalars(select(ApiKey.last_used_at)).one()
    assert first is not None
    client.get("/api/v1/funds", headers=headers)
    session.expire_all()
    assert session.scalars(select(ApiKey.last_used_at)).one() == first  # within the minute: not written again


def test_every_api_operation_names_its_scope_in_the_openapi_document(app: Any, client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()
                  if isinstance(op, dict) and "responses" in op]
    assert len(operations) >= 14
    for path, method, op in operations:
        assert op.get("x-required-scope"), f"{method.upper()} {path} names no scope"
        assert f"Requires the API key scope `{op['x-required-scope']}`." in op["description"]


def test_the_cli_creates_scoped_and_expiring_keys_and_lists_them(app: Any, client: Any) -> None:
    runner = app.test_cli_runner()
    bad = runner.invoke(cli, ["apikeys", "create", "x", "--scope", "everything"])
    assert bad.exit_code != 0 and "unknown scope 'everything'" in bad.output
    made = runner.invoke(cli, ["apikeys", "create", "kiosk", "--scope", "payments:write", "--scope", "slips:read",
                               "--expires-in-days", "30"])
    assert made.exit_code == 0, made.output
    assert "scopes payments:write slips:read, expires " in made.output
    key = made.output.strip().splitlines()[-1]
    assert client.get("/api/v1/funds", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    help_text = runner.invoke(cli, ["apikeys", "create", "--help"]).output
    for scope in ("slips:read", "payments:write", "agency:import:<adapter>", "deposits:write", "slips:reissue",
                  "personal-data:read"):
        assert scope in help_text
    listed = runner.invoke(cli, ["apikeys", "list"]).output
    line = next(line for line in listed.splitlines() if line.startswith("kiosk "))
    assert "[payments:write slips:read]" in line and "last used 20" in line and line.endswith("live")
    assert key not in listed


def test_apikeys_create_and_revoke_as_processes(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "kokin.toml"
    one_ward_config(config, tmp_path / "instance")
    env = {**os.environ, "KOKIN_DATABASE_URL": db_url, "KOKIN_CONFIG": str(config), "KOKIN_DATA_KEYS": TEST_DATA_KEY,
           "PYTHONPATH": str(ROOT)}

    def kokin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    made = kokin("apikeys", "create", "importer", "--scope", f"agency:import:{ADAPTER}")
    assert made.returncode == 0, made.stderr
    assert f"scopes agency:import:{ADAPTER};" in made.stdout
    revoked = kokin("apikeys", "revoke", "importer")
    assert revoked.returncode == 0 and "revoked 1 API key named importer" in revoked.stdout
    again = kokin("apikeys", "revoke", "importer")
    assert again.returncode == 1 and "no live API key is named 'importer'" in again.stderr
