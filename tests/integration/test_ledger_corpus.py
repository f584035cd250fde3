"""Bad ledger files: each is rejected naming its line and field, and nothing of it is applied.

The files live in tests/data/ledger/bad/ with MANIFEST.toml (see ledger_corpus.py). Each is
tried against a ledger that already holds the baseline file with its slips issued, and
each carries an amendment of that ledger next to its fault: the tables must be exactly as
they were, amendment and all.
"""
from __future__ import annotations

import re
import tomllib
from datetime import date

import pytest

from domain.layouts import MAX_ERRORS
from gateway.cli import cli
from gateway.config import load_settings
from gateway.errors import LedgerFileRejected
from gateway.sandbox.ward import ward_rows
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips
from tests.integration.ledger_corpus import (
    AMENDED,
    BAD_DIR,
    BASELINE,
    BASELINE_FILE,
    CSV,
    FIXED,
    FIXED_END,
    GOOD,
    HEADER,
    MANIFEST_FILE,
    MUNICIPALITY,
    NEW,
    Row,
    csv_file,
    csv_line,
    expected_files,
    fixed_data,
    fixed_file,
    fixed_header,
    fixed_trailer,
    ledger_state,
    pad,
    standard_csv,
    standard_fixed,
)

MANIFEST: list[dict] = tomllib.loads(MANIFEST_FILE.read_text("utf-8"))["case"]
BY_FILE = {case["file"]: case for case in MANIFEST}
MUNICIPALITIES = load_settings()["MUNICIPALITIES"]


@pytest.fixture
def ledger(database, session, cipher):  # type: ignore[no-untyped-def]
    """The baseline assessments imported and their slips issued; returns the state then."""
    result = import_ledger(session, cipher, BASELINE_FILE.read_bytes(), filename=BASELINE_FILE.name)
    assert result.created == len(BASELINE)
    assert issue_slips(session, MUNICIPALITY).issued == len(BASELINE)
    return ledger_state(database)


def _describe(errors: list) -> str:  # type: ignore[type-arg]
    return "\n".join(f"  {e.line} {e.field} {e.message}" for e in errors)


