"""Slips issued from a ledger, printed by the service, scanned back: what a store's POS reads."""
from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import zxingcpp
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import barcode as gs1
from gateway.crypto import DataCipher
from gateway.models import Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import import_ledger
from gateway.services.printing import render_pdf
from gateway.services.slips import issue_slips


def test_every_printed_barcode_scans_as_gs1_and_decodes_to_the_slip_as_issued(
        session: Session, cipher: DataCipher, tmp_path: Path) -> None:
    rows = list(ward_rows("131075", 2026, 3, seed=5))[:4]  # each 300 dpi page takes a second to scan
    big = dict(rows[0], assessment_id="BIG-1", installment=1, amount=310_000)
    import_ledger(session, cipher, ledger_file_bytes([*rows, big], "kokin-csv", date(2026, 4, 1)), filename="l.csv")
    issue_slips(session, "131075")
    slips = session.scalars(select(Slip).order_by(Slip.id)).unique().all()
    pdf = tmp_path / "slips.pdf"
    with pdf.open("wb") as out:
        assert render_pdf(session, cipher, slips[0].municipality_id, [s.id for s in slips], out) == len(slips)
    subprocess.run(["pdftoppm", "-r", "300", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == len(slips)
    for slip, page in zip(slips, pages, strict=True):
        found = zxingcpp.read_barcodes(Image.open(page), formats=zxingcpp.BarcodeFormat.Code128)
        if slip.barcode is None:
            assert found == [], f"slip {slip.number} above the limit must carry no barcode"
            continue
        assert len(found) == 1, f"slip {slip.number}: {len(found)} barcodes found"
        assert found[0].symbology_identifier == "]C1"
        digits = bytes(found[0].bytes).decode("ascii")
        assert digits == slip.barcode
        decoded = gs1.decode(digits)
        assert (decoded.slip_number, decoded.amount, decoded.reissue, decoded.store_deadline) == (
            slip.number, slip.amount, slip.reissue, slip.store_deadline)
