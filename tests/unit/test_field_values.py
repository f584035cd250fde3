"""A quick look into a core-system file before it is read: the values of one field (domain.layouts.field_values).

A file sent again is found on record by its digest and the wards its lines name
(gateway.services.ledger_files); these are the lines' values, read leniently.
"""
from __future__ import annotations

from datetime import date

import pytest

from domain.layouts import field_values, read
from gateway.layouts import load_layout
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from tests import zengin
from tests.unit.test_bank_statements import PREMIUMS, TAXES

ROWS = [*ward_rows("131091", 2026, 2), *ward_rows("131075", 2026, 2)]


def test_a_csv_file_gives_its_lines_values_in_order_whatever_the_columns_order() -> None:
    layout = load_layout("kokin-csv")
    data = ledger_file_bytes(ROWS, "kokin-csv", date(2026, 4, 1))
    header, *lines = data.split(b"\r\n" if b"\r\n" in data else b"\n")
    columns = header.split(b",")
    swapped = [columns[1], columns[0], *columns[2:]]  # the header names the columns; their order is free
    reordered = b"\n".join([b",".join(swapped), *(b",".join([c[1], c[0], *c[2:]]) for c in
                                                  (line.split(b",") for line in lines if line))]) + b"\n"

    expected = [row["municipality_code"] for row in ROWS]
    assert field_values(layout, data, "municipality_code") == expected
    assert field_values(layout, b"\xef\xbb\xbf" + reordered, "municipality_code") == expected
    assert field_values(layout, data, "municipality_code", limit=1) == ["131091"]
    records, errors = read(layout, data)  # the same values a full read finds
    assert not errors and [r.values["municipality_code"] for r in records] == expected


def test_a_fixed_width_file_gives_its_data_records_values_not_its_header_s() -> None:
    layout = load_layout("kokin-fixed")
    rows = [row for row in ROWS if row["municipality_code"] == "131075"]  # a fixed-width file is one ward's
    data = ledger_file_bytes(rows, "kokin-fixed", date(2026, 4, 1))

    assert field_values(layout, data, "municipality_code") == ["131075"] * len(rows)
    assert field_values(layout, data, "assessment_id", limit=2) == [row["assessment_id"] for row in rows[:2]]


def test_what_cannot_be_read_is_passed_over_and_a_field_the_layout_lacks_gives_nothing() -> None:
    layout = load_layout("kokin-csv")
    data = ledger_file_bytes(ROWS[:2], "kokin-csv", date(2026, 4, 1))

    assert field_values(layout, data + b"\n\n131075\n", "municipality_code") == ["131091", "131091", "131075"]
    assert field_values(layout, data, "no_such_field") == []
    assert field_values(layout, b"", "municipality_code") == []
    assert field_values(layout, b"not,the,header\n131075,x\n", "municipality_code") == []
    assert field_values(load_layout("kokin-fixed"), b"\x00" * 50, "municipality_code") == []


def test_a_quote_left_open_spoils_its_own_line_only() -> None:
    layout = load_layout("kokin-csv")
    header, first, *rest = ledger_file_bytes(ROWS * 300, "kokin-csv", date(2026, 4, 1)).split(b"\n")
    data = b"\n".join([header, b'"' + first, *rest])  # 1,200 lines after a quote never closed

    values = field_values(layout, data, "municipality_code")

    assert len(values) == len(ROWS) * 300 and values[0] != ROWS[0]["municipality_code"]  # its own line spoilt
    assert values[1:] == [row["municipality_code"] for row in ROWS * 300][1:]


@pytest.mark.parametrize("crlf", [True, False])
def test_a_fixed_width_file_with_or_without_line_breaks_gives_what_a_full_read_gives(crlf: bool) -> None:
    layout = load_layout("zengin-nyushukkin")  # a bank's records may follow each other with no line break
    data = zengin.statement(TAXES, PREMIUMS, crlf=crlf)
    records, errors = read(layout, data)
    numbers = [r.values["inquiry_number"] for r in records if r.kind == "data"]

    assert not errors and len(numbers) > 2
    assert field_values(layout, data, "inquiry_number") == numbers
    assert field_values(layout, data, "inquiry_number", limit=2) == numbers[:2]
