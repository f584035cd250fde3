"""The barcode as SVG and PNG: GS1-128 with the same geometry as the printed slip."""
from __future__ import annotations

import io
from datetime import date
from itertools import groupby
from xml.etree import ElementTree

import pytest
import zxingcpp
from PIL import Image

from domain.barcode import BarcodeError, SlipBarcode, encode
from gateway.rendering import slip_pdf
from gateway.rendering.barcode_image import PNG_DPI, barcode_png, barcode_svg

SVG = "{http://www.w3.org/2000/svg}"
CODE128 = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.Code128)
DIGITS = encode(
    SlipBarcode(
        company_code="912345",
        client_code="01234",
        slip_number="2600000000000015",
        reissue=1,
        store_deadline=date(2026, 7, 31),
        amount=12_300,
    )
)
BARS = 25 * 3 + 4  # three bars in each of 25 symbol characters, four in Stop


def test_the_svg_is_well_formed_with_one_rect_per_bar_and_the_digits() -> None:
    root = ElementTree.fromstring(barcode_svg(DIGITS))
    assert root.tag == f"{SVG}svg"
    rects = list(root.iter(f"{SVG}rect"))
    bars = [rect for rect in rects if rect.get("width") != "100%"]  # the rest is background
    assert len(bars) == BARS
    assert root.get("width") == f"{slip_pdf.SYMBOL_WIDTH_MM:.3f}mm"
    assert {bar.get("height") for bar in bars} == {f"{slip_pdf.BAR_HEIGHT_MM:.3f}mm"}
    assert [text.text for text in root.iter(f"{SVG}text")] == [DIGITS[:22], DIGITS[22:]]


def test_the_svg_keeps_the_quiet_zone_clear() -> None:
    root = ElementTree.fromstring(barcode_svg(DIGITS))
    lefts = [float(rect.get("x", "0").removesuffix("mm")) for rect in root.iter(f"{SVG}rect")]
    assert min(x for x in lefts if x > 0) == pytest.approx(slip_pdf.QUIET_ZONE_MM)


def png_image() -> Image.Image:
    return Image.open(io.BytesIO(barcode_png(DIGITS))).convert("L")


def is_ink(image: Image.Image, x: int, y: int) -> bool:
    level = image.getpixel((x, y))
    assert isinstance(level, int), "the PNG is greyscale"
    return level < 128


def test_the_png_scans_as_gs1_with_the_44_digits() -> None:
    [found] = zxingcpp.read_barcodes(png_image(), formats=CODE128)
    assert found.symbology_identifier == "]C1"
    assert found.content_type == zxingcpp.ContentType.GS1
    assert found.bytes.decode("ascii") == DIGITS


def test_the_png_bars_are_whole_modules_at_the_slip_geometry() -> None:
    image = png_image()
    row = image.height // 4  # through the bars, above the digits
    inked = [x for x in range(image.width) if is_ink(image, x, row)]
    dot_mm = 25.4 / PNG_DPI
    assert inked[0] * dot_mm == pytest.approx(slip_pdf.QUIET_ZONE_MM, abs=dot_mm)
    assert image.width * dot_mm == pytest.approx(slip_pdf.SYMBOL_WIDTH_MM, abs=dot_mm)
    scanline = [is_ink(image, x, row) for x in range(inked[0], inked[-1] + 1)]
    runs = [len(list(run)) for _, run in groupby(scanline)]
    module_dots = round(slip_pdf.MODULE_WIDTH_MM / dot_mm)
    # Every bar and space a whole number of modules: no dot lost or gained to rounding.
    assert all(run % module_dots == 0 for run in runs), runs
    assert sum(runs) == slip_pdf.SYMBOL_MODULES * module_dots


@pytest.mark.parametrize(
    "digits",
    [
        DIGITS[:-1] + str((int(DIGITS[-1]) + 1) % 10),  # wrong check digit
        DIGITS[:-1],  # 43 digits
        "(91)" + DIGITS[2:],  # the human-readable form, not the data
        "92" + DIGITS[2:],  # another application identifier
    ],
)
@pytest.mark.parametrize("render", [barcode_svg, barcode_png])
def test_anything_but_a_valid_barcode_is_refused(render: object, digits: str) -> None:
    with pytest.raises(BarcodeError):
        render(digits)  # type: ignore[operator]
