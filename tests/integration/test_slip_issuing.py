"""Issuing a fiscal year of slips: numbers, barcodes, deadlines, idempotency, reissues."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain import barcode as gs1
from domain.calendar import is_business_day
from domain.identifiers import is_valid_slip_number
from gateway.crypto import DataCipher
from gateway.errors import Conflict
from gateway.models import Event, Municipality, Slip
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import get_slip, issue_slips, reissue_slip
from tests.rows import by_id

CODE = "131075"


def _ledger(session: Session, cipher: DataCipher, payers: int = 60) -> list[dict[str, object]]:
    rows = list(ward_rows(CODE, 2026, payers, seed=7))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    return rows


def test_every_instalment_gets_one_slip_with_a_valid_number_and_barcode(session: Session, cipher: DataCipher) -> None:
    rows = _ledger(session, cipher)
    result = issue_slips(session, CODE)
    slips = session.scalars(select(Slip)).unique().all()
    assert result.issued == len(rows) == len(slips)
    muni = session.scalar(select(Municipality))
    assert muni is not None
    assert len({s.number for s in slips}) == len(slips)
    for slip in slips:
        assert is_valid_slip_number(slip.number)
        assert slip.reissue == 0 and slip.status == "issued"
        if slip.amount > gs1.MAX_BARCODE_AMOUNT:
            assert slip.barcode is None and slip.store_deadline is None
            continue
        assert slip.barcode is not None and gs1.is_valid(slip.barcode)
        decoded = gs1.decode(slip.barcode)
        assert decoded.slip_number == slip.number
        assert decoded.amount == slip.amount
        assert decoded.store_deadline == slip.store_deadline
        assert decoded.client_code == muni.client_code
        assert decoded.company_code == (slip.assessment.fund_type.company_code or muni.company_code)
        assert decoded.stamp_flag == 0 and decoded.reissue == 0


def test_store_deadline_is_the_offset_after_the_due_date_moved_to_a_business_day(
        session: Session, cipher: DataCipher) -> None:
    _ledger(session, cipher, payers=30)
    issue_slips(session, CODE)
    offset = session.scalar(select(Municipality.store_deadline_offset_days))
    assert offset is not None
    for slip in session.scalars(select(Slip).where(Slip.barcode.is_not(None))).unique():
        assert slip.store_deadline is not None
        assert is_business_day(slip.store_deadline)
        assert (slip.store_deadline - slip.due_date).days >= offset
        assert (slip.store_deadline - slip.due_date).days < offset + 7  # never further than the next open day


def test_slips_above_300000_yen_carry_no_barcode(session: Session, cipher: DataCipher) -> None:
    row = dict(municipality_code=CODE, assessment_id="BIG-1", fund_code="01", fiscal_year=2026, installment=1,
               payer_ref="0000000001", payer_name="墨田　太郎", amount=300_001, due_date=date(2026, 6, 30))
    edge = dict(row, assessment_id="EDGE-1", amount=300_000)
    import_ledger(session, cipher, ledger_file_bytes([row, edge], "kokin-csv", date(2026, 4, 1)), filename="big.csv")
    result = issue_slips(session, CODE)
    assert result.without_barcode == 1
    by_amount = {s.amount: s for s in session.scalars(select(Slip)).unique()}
    assert by_amount[300_001].barcode is None
    assert by_amount[300_000].barcode is not None and gs1.decode(by_amount[300_000].barcode).amount == 300_000


def test_issuing_twice_issues_nothing_the_second_time(session: Session, cipher: DataCipher) -> None:
    _ledger(session, cipher, payers=20)
    first = issue_slips(session, CODE)
    events = session.scalar(select(func.count()).select_from(Event))
    second = issue_slips(session, CODE)
    assert first.issued > 0 and second.issued == 0
    assert session.scalar(select(func.count()).select_from(Slip)) == first.issued
    assert session.scalar(select(func.count()).select_from(Event)) == events


def test_fund_and_fiscal_year_filters_limit_what_is_issued(session: Session, cipher: DataCipher) -> None:
    rows = _ledger(session, cipher, payers=40)
    only_light_vehicle = issue_slips(session, CODE, fund_code="02")
    assert only_light_vehicle.issued == sum(1 for r in rows if r["fund_code"] == "02")
    assert issue_slips(session, CODE, fiscal_year=2025).issued == 0
    rest = issue_slips(session, CODE, fiscal_year=2026)
    assert only_light_vehicle.issued + rest.issued == len(rows)


def test_an_unknown_fund_code_is_an_error_not_an_empty_run(session: Session, cipher: DataCipher) -> None:
    from gateway.errors import NotFound

    _ledger(session, cipher, payers=2)
    with pytest.raises(NotFound) as caught:
        issue_slips(session, CODE, fund_code="99")
    assert caught.value.code == "unknown_fund"
    assert session.scalar(select(func.count()).select_from(Slip)) == 0


def test_reissue_voids_the_slip_and_increments_the_count_under_the_same_number(
        session: Session, cipher: DataCipher) -> None:
    _ledger(session, cipher, payers=5)
    issue_slips(session, CODE)
    original = session.scalars(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id)).first()
    assert original is not None
    muni_id = original.municipality_id
    new = reissue_slip(session, muni_id, original.number, reason="lost by the resident", actor="test")
    session.expire_all()
    old = by_id(session, Slip, original.id)
    assert old is not None and old.status == "void" and old.void_reason == "lost by the resident"
    assert new.number == original.number and new.reissue == 1 and new.status == "issued"
    assert new.barcode is not None and new.barcode != original.barcode
    assert new.barcode[29] == "1" and gs1.is_valid(new.barcode)
    assert new.pay_token != original.pay_token
    assert get_slip(session, muni_id, original.number).id == new.id


def test_a_paid_slip_cannot_be_reissued(session: Session, cipher: DataCipher) -> None:
    from gateway.db import transaction

    _ledger(session, cipher, payers=2)
    issue_slips(session, CODE)
    slip = session.scalars(select(Slip).order_by(Slip.id)).first()
    assert slip is not None
    with transaction(session):
        slip.status = "paid"
    with pytest.raises(Conflict) as caught:
        reissue_slip(session, slip.municipality_id, slip.number, reason="again", actor="test")
    assert caught.value.code == "slip_paid"


def test_a_tenth_reissue_moves_the_instalment_to_a_new_number(session: Session, cipher: DataCipher) -> None:
    _ledger(session, cipher, payers=3)
    issue_slips(session, CODE)
    first = session.scalars(select(Slip).where(Slip.barcode.is_not(None)).order_by(Slip.id)).first()
    assert first is not None
    number, slip = first.number, first
    for count in range(1, 11):
        slip = reissue_slip(session, first.municipality_id, slip.number, reason=f"reissue {count}", actor="test")
    assert slip.number != number and slip.reissue == 0
    assert session.scalar(select(func.max(Slip.reissue)).where(Slip.number == number)) == 9


def test_the_database_refuses_a_second_live_slip_for_one_instalment(session: Session, cipher: DataCipher) -> None:
    from sqlalchemy.exc import IntegrityError

    from gateway.db import transaction

    _ledger(session, cipher, payers=2)
    issue_slips(session, CODE)
    slip = session.scalars(select(Slip).order_by(Slip.id)).first()
    assert slip is not None
    with pytest.raises(IntegrityError), transaction(session):
        session.add(Slip(municipality_id=slip.municipality_id, assessment_id=slip.assessment_id,
                         number=slip.number, reissue=slip.reissue + 1, amount=slip.amount, due_date=slip.due_date,
                         pay_token="another-token-for-the-same-instalment", status="issued"))
