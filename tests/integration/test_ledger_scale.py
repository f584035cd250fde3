"""The ledger import at scale: keys per municipality, and a file read in many pieces by worker processes.

The pieces are made small here (a few kilobytes) so that a ward file of a couple of thousand
lines is read the way a million-line one is: cut into dozens of pieces, read by two forked
workers, staged piece by piece.
"""
from __future__ import annotations

from typing import Any

import pytest

from domain.layouts import MAX_ERRORS, LineError
from gateway.config import load_settings
from gateway.errors import LedgerFileRejected
from gateway.services import ledger_file
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips
from tests.integration.ledger_corpus import CSV, FIXED, MUNICIPALITY, ledger_state
from tests.integration.test_ledger_import import ROWS, _rows, dump, file_of

CHIYODA = "131016"  # another ward, with the same fund codes


@pytest.fixture
def chiyoda(session) -> str:  # type: ignore[no-untyped-def]
    sumida = load_settings()["MUNICIPALITIES"][0]
    seed_reference_data(session, [dict(sumida, code=CHIYODA, name="千代田区", name_kana="ﾁﾖﾀﾞｸ",
                                       company_code="913101", client_code="13101", counters=[], fee_items=[])])
    return CHIYODA


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pieces of 4 KB; returns the worker counts of the process pools the import started."""
    monkeypatch.setattr(ledger_file, "PIECE_BYTES", 4096)
    pools: list[int] = []
    real = ledger_file.ProcessPoolExecutor

    def counted(workers: int, **kwargs: Any) -> Any:
        pools.append(workers)
        return real(workers, **kwargs)

    monkeypatch.setattr(ledger_file, "ProcessPoolExecutor", counted)
    return pools


def _import(session, cipher, data: bytes, layout: str = CSV, name: str = "ledger", workers: int = 2):  # type: ignore[no-untyped-def]
    return import_ledger(session, cipher, data, filename=name, layout_name=layout, workers=workers)


def _in(code: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r, municipality_code=code) for r in rows]


def _ledger_of(database, code: str) -> dict[tuple[str, int], tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    rows = _rows(database, "SELECT a.source_key, a.installment, a.amount, a.due_date, a.revision FROM assessments a "
                           "JOIN municipalities m ON m.id = a.municipality_id WHERE m.code = :code", code=code)
    return {(key, installment): tuple(rest) for key, installment, *rest in rows}


# --- keys are per municipality ----------------------------------------------------------------

def test_the_same_keys_in_another_municipality_are_new_assessments_and_amending_one_leaves_the_other(
        chiyoda, database, session, cipher) -> None:
    _import(session, cipher, file_of(_in(chiyoda, ROWS)), name="chiyoda.csv")
    chiyoda_before = _ledger_of(database, chiyoda)

    sumida = _import(session, cipher, file_of(ROWS), name="sumida.csv")

    assert (sumida.created, sumida.amended, sumida.unchanged) == (len(ROWS), 0, 0)
    assert _ledger_of(database, chiyoda) == chiyoda_before
    assert _ledger_of(database, MUNICIPALITY).keys() == chiyoda_before.keys()
    target = ROWS[7]
    amended = [dict(r, amount=int(r["amount"]) + 500) if r is target else r for r in ROWS]

    result = _import(session, cipher, file_of(amended), name="sumida-amended.csv")

    assert (result.created, result.amended, result.unchanged) == (0, 1, len(ROWS) - 1)
    key = (target["assessment_id"], target["installment"])
    assert _ledger_of(database, MUNICIPALITY)[key] == (int(target["amount"]) + 500, target["due_date"], 2)
    assert _ledger_of(database, chiyoda) == chiyoda_before


def test_a_key_of_another_municipality_under_another_fund_is_no_conflict(chiyoda, database, session,
                                                                         cipher) -> None:
    index = next(i for i, r in enumerate(ROWS) if r["fund_code"] == "12")
    _import(session, cipher, file_of(_in(chiyoda, [dict(ROWS[index], fund_code="13")])), name="chiyoda.csv")

    result = _import(session, cipher, file_of(ROWS), name="sumida.csv")

    assert result.created == len(ROWS)


# --- a file read in many pieces by worker processes -------------------------------------------

@pytest.mark.parametrize("layout", [CSV, FIXED])
def test_a_file_read_in_many_pieces_stores_every_row_as_one_read_whole(layout, small_pieces, database, session,
                                                                        cipher) -> None:
    data = file_of(ROWS, layout)
    assert len(data) > 20 * ledger_file.PIECE_BYTES

    result = _import(session, cipher, data, layout)

    assert small_pieces == [2], "read by two worker processes"
    assert (result.records, result.created) == (len(ROWS), len(ROWS))
    assert _ledger_of(database, MUNICIPALITY) == {
        (r["assessment_id"], r["installment"]): (r["amount"], r["due_date"], 1) for r in ROWS}
    ids = [row[0] for row in _rows(database, "SELECT id FROM assessments ORDER BY id")]
    stored = [(k, i) for k, i in _rows(database, "SELECT source_key, installment FROM assessments ORDER BY id")]
    assert stored == [(r["assessment_id"], r["installment"]) for r in ROWS], "inserted in line order"
    assert len(ids) == len(set(ids))
    names = _rows(database, "SELECT source_key, installment, payer_name_enc FROM assessments")
    by_key = {(r["assessment_id"], r["installment"]): r["payer_name"] for r in ROWS}
    assert all(cipher.decrypt(bytes(raw)) == by_key[(k, i)] for k, i, raw in names)


@pytest.mark.parametrize("layout", [CSV, FIXED])
def test_a_large_file_with_an_error_on_its_last_line_changes_nothing(layout, small_pieces, database, session,
                                                                      cipher) -> None:
    _import(session, cipher, file_of(ROWS[:100]), name="first.csv")
    issue_slips(session, MUNICIPALITY)
    before, rows_before = ledger_state(database), dump(database)
    spoilt = [*ROWS[:-1], dict(ROWS[-1], due_date=ROWS[-1]["due_date"].replace(year=2040))]
    spoilt[3] = dict(spoilt[3], amount=int(spoilt[3]["amount"]) + 100)  # an amendment that must not apply

    with pytest.raises(LedgerFileRejected) as caught:
        _import(session, cipher, file_of(spoilt, layout), layout)
    session.rollback()

    assert [(e.line, e.field) for e in caught.value.errors] == [(len(ROWS) + 1, "due_date")]
    assert ledger_state(database) == before
    assert dump(database) == rows_before


def test_errors_in_several_pieces_are_each_named_at_their_own_line(small_pieces, session, cipher) -> None:
    spoilt = list(ROWS)
    for index in (5, 900, len(ROWS) - 2):
        spoilt[index] = dict(spoilt[index], fund_code="99")
    spoilt.append(dict(ROWS[10]))  # a duplicate, many pieces after the line it repeats

    with pytest.raises(LedgerFileRejected) as caught:
        _import(session, cipher, file_of(spoilt))
    session.rollback()

    assert [(e.line, e.field) for e in caught.value.errors] == [
        (7, "fund_code"), (902, "fund_code"), (len(ROWS), "fund_code"), (len(ROWS) + 2, "assessment_id")]
    assert caught.value.errors[-1] == LineError(
        len(ROWS) + 2, "assessment_id", f"duplicate of line 12 (same assessment {ROWS[10]['assessment_id']}, "
                                        f"instalment {ROWS[10]['installment']})")


def test_more_errors_than_the_cap_across_pieces_stop_where_a_whole_read_stops(small_pieces, session,
                                                                               cipher) -> None:
    spoilt = [dict(r, amount=0) for r in ROWS]

    with pytest.raises(LedgerFileRejected) as caught:
        _import(session, cipher, file_of(spoilt))
    session.rollback()

    whole = caught.value.errors
    with pytest.raises(LedgerFileRejected) as again:
        _import(session, cipher, file_of(spoilt), workers=1)
    session.rollback()
    assert len([e for e in whole if e.field == "amount"]) == MAX_ERRORS
    assert whole[0] == LineError(0, None, f"more than {MAX_ERRORS} errors; stopped reading")
    assert [e.line for e in whole if e.line] == list(range(2, MAX_ERRORS + 2))
    assert whole == again.value.errors


def test_changed_payer_names_among_many_known_ones_are_found_by_the_worker_processes(small_pieces, monkeypatch,
                                                                                     database, session,
                                                                                     cipher) -> None:
    monkeypatch.setattr(ledger_file, "NAME_CHUNK", 100)
    _import(session, cipher, file_of(ROWS), name="first.csv")
    renamed = {3: "佐藤　新", len(ROWS) - 1: "鈴木　改"}
    again = [dict(r, payer_name=renamed[i]) if i in renamed else r for i, r in enumerate(ROWS)]
    small_pieces.clear()

    result = _import(session, cipher, file_of(again), name="renamed.csv")

    assert small_pieces == [2, 2], "read, then names compared, by two worker processes"
    assert (result.created, result.amended, result.payer_updated, result.unchanged) == (0, 0, 2, len(ROWS) - 2)
    for index, name in renamed.items():
        (raw, revision), = _rows(database, "SELECT payer_name_enc, revision FROM assessments "
                                           "WHERE source_key = :k AND installment = :i",
                                 k=ROWS[index]["assessment_id"], i=ROWS[index]["installment"])
        assert (cipher.decrypt(bytes(raw)), revision) == (name, 1)
