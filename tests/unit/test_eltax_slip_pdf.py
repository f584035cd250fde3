"""The eL-QR on printed slips: it scans at 300 dpi to the payload's bytes exactly, beside the GS1-128.

Renders a few hundred slips with payloads (the longest allowed, multibyte, every printable
ASCII character) into one PDF, rasterises it with pdftoppm and reads every symbol back
with zxing-cpp. Also: the eL番号 and the additions printed apart, and the 督促状 title.
"""
from __future__ import annotations

import random
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from domain.barcode import encode
from domain.eltax import MAX_EL_QR_BYTES, el_qr_problem
from gateway.rendering import slip_pdf
from gateway.rendering.slip_pdf import render_slips
from tests.unit.test_slip_pdf import DPI, QR_CODE, inked, issued, linear_barcodes, printable, tool

SLIPS = 240
QR_BOX_MM = (8, 140, 62, 200)  # left, top, right, bottom: where the eL-QR of a barcoded slip sits
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
KANA_KANJI = "あいうえおアイウエオ地方税統一納付番号確認区分ｱｲｳｴｵ￥〜－"


def payloads() -> list[str]:
    rng = random.Random(14)
    fixed = [
        ("https://example.invalid/eltax?d=" + "0123456789ABCDEF" * 40)[:MAX_EL_QR_BYTES],  # longest, ASCII
        "地" * 170 + "QR",  # 512 bytes: 170 three-byte kanji and two letters
        ASCII.strip(" "),
        "0" * MAX_EL_QR_BYTES,  # digits only: still printed in byte mode
        "A",
        "eL-QR 地方税 🙂 emoji",  # a four-byte character
    ]
    out = list(fixed)
    while len(out) < SLIPS:
        alphabet = ASCII if rng.random() < 0.6 else ASCII + KANA_KANJI
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))).strip(" ") or "x"
        while len(text.encode("utf-8")) > MAX_EL_QR_BYTES:
            text = text[:-1].rstrip(" ")
        out.append(text)
    assert all(el_qr_problem(p) is None for p in out)
    assert max(len(p.encode("utf-8")) for p in out) == MAX_EL_QR_BYTES
    return out


