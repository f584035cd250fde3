"""The eLTAX adapter reads the data as the ward receives it: a layout table and a method table, all checked."""
from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from adapters.agency import AgencyFileRejected
from adapters.eltax import make_eltax_adapter

WARD_LAYOUT = """
name = "ward-eltax"
format = "csv"
encoding = "cp932"
header_line = false

[records.data]
fields = [
  { name = "paid_on", type = "date", format = "%Y%m%d" },
  { name = "paid_time", type = "time", format = "%H%M%S" },
  { name = "record_id", type = "code", max_bytes = 40 },
  { name = "el_number", type = "digits", max_bytes = 32 },
  { name = "method", type = "digits", length = 2 },
  { name = "amount", type = "integer", min = 1, max = 9999999999 },
  { name = "remitted_on", type = "date", format = "%Y%m%d", null_values = ["00000000"] },
]
"""


def test_a_ward_maps_its_own_columns_dates_and_method_codes(tmp_path: Path) -> None:
    layout = tmp_path / "ward-eltax.toml"
    layout.write_text(WARD_LAYOUT, "utf-8")
    adapter = make_eltax_adapter("eltax-csv", {"layout": str(layout), "remitter_kana": "ﾁﾎｳｾﾞｲｷｮｳﾄﾞｳｷｺｳ",
                                               "methods": {"01": "card", "02": "netbank", "03": "app",
                                                           "04": "bank_counter"}})

    read = adapter.read(b"20260710,235959,A-1,0123456789,04,12300,20260717\r\n"
                        b"20260711,080000,A-2,0123456780,01,500,00000000\r\n")

    first, second = read.payments
    assert (first.record_id, first.el_number, first.amount, first.method) == ("A-1", "0123456789", 12_300,
                                                                            "bank_counter")
    assert (first.paid_on, first.paid_time, first.remitted_on) == (date(2026, 7, 10), time(23, 59, 59),
                                                                   date(2026, 7, 17))
    assert (second.method, second.remitted_on) == ("card", None)
    assert adapter.remitter_kana == ("ﾁﾎｳｾﾞｲｷｮｳﾄﾞｳｷｺｳ",)
    assert first.match_key != second.match_key and len(first.match_key) == 32
    assert first.text == "20260710,235959,A-1,0123456789,04,12300,20260717"  # the record as received


WARD_FIXED_LAYOUT = """
name = "ward-eltax-fixed"
format = "fixed"
encoding = "cp932"
record_length = 75
kind_length = 1

[records.data]
kind = "2"
fields = [
  { name = "paid_on", type = "date", format = "%Y%m%d", length = 8 },
  { name = "paid_time", type = "time", format = "%H%M%S", length = 6 },
  { name = "record_id", type = "code", length = 10 },
  { name = "el_number", type = "digits", length = 20 },
  { name = "method", type = "digits", length = 2 },
  { name = "amount", type = "integer", min = 1, max = 9999999999, length = 10 },
  { name = "remitted_on", type = "date", format = "%Y%m%d", null_values = ["00000000"], length = 8 },
  { name = "note", type = "text", length = 10, optional = true },
]
"""


def test_a_fixed_width_records_line_as_received_is_cut_from_the_files_bytes(tmp_path: Path) -> None:
    layout = tmp_path / "ward-eltax-fixed.toml"
    layout.write_text(WARD_FIXED_LAYOUT, "utf-8")
    adapter = make_eltax_adapter("eltax-csv", {"layout": str(layout), "methods": {"01": "card", "04": "bank_counter"}})
    # kind, paid on, at, record id, eL番号, method, amount, remitted on, note (two-byte characters in cp932)
    records = ["2" + "20260710" + "235959" + "A-1       " + "01234567890123456789" + "04" + "0000012300" + "20260717"
               + "窓口      ",
               "2" + "20260711" + "080000" + "A-2       " + "01234567890123456780" + "01" + "0000000500" + "00000000"
               + " " * 10]

    read = adapter.read(b"".join(record.encode("cp932") + b"\r\n" for record in records))

    assert [(p.record_id, p.amount, p.text) for p in read.payments] == [("A-1", 12_300, records[0]),
                                                                        ("A-2", 500, records[1])]


def test_a_method_code_the_table_does_not_know_is_a_line_error() -> None:
    adapter = make_eltax_adapter("eltax-csv", {})
    data = (b"record_id,el_number,amount,paid_on,paid_time,method,remitted_on\n"
            b"R1,123,500,2026-07-10,10:00:00,cash,\n")

    with pytest.raises(AgencyFileRejected) as rejected:
        adapter.read(data)

    assert [str(e) for e in rejected.value.errors] == [
        "line 2, field method: unknown method 'cash'; known: app, bank_counter, card, netbank"]


def test_a_file_without_payments_and_a_wrong_header_are_refused() -> None:
    adapter = make_eltax_adapter("eltax-csv", {})
    with pytest.raises(AgencyFileRejected, match="header but no records"):
        adapter.read(b"record_id,el_number,amount,paid_on,paid_time,method,remitted_on\n")
    with pytest.raises(AgencyFileRejected, match="header must be"):
        adapter.read(b"id,el,amount\nR1,123,500\n")


def test_the_configuration_is_checked_when_the_adapter_is_built() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        make_eltax_adapter("eltax-csv", {"pull_url": "https://example.invalid"})
    with pytest.raises(ValueError, match="methods map to cash"):
        make_eltax_adapter("eltax-csv", {"methods": {"9": "cash"}})
