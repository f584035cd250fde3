"""The payment-slip barcode as an SVG or PNG image, for screens and other documents.

Same geometry as the printed slip (gateway.rendering.slip_pdf). python-barcode's
`gs1_128` prepends FNC1 itself, so it gets the bare digits: "(91)" would be encoded as
literal parentheses.
"""
from __future__ import annotations

import io
from xml.dom import minidom

import barcode
from barcode.writer import ImageWriter, SVGWriter, mm2px
from PIL import Image, ImageDraw, ImageFont

from domain.barcode import BarcodeError, is_valid
from gateway.rendering.slip_pdf import BAR_HEIGHT_MM, MODULE_WIDTH_MM, QUIET_ZONE_MM

PNG_DPI = 300  # the module is then exactly 2 dots wide
DIGITS_FONT_PT = 8.0
_MARGIN_MM = 1.0
_DIGITS_TOP_MM = _MARGIN_MM + BAR_HEIGHT_MM + 1.0
_LINE_MM = DIGITS_FONT_PT * 25.4 / 72 * 1.25
_HEIGHT_MM = _DIGITS_TOP_MM + 2 * _LINE_MM + _MARGIN_MM
_WRITER_OPTIONS = {
    "module_width": MODULE_WIDTH_MM,
    "module_height": BAR_HEIGHT_MM,
    "quiet_zone": QUIET_ZONE_MM,
    "margin_top": _MARGIN_MM,
    "margin_bottom": _MARGIN_MM,
    "background": "white",
    "foreground": "black",
    "write_text": False,  # its text layout is not ours; the digits are added below
}


class _PixelGridImageWriter(ImageWriter):
    """ImageWriter whose bar edges are rounded to the nearest pixel."""

    def _paint_module(self, xpos: float, ypos: float, width: float, color: str) -> None:
        # python-barcode hands Pillow float edges, which it truncates: 2-dot modules come
        # out 1 or 3 dots wide at 300 dpi and readers reject the symbol.
        left, right = round(mm2px(xpos, self.dpi)), round(mm2px(xpos + width, self.dpi))
        top = round(mm2px(ypos, self.dpi))
        bottom = round(mm2px(ypos + self.module_height, self.dpi))
        if right > left:
            self._draw.rectangle([(left, top), (right - 1, bottom - 1)], fill=color)


def barcode_svg(digits: str) -> bytes:
    """Return the barcode as an SVG document sized in mm, the 44 digits in two lines below."""
    _require_valid(digits)
    svg = barcode.get("gs1_128", digits, writer=SVGWriter()).render(_WRITER_OPTIONS)
    document = minidom.parseString(svg)  # noqa: S318 - python-barcode's output, not outside input
    root = document.documentElement
    if root is None:
        raise RuntimeError("python-barcode returned an SVG without a root element")
    width_mm = float(root.getAttribute("width").removesuffix("mm"))
    root.setAttribute("height", f"{_HEIGHT_MM:.3f}mm")
    group = root.getElementsByTagName("g")[0]
    for index, line in enumerate(_digit_lines(digits)):
        text = document.createElement("text")
        text.setAttribute("x", f"{width_mm / 2:.3f}mm")
        text.setAttribute("y", f"{_DIGITS_TOP_MM + (index + 0.8) * _LINE_MM:.3f}mm")
        text.setAttribute(
            "style", f"fill:black;font-family:monospace;font-size:{DIGITS_FONT_PT}pt;text-anchor:middle"
        )
        text.appendChild(document.createTextNode(line))
        group.appendChild(text)
    return document.toxml(encoding="UTF-8")


def barcode_png(digits: str) -> bytes:
    """Return the barcode as a greyscale PNG at PNG_DPI, the 44 digits in two lines below."""
    _require_valid(digits)
    writer = _PixelGridImageWriter(format="PNG", mode="L", dpi=PNG_DPI)
    bars = barcode.get("gs1_128", digits, writer=writer).render(_WRITER_OPTIONS)
    image = Image.new("L", (bars.width, round(mm2px(_HEIGHT_MM, PNG_DPI))), 255)
    image.paste(bars, (0, 0))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(writer.font_path, round(DIGITS_FONT_PT * PNG_DPI / 72))
    for index, line in enumerate(_digit_lines(digits)):
        top = mm2px(_DIGITS_TOP_MM + index * _LINE_MM, PNG_DPI)
        draw.text((bars.width / 2, top), line, font=font, fill=0, anchor="mt")
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(PNG_DPI, PNG_DPI))
    return out.getvalue()


def _require_valid(digits: str) -> None:
    if not is_valid(digits):
        raise BarcodeError(f"not a valid 44-digit AI 91 barcode: {digits!r}")


def _digit_lines(digits: str) -> tuple[str, str]:
    return digits[:22], digits[22:]