def _reject(session, cipher, data: bytes, name: str, layout: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    with pytest.raises(LedgerFileRejected) as caught:
        import_ledger(session, cipher, data, filename=name, layout_name=layout)
    session.rollback()
    return caught.value.errors


# --- the corpus itself ------------------------------------------------------------------

def test_the_checked_in_corpus_is_exactly_what_the_generator_writes() -> None:
    expected = expected_files()
    for path, content in expected.items():
        assert path.is_file(), f"{path} is missing: run python -m tests.integration.ledger_corpus"
        assert path.read_bytes() == content, f"{path.name} differs from what ledger_corpus.py writes"
    on_disk = {p for p in BAD_DIR.iterdir() if p.is_file()}
    assert on_disk == {p for p in expected if p.parent == BAD_DIR}, "files in bad/ that the manifest does not name"


def test_the_corpus_has_at_least_24_small_files_covering_both_layouts() -> None:
    layouts = [case["layout"] for case in MANIFEST]
    assert len(MANIFEST) >= 24
    assert layouts.count(CSV) >= 12 and layouts.count(FIXED) >= 12
    assert all((BAD_DIR / case["file"]).stat().st_size < 2048 for case in MANIFEST), "keep the files small"


@pytest.mark.parametrize("layout", [CSV, FIXED])
def test_the_lines_around_each_fault_are_good_and_would_change_the_ledger(layout, ledger, database,
                                                                            session, cipher) -> None:
    """Without its fault a corpus file imports and amends the ledger, so 'unchanged' means something."""
    data = standard_csv(csv_line(GOOD)) if layout == CSV else standard_fixed(fixed_data(GOOD))
    result = import_ledger(session, cipher, data, filename="good", layout_name=layout)
    assert (result.created, result.amended, result.voided_slips) == (2, 1, 1)
    after = ledger_state(database)
    for key in ("assessments", "assessment_revisions", "ledger_imports", "events",
                "sum of assessment amounts", "sum of assessment revisions"):
        assert after[key] != ledger[key], key
    assert after["issued slips"] == ledger["issued slips"] - 1


# --- every bad file ---------------------------------------------------------------------

@pytest.mark.parametrize("case", MANIFEST, ids=[case["file"] for case in MANIFEST])
def test_bad_file_is_rejected_naming_its_line_and_field_and_nothing_is_applied(case, ledger, database,
                                                                               session, cipher) -> None:
    data = (BAD_DIR / case["file"]).read_bytes()
    errors = _reject(session, cipher, data, case["file"], case["layout"])
    field = case.get("field")
    found = [e for e in errors if e.line == case["line"] and e.field == field and case["message"] in e.message]
    assert found, (f"expected line {case['line']}, field {field}, message containing {case['message']!r}; "
                   f"got:\n{_describe(errors)}")
    assert ledger_state(database) == ledger


# --- through the command line -----------------------------------------------------------

CLI_CASES = ["csv_unknown_fund.csv", "csv_impossible_date.csv", "fixed_trailer_count_mismatch.dat",
             "fixed_split_two_byte_character.dat"]
REASON = re.compile(r"^Error: ledger file rejected with (\d+) error\(s\); nothing was applied$")


@pytest.fixture
def runner(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")  # FlaskGroup sets it; restored afterwards
    return app.test_cli_runner()


@pytest.mark.parametrize("name", CLI_CASES)
def test_kokin_ledger_import_exits_non_zero_naming_line_and_field_then_one_line_reason(name, runner, ledger,
                                                                                        database) -> None:
    case = BY_FILE[name]
    result = runner.invoke(cli, ["ledger", "import", str(BAD_DIR / name), "--layout", case["layout"]])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a reason, not a traceback
    lines = result.stderr.splitlines()
    wanted = f"line {case['line']}, field {case['field']}: "
    assert any(wanted in line and case["message"] in line for line in lines), result.stderr
    reason = REASON.match(lines[-1])
    assert reason, f"last line is not a one-line reason: {lines[-1]!r}"
    assert int(reason.group(1)) == sum(1 for line in lines if line.startswith("  line ") or line.startswith("  file"))
    assert result.stdout == ""
    assert ledger_state(database) == ledger


def test_kokin_ledger_import_of_a_missing_file_exits_non_zero_without_a_traceback(runner, tmp_path) -> None:
    result = runner.invoke(cli, ["ledger", "import", str(tmp_path / "nowhere.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_kokin_ledger_import_of_an_unknown_layout_names_the_shipped_ones(runner, ledger, database) -> None:
    result = runner.invoke(cli, ["ledger", "import", str(BAD_DIR / "csv_unknown_fund.csv"), "--layout", "kokin-xml"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("Error: unknown layout 'kokin-xml'; shipped: ")
    assert "kokin-csv" in result.stderr and "kokin-fixed" in result.stderr
    assert ledger_state(database) == ledger


# --- many errors, and one among many good lines ----------------------------------------

def _text_row(row: dict[str, object]) -> Row:
    return {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in row.items()}


def _synthetic(payers: int, seed: int) -> list[Row]:
    """Synthetic rows whose keys touch neither the baseline's nor those of the corpus lines."""
    taken = {(r["assessment_id"], r["installment"]) for r in (*BASELINE, NEW, GOOD)}
    rows = [_text_row(r) for r in ward_rows(MUNICIPALITY, 2026, payers, seed=seed)]
    return [r for r in rows if (r["assessment_id"], r["installment"]) not in taken]


SPOILERS = (("amount", "0"), ("due_date", "2026-13-01"), ("fund_code", "99"), ("installment", "100"),
            ("municipality_code", "131076"), ("fiscal_year", "20x6"))


def test_a_file_with_many_errors_reports_every_one_with_its_line_and_field(ledger, database, session,
                                                                           cipher) -> None:
    rows = _synthetic(40, seed=7)
    expected = set()
    for index in range(0, len(rows), 4):
        field, value = SPOILERS[(index // 4) % len(SPOILERS)]
        rows[index] = dict(rows[index], **{field: value})
        expected.add((index + 2, field))  # line 1 is the header
    assert len(expected) > 40
    data = csv_file(HEADER, *(csv_line(r) for r in rows))
    errors = _reject(session, cipher, data, "many.csv", CSV)
    assert {(e.line, e.field) for e in errors} == expected
    assert len(errors) == len(expected)
    assert [e.line for e in errors] == sorted(e.line for e in errors), "errors are listed in line order"
    assert ledger_state(database) == ledger


def test_a_file_with_more_errors_than_the_cap_says_where_it_stopped(ledger, database, session, cipher) -> None:
    rows = [dict(_text_row(r), amount="0") for r in _synthetic(60, seed=8)]
    assert len(rows) > MAX_ERRORS
    errors = _reject(session, cipher, csv_file(HEADER, *(csv_line(r) for r in rows)), "worse.csv", CSV)
    assert len([e for e in errors if e.field == "amount"]) == MAX_ERRORS
    assert any(e.line == 0 and f"more than {MAX_ERRORS} errors" in e.message for e in errors)
    assert ledger_state(database) == ledger


@pytest.mark.parametrize("layout", [CSV, FIXED])
def test_one_bad_line_among_a_hundred_good_ones_applies_nothing(layout, ledger, database, session,
                                                                 cipher) -> None:
    rows = [AMENDED, NEW, *_synthetic(30, seed=9)][:100]
    assert len(rows) == 100
    bad_index = 61
    rows.insert(bad_index, dict(GOOD, amount="0"))
    if layout == CSV:
        data = csv_file(HEADER, *(csv_line(r) for r in rows))
        bad_line = bad_index + 2
    else:
        total = sum(int(r["amount"]) for r in rows)
        data = fixed_file(fixed_header(), *(fixed_data(r) for r in rows), fixed_trailer(len(rows), total), FIXED_END)
        bad_line = bad_index + 2
    errors = _reject(session, cipher, data, "mixed", layout)
    line_errors = [e for e in errors if e.field not in ("record_count", "total_amount")]
    assert [(e.line, e.field) for e in line_errors] == [(bad_line, "amount")], _describe(errors)
    assert ledger_state(database) == ledger


def test_a_rejected_file_leaves_no_trace_and_imports_once_the_ward_has_configured_its_fund(
        ledger, database, session, cipher) -> None:
    """Rejection must not record the file's digest: the same bytes import once the fund exists."""
    data = (BAD_DIR / "csv_unknown_fund.csv").read_bytes()
    _reject(session, cipher, data, "csv_unknown_fund.csv", CSV)
    sumida = dict(MUNICIPALITIES[0], funds=[dict(code="99", name="保育料", name_en="Nursery fees",
                                                 channels=["card"], account="一般会計",
                                                 revenue_item="使用料及手数料/使用料/保育料")])
    seed_reference_data(session, [sumida])
    result = import_ledger(session, cipher, data, filename="csv_unknown_fund.csv")
    assert not result.already_imported
    assert (result.created, result.amended, result.voided_slips) == (2, 1, 1)


# --- faults that once slipped through: each is named at its line and field ---------------

MOJIBAKE_NAME = "田中　美咲"  # its UTF-8 bytes happen to be valid cp932: 逕ｰ荳ｭ縲\x80鄒主調


def gap(layout: str, data: bytes, line: int | None, field: str | None, id: str, reason: str):  # type: ignore[no-untyped-def]
    """A case that an earlier version accepted or misreported; `reason` says how."""
    return pytest.param(layout, data, line, field, id=id)


LENIENT_DATE = "domain/layouts convert(): strptime takes months and days without their leading zero"
GAPS = [
    gap(CSV, standard_csv(csv_line(dict(GOOD, due_date="2026-6-30"))), 4, "due_date",
        "csv-date-without-leading-zero", LENIENT_DATE),
    gap(FIXED, standard_fixed(fixed_data(GOOD, due_date=b"2026630 ")), 4, "due_date",
        "fixed-seven-digit-date", LENIENT_DATE),
    gap(CSV, standard_csv(csv_line(dict(GOOD, assessment_id="01-2026-\U0001F600"))), 4, "assessment_id",
        "assessment-id-not-writable-in-cp932",
        "convert() measures max_bytes with errors='replace': a character cp932 cannot hold counts as one byte"),
    gap(CSV, standard_csv(csv_line(dict(GOOD, payer_name="伊藤\x85陽菜"))), 4, "payer_name",
        "c1-control-character", "convert() refuses only controls below 0x20"),
    gap(CSV, standard_csv(csv_line(dict(GOOD, payer_name="伊藤\x7f陽菜"))), 4, "payer_name",
        "delete-character", "convert() refuses only controls below 0x20"),
    gap(FIXED, fixed_file(fixed_header(), *(fixed_data(dict(r, payer_name=MOJIBAKE_NAME), encoding="utf-8")
                                            for r in (AMENDED, NEW, GOOD)),
                          fixed_trailer(3, sum(int(r["amount"]) for r in (AMENDED, NEW, GOOD))), FIXED_END),
        None, None, "utf8-that-decodes-as-cp932",
        "a UTF-8 file whose names happen to be valid cp932 is imported as mojibake"),
    gap(FIXED, fixed_file(fixed_header("131076"), fixed_data(AMENDED), fixed_data(NEW), fixed_data(GOOD),
                          fixed_trailer(3, sum(int(r["amount"]) for r in (AMENDED, NEW, GOOD))), FIXED_END),
        1, "municipality_code", "header-municipality-with-wrong-check-digit",
        "the header's code is never checked; every data line is blamed instead"),
]


@pytest.mark.parametrize(("layout", "data", "line", "field"), GAPS)
def test_known_gap_file_is_rejected_naming_the_line_and_field_at_fault(layout, data, line, field, ledger, database,
                                                                        session, cipher) -> None:
    with pytest.raises(LedgerFileRejected) as caught:
        import_ledger(session, cipher, data, filename="gap", layout_name=layout)
    session.rollback()
    if line is not None:
        assert (line, field) in {(e.line, e.field) for e in caught.value.errors}, _describe(caught.value.errors)
    assert ledger_state(database) == ledger


def test_one_spoilt_fixed_record_is_reported_once_and_not_also_as_a_trailer_mismatch(ledger, session,
                                                                                      cipher) -> None:
    data = standard_fixed(fixed_data(dict(GOOD, fiscal_year="2025", due_date="2026-02-30")))
    errors = _reject(session, cipher, data, "one-fault.dat", FIXED)
    assert [(e.line, e.field) for e in errors] == [(4, "due_date")], _describe(errors)


def test_a_split_character_in_a_required_field_is_reported_once(ledger, session, cipher) -> None:
    broken = pad("01-2026-0000000005", 31) + "佐".encode("cp932")[:1]
    errors = _reject(session, cipher, standard_fixed(fixed_data(GOOD, assessment_id=broken)), "split.dat", FIXED)
    assert [e.message for e in errors if (e.line, e.field) == (4, "assessment_id")] == [
        "is not valid cp932 (a broken or split two-byte character?)"], _describe(errors)