def eltax_slips() -> list[slip_pdf.PrintableSlip]:
    slips = []
    for index, payload in enumerate(payloads()):
        fields = issued(100 + index, 12_300)
        slip = printable(fields, number=fields.slip_number, amount=12_300, el_qr=payload,
                         el_number=f"{index:032d}", late_fee=1_000 if index % 3 else 0,
                         dunning_fee=100 if index % 3 == 2 else 0)
        slips.append(slip)
    return slips


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> list[list[zxingcpp.Barcode]]:
    """The QR codes read in each page's eL-QR box, at 300 dpi."""
    folder = tmp_path_factory.mktemp("eltax")
    pdf = folder / "slips.pdf"
    with pdf.open("wb") as out:
        assert render_slips(eltax_slips(), out) == SLIPS
    left, top, right, bottom = (round(v * DPI / 25.4) for v in QR_BOX_MM)
    subprocess.run([tool("pdftoppm"), "-r", str(DPI), "-gray", "-png", "-x", str(left), "-y", str(top),
                    "-W", str(right - left), "-H", str(bottom - top), str(pdf), str(folder / "p")], check=True)
    pages = sorted(folder.glob("p-*.png"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    return [zxingcpp.read_barcodes(_image(path), formats=QR_CODE) for path in pages]


def _image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("L")


def test_every_el_qr_decodes_to_its_payload_byte_for_byte(scanned: list[list[zxingcpp.Barcode]]) -> None:
    expected = [p.encode("utf-8") for p in payloads()]
    found = [[code.bytes for code in codes] for codes in scanned]
    wrong = [i for i, (codes, payload) in enumerate(zip(found, expected, strict=True)) if codes != [payload]]
    assert wrong == [], f"{len(wrong)} of {SLIPS} pages, first {wrong[:5]}"


def test_the_el_qr_is_level_m_with_modules_of_at_least_0_3_mm_and_a_4_module_quiet_zone(
        scanned: list[list[zxingcpp.Barcode]]) -> None:
    assert {codes[0].ec_level for codes in scanned} == {"M"}
    assert slip_pdf.EL_QR_MODULE_MM >= slip_pdf.EL_QR_MIN_MODULE_MM == 0.3
    assert slip_pdf.QR_QUIET_MODULES == 4
    versions = {int(codes[0].extra["Version"]) for codes in scanned}
    assert max(versions) == 18  # 512 bytes at level M
    largest = max(len(slip_pdf.el_qr_matrix(p)) for p in payloads())
    assert largest == 17 + 4 * 18 and (largest + 8) * slip_pdf.EL_QR_MODULE_MM < 34  # quiet zone in, in its box


def _page_of(slip: slip_pdf.PrintableSlip, folder: Path) -> tuple[Image.Image, str]:
    pdf = folder / "one.pdf"
    with pdf.open("wb") as out:
        render_slips([slip], out)
    subprocess.run([tool("pdftoppm"), "-r", str(DPI), "-gray", "-png", str(pdf), str(folder / "one")], check=True)
    text = subprocess.run([tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return _image(next(folder.glob("one*.png"))), re.sub(r"\s", "", text)


def test_the_gs1_128_the_el_qr_and_the_pay_link_each_scan_and_are_labelled_apart(tmp_path: Path) -> None:
    slip = eltax_slips()[1]  # the 512-byte multibyte payload, with a late fee
    page, text = _page_of(slip, tmp_path)

    [bar] = linear_barcodes(page)
    assert bar.symbology_identifier == "]C1" and bar.bytes.decode("ascii") == encode(issued(101, 12_300))
    qr = {code.bytes for code in zxingcpp.read_barcodes(page, formats=QR_CODE)}
    assert qr == {slip.el_qr.encode("utf-8"), slip.pay_url.encode("ascii")}  # type: ignore[union-attr]
    [el] = [code for code in zxingcpp.read_barcodes(page, formats=QR_CODE) if code.bytes != slip.pay_url.encode()]
    modules = 17 + 4 * int(el.extra["Version"])
    left, top = el.position.top_left.x, el.position.top_left.y
    width = el.position.top_right.x - left + 1
    assert width * 25.4 / DPI / modules >= 0.3  # module size as printed
    quiet = round(4 * slip_pdf.EL_QR_MODULE_MM * DPI / 25.4)  # 4 modules, in dots
    for x in range(left - quiet, left + width + quiet):  # the quiet zone above and below is blank
        assert not inked(page, x, top - quiet + 1) and not inked(page, x, top + width + quiet - 2)
    for y in range(top - quiet, top + width + quiet):  # and left and right
        assert not inked(page, left - quiet + 1, y) and not inked(page, left + width + quiet - 2, y)
    for label in (slip_pdf.STORE_HEADING, slip_pdf.EL_HEADING, slip_pdf.GATEWAY_ONLINE_HEADING):
        assert re.sub(r"\s", "", label) in text
    assert "eL番号" in text and slip.el_number in text  # type: ignore[operator]


def test_the_additions_are_shown_apart_and_a_dunning_fee_makes_the_slip_a_tokusokujo(tmp_path: Path) -> None:
    slip = eltax_slips()[2]
    assert (slip.late_fee, slip.dunning_fee) == (1_000, 100)
    _, text = _page_of(slip, tmp_path)

    assert "12,300円" in text and "本税11,200円" in text and "延滞金1,000円" in text and "督促手数料100円" in text
    assert "督促状" in text and "納付書" in text.replace("督促状", "")  # the title; notes still say 納付書


def test_a_slip_without_additions_or_eltax_data_prints_as_before(tmp_path: Path) -> None:
    fields = issued(7, 12_300)
    _, text = _page_of(printable(fields, number=fields.slip_number, amount=12_300), tmp_path)

    assert "延滞金" not in text and "督促" not in text and "eL" not in text and "内訳" not in text
    assert re.sub(r"\s", "", slip_pdf.ONLINE_HEADING) in text


def test_a_fee_that_is_not_a_tax_is_principal_as_honryo() -> None:
    fields = issued(8, 5_000)
    slip = printable(fields, number=fields.slip_number, amount=5_000, fund_name="国民健康保険料", late_fee=500)
    assert slip_pdf.additions_label(slip) == "本料 4,500円　延滞金 500円"


def test_additions_that_leave_no_principal_are_refused(tmp_path: Path) -> None:
    fields = issued(9, 5_000)
    slip = replace(printable(fields, number=fields.slip_number, amount=5_000), late_fee=4_900, dunning_fee=100)
    with (tmp_path / "x.pdf").open("wb") as out, pytest.raises(ValueError, match="no principal"):
        render_slips([slip], out)
