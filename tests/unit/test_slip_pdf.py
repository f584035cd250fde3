"""Printed slips: the barcode scans as GS1-128 with the issued fields, at the mandated size.

Rasterises with poppler-utils (pdftoppm, pdffonts, pdftotext) and reads back with
zxing-cpp. A missing tool fails the test: CI installs them, and a skipped print check
would pass silently.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from reportlab.lib.units import mm
from reportlab.pdfbase.ttfonts import TTFont

from domain.barcode import BarcodeError, SlipBarcode, decode, encode
from domain.identifiers import make_slip_number
from gateway.rendering import slip_pdf
from gateway.rendering.slip_pdf import PrintableSlip, barcode_symbol, render_slips

DPI = 300
DOT_MM = 25.4 / DPI
DARK = 128  # grey level below which a pixel counts as ink
CODE128 = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.Code128)
QR_CODE = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def issued(serial: int, amount: int, *, reissue: int = 0, deadline: date | None = None) -> SlipBarcode:
    return SlipBarcode(
        company_code="912345",
        client_code="01234",
        slip_number=make_slip_number(2026, serial),
        reissue=reissue,
        store_deadline=deadline,
        amount=amount,
    )


def printable(fields: SlipBarcode | None, *, number: str, amount: int, **changes: object) -> PrintableSlip:
    slip = PrintableSlip(
        number=number,
        barcode=encode(fields) if fields else None,
        amount=amount,
        due_date=date(2026, 6, 30),
        store_deadline=fields.store_deadline if fields else None,
        fund_name="特別区民税・都民税（普通徴収）",
        fiscal_year=2026,
        installment=1,
        payer_name="見本 花子",
        pay_url=f"https://pay.example.jp/pay/{number}",
        reissue=fields.reissue if fields else 0,
        municipality_name="墨田区",
    )
    return replace(slip, **changes)  # type: ignore[arg-type]


ORIGINAL = issued(1, 12_300, deadline=date(2026, 7, 31))
REISSUED_AT_THE_LIMIT = issued(2, 300_000, reissue=2, deadline=None)
OVER_LIMIT_NUMBER = make_slip_number(2026, 3)
ALTERNATIVES = ("区役所・出張所の窓口", "指定金融機関の窓口")
WITH_BARCODE = [ORIGINAL, REISSUED_AT_THE_LIMIT]


def slips() -> list[PrintableSlip]:
    return [
        printable(ORIGINAL, number=ORIGINAL.slip_number, amount=ORIGINAL.amount),
        printable(
            REISSUED_AT_THE_LIMIT, number=REISSUED_AT_THE_LIMIT.slip_number, amount=300_000
        ),
        printable(
            None, number=OVER_LIMIT_NUMBER, amount=1_234_500, alternatives=ALTERNATIVES
        ),
    ]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install poppler-utils (CI does)")
    return path


@dataclass(frozen=True)
class Rendered:
    pdf: Path
    pages: list[Image.Image]
    page_count: int
    callbacks: int


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    folder = tmp_path_factory.mktemp("slips")
    pdf = folder / "slips.pdf"
    calls: list[None] = []
    with pdf.open("wb") as out:
        count = render_slips(iter(slips()), out, on_page=lambda: calls.append(None))
    subprocess.run([tool("pdftoppm"), "-r", str(DPI), "-png", str(pdf), str(folder / "page")], check=True)
    pages = [Image.open(path).convert("L") for path in sorted(folder.glob("page-*.png"))]
    return Rendered(pdf, pages, count, len(calls))


def inked(page: Image.Image, x: int, y: int) -> bool:
    level = page.getpixel((x, y))
    assert isinstance(level, int), "pages are greyscale"
    return level < DARK


def linear_barcodes(page: Image.Image) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(page, formats=CODE128)


def test_every_slip_becomes_one_page_of_one_pdf(rendered: Rendered) -> None:
    assert rendered.page_count == 3
    assert rendered.callbacks == 3
    assert len(rendered.pages) == 3


@pytest.mark.parametrize("index", range(len(WITH_BARCODE)))
def test_the_printed_barcode_scans_as_gs1_with_every_field_as_issued(rendered: Rendered, index: int) -> None:
    [found] = linear_barcodes(rendered.pages[index])
    digits = encode(WITH_BARCODE[index])
    assert found.symbology_identifier == "]C1"  # GS1-128; plain Code 128 would be ]C0
    assert found.content_type == zxingcpp.ContentType.GS1
    # zxing shows GS1 data with its AI in parentheses; the raw bytes are the 44 digits.
    assert found.text == f"(91){digits[2:]}"
    scanned = found.bytes.decode("ascii")
    assert scanned == digits
    assert decode(scanned) == WITH_BARCODE[index]


def test_the_slip_over_the_limit_carries_no_barcode(rendered: Rendered) -> None:
    found = zxingcpp.read_barcodes(rendered.pages[2])  # any symbology
    assert [code.format for code in found] == [zxingcpp.BarcodeFormat.QRCode]


@pytest.mark.parametrize("index", range(3))
def test_every_page_has_a_qr_code_with_its_pay_url(rendered: Rendered, index: int) -> None:
    found = zxingcpp.read_barcodes(rendered.pages[index], formats=QR_CODE)
    assert [code.text for code in found] == [slips()[index].pay_url]


def test_the_geometry_constants_keep_the_guideline_limits() -> None:
    assert slip_pdf.SYMBOL_WIDTH_MM <= slip_pdf.MAX_SYMBOL_WIDTH_MM == 60
    assert slip_pdf.QUIET_ZONE_MM >= slip_pdf.MIN_QUIET_ZONE_MM == 2.54
    assert slip_pdf.BAR_HEIGHT_MM >= slip_pdf.MIN_BAR_HEIGHT_MM == 10
    assert slip_pdf.MODULE_WIDTH_MM <= 0.19


def test_the_reportlab_symbol_is_start_c_fnc1_and_exactly_as_wide_as_computed() -> None:
    symbol = barcode_symbol(encode(ORIGINAL))
    assert symbol.width == pytest.approx(slip_pdf.SYMBOL_WIDTH_MM * mm)
    assert symbol.height == pytest.approx(slip_pdf.BAR_HEIGHT_MM * mm)
    start_c, fnc1, stop = 105, 102, 106
    assert symbol.encoded[:2] == [start_c, fnc1]
    assert symbol.encoded[-1] == stop
    assert len(symbol.encoded) == 26  # 288 modules: 25 symbols of 11, Stop of 13


def bar_extent(page: Image.Image, found: zxingcpp.Barcode) -> tuple[int, int, int]:
    """Return the first and last inked column on a scanline through the bars, and its row."""
    position = found.position
    row = (position.top_left.y + position.bottom_left.y) // 2
    quiet = round(slip_pdf.QUIET_ZONE_MM / DOT_MM)
    start = position.top_left.x - quiet - 5
    end = position.top_right.x + quiet + 5
    columns = [x for x in range(start, end + 1) if inked(page, x, row)]
    return columns[0], columns[-1], row


@pytest.mark.parametrize("index", range(len(WITH_BARCODE)))
def test_the_printed_symbol_measures_within_the_guideline(rendered: Rendered, index: int) -> None:
    page = rendered.pages[index]
    [found] = linear_barcodes(page)
    first, last, row = bar_extent(page, found)
    bars_mm = (last - first + 1) * DOT_MM
    assert bars_mm == pytest.approx(slip_pdf.SYMBOL_MODULES * slip_pdf.MODULE_WIDTH_MM, abs=DOT_MM)
    assert bars_mm + 2 * slip_pdf.QUIET_ZONE_MM <= 60
    quiet = range(1, round(2.54 / DOT_MM) + 1)
    assert not any(inked(page, first - dx, row) for dx in quiet)
    assert not any(inked(page, last + dx, row) for dx in quiet)
    column = first + 1  # inside the Start character's first bar
    top = bottom = row
    while inked(page, column, top - 1):
        top -= 1
    while inked(page, column, bottom + 1):
        bottom += 1
    assert (bottom - top + 1) * DOT_MM >= 10


def test_the_font_is_embedded_and_no_other_font_is_referenced(rendered: Rendered) -> None:
    listing = subprocess.run(
        [tool("pdffonts"), str(rendered.pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    fonts = [(line.split()[0], line.split()[-5]) for line in listing]
    assert fonts, "pdffonts listed no font"
    assert all(name.endswith("+IPAexGothic") and embedded == "yes" for name, embedded in fonts), fonts


def page_text(rendered: Rendered, page: int) -> str:
    text = subprocess.run(
        [tool("pdftotext"), "-f", str(page), "-l", str(page), str(rendered.pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.sub(r"\s", "", text)  # grouping and line breaks are layout, not content


def test_the_slip_text_is_extractable(rendered: Rendered) -> None:
    text = page_text(rendered, 1)
    assert "12,300円" in text
    assert encode(ORIGINAL) in text
    assert ORIGINAL.slip_number in text
    assert "令和8年度（2026年度）" in text
    assert "第1期" in text
    assert "見本花子様" in text
    assert "令和8年6月30日（火）" in text
    assert "コンビニ・アプリ支払期限令和8年7月31日（金）" in text
    assert "オンライン決済（クレジットカード・PayPay）はこちら" in text
    assert "再発行" not in text


def test_a_reissued_slip_is_marked_with_its_count(rendered: Rendered) -> None:
    text = page_text(rendered, 2)
    assert "再発行（2回目）" in text
    assert "300,000円" in text


def test_the_over_limit_slip_explains_why_and_how_else_to_pay(rendered: Rendered) -> None:
    text = page_text(rendered, 3)
    assert "1,234,500円" in text
    assert slip_pdf.OVER_LIMIT_NOTICE in text
    assert all(alternative in text for alternative in ALTERNATIVES)
    assert OVER_LIMIT_NUMBER in text


def test_a_barcode_that_disagrees_with_the_printed_amount_is_refused(tmp_path: Path) -> None:
    slip = printable(ORIGINAL, number=ORIGINAL.slip_number, amount=12_400)
    with (tmp_path / "x.pdf").open("wb") as out, pytest.raises(BarcodeError, match="differ"):
        render_slips([slip], out)


def test_a_barcode_with_a_wrong_check_digit_is_refused(tmp_path: Path) -> None:
    slip = printable(ORIGINAL, number=ORIGINAL.slip_number, amount=ORIGINAL.amount)
    assert slip.barcode is not None
    broken = slip.barcode[:-1] + str((int(slip.barcode[-1]) + 1) % 10)
    with (tmp_path / "x.pdf").open("wb") as out, pytest.raises(BarcodeError, match="check digit"):
        render_slips([replace(slip, barcode=broken)], out)


@pytest.mark.parametrize(
    ("fiscal_year", "label"),
    [(2026, "令和8年度（2026年度）"), (2019, "令和元年度（2019年度）"), (2018, "2018年度")],
)
def test_fiscal_years_print_in_the_reiwa_era(fiscal_year: int, label: str) -> None:
    assert slip_pdf.fiscal_year_label(fiscal_year) == label


def test_the_font_comes_from_the_environment_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    font = tmp_path / "slip.ttf"
    font.write_bytes(b"")
    monkeypatch.setenv(slip_pdf.FONT_ENV_VAR, str(font))
    assert slip_pdf.slip_font_path() == str(font)
    monkeypatch.setenv(slip_pdf.FONT_ENV_VAR, str(tmp_path / "missing.ttf"))
    with pytest.raises(FileNotFoundError):
        slip_pdf.slip_font_path()


def test_fontconfig_finds_ipaex_gothic_and_not_a_substitute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(slip_pdf.FONT_ENV_VAR, raising=False)
    assert TTFont("probe", slip_pdf.slip_font_path()).face.name == b"IPAexGothic"


def test_no_slips_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    pdf = tmp_path / "none.pdf"
    with pdf.open("wb") as out, pytest.raises(ValueError, match="no slips"):
        render_slips([], out)
    assert pdf.read_bytes() == b""


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2026, 6, 30), "令和8年6月30日（火）"),
        (date(2019, 5, 1), "令和元年5月1日（水）"),
        (date(2019, 4, 30), "2019年4月30日（火）"),
    ],
)
def test_dates_print_in_the_reiwa_era_with_their_weekday(day: date, label: str) -> None:
    assert slip_pdf.date_label(day) == label
