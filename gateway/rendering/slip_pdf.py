"""Printable payment slips (納付書): one A4 page per instalment, many pages in one PDF.

Barcode printing rules: shared/domain/payment-slip-barcode.md. The font is embedded
(IPAexGothic through TTFont) because reportlab's built-in CID fonts are not, and a slip
printed on another machine could come out blank.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from typing import BinaryIO

import segno
import zxingcpp
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from domain.barcode import MAX_BARCODE_AMOUNT, BarcodeError, decode

FONT_FAMILY = "IPAexGothic"
FONT_ENV_VAR = "KOKIN_SLIP_FONT"
_FONT_LOCK = threading.Lock()

# Barcode geometry. Limits from the GS1 Japan guideline; the module is 2 dots at 300 dpi
# (4 at 600 dpi) so that every bar edge falls on the printer's pixel grid.
MAX_SYMBOL_WIDTH_MM = 60.0
MIN_QUIET_ZONE_MM = 2.54
MIN_BAR_HEIGHT_MM = 10.0
SYMBOL_MODULES = 288  # Start C, FNC1, 22 digit pairs, mod-103 check (11 each), Stop (13)
MODULE_WIDTH_MM = 25.4 * 2 / 300  # 0.1693 mm
QUIET_ZONE_MM = 2.54
BAR_HEIGHT_MM = 12.0
SYMBOL_WIDTH_MM = SYMBOL_MODULES * MODULE_WIDTH_MM + 2 * QUIET_ZONE_MM  # 53.9 mm

PAGE_WIDTH, PAGE_HEIGHT = A4
_DOT = 72 / 300  # one 300 dpi dot, in points
_LEFT = 18 * mm
_RIGHT = PAGE_WIDTH - 18 * mm
_WEEKDAYS = "月火水木金土日"
_REIWA_START = date(2019, 5, 1)
# Kinsoku: closing punctuation, the long-vowel mark and small kana never begin a line.
_NO_LINE_START = "、。，．・ー）」』】〕！？ぁぃぅぇぉっゃゅょァィゥェォッャュョ"
_DARK_RUNS = re.compile(rb"\x01+")
_BULLET = "・"
QR_QUIET_MODULES = 4  # the blank border QR readers need

# The eL-QR (地方税統一QRコード): the payload's bytes, level M, a fixed module of 4 dots at 300 dpi (0.339 mm,
# above the 0.3 mm minimum, and on the 300 and 600 dpi grids), quiet zone of 4 modules. Its
# size follows the payload: 512 bytes make version 18, 97 modules with the quiet zone, 33 mm.
EL_QR_MODULE_MM = 25.4 * 4 / 300
EL_QR_MIN_MODULE_MM = 0.3
EL_QR_ERROR = "M"
_DARK_MODULES = bytes([1] + [0] * 255)  # zxing-cpp's pixel values -> segno's (1 = dark)
EL_HEADING = "地方税統一QRコード（eL-QR）：地方税お支払サイト・スマホアプリ・金融機関で"
EL_HINT = "地方税お支払サイトまたは対応するアプリ・金融機関でこのQRコードを読み取るか、eL番号を入力してください。"
STORE_HEADING = "コンビニ・バーコード決済（コンビニエンスストア・スマートフォン決済アプリ）"
ONLINE_HEADING = "オンライン決済（クレジットカード・PayPay）はこちら"
GATEWAY_ONLINE_HEADING = "この納付書のオンライン決済（クレジットカード・PayPay）はこちら"
ONLINE_HINT = "スマートフォンのカメラで読み取ると、この納付書のお支払いページが開きます。"
OVER_LIMIT_NOTICE = (
    "この納付書の金額は30万円を超えるため、コンビニエンスストア・"
    "スマートフォンアプリではお支払いいただけません。"
)
NO_BARCODE_NOTICE = (
    "この納付書はコンビニエンスストア・スマートフォンアプリではお支払いいただけません。"
)
_STORE_NOTES = (
    "コンビニエンスストアのレジ、または請求書払いに対応したスマートフォン決済アプリで"
    "バーコードを読み取ってお支払いください。",
    "支払期限を過ぎた納付書、金額を訂正した納付書、バーコードが汚れて読み取れない"
    "納付書はお取り扱いできません。",
    "アプリによって1回にお支払いできる金額の上限が異なります。",
)
_GENERAL_NOTES = (
    "納期限までにお納めください。",
    "すでにお支払い済みの場合は、この納付書は使わないでください（二重払いにご注意ください）。",
)


@dataclass(frozen=True)
class PrintableSlip:
    """What one printed slip shows, formatted by render_slips."""

    number: str  # 16-digit slip number
    barcode: str | None  # 44 digits, or None when the slip may not carry one
    amount: int  # yen
    due_date: date  # 納期限
    store_deadline: date | None  # 支払期限, the one in the barcode
    fund_name: str
    fiscal_year: int
    installment: int  # 期別
    payer_name: str  # may be empty
    pay_url: str  # printed as a QR code
    reissue: int  # 0 = original
    municipality_name: str
    alternatives: tuple[str, ...] = ()  # ways to pay when there is no barcode
    el_number: str | None = None  # eL番号 as printed (digits)
    el_qr: str | None = None  # the eL-QR payload, printed as given (its UTF-8 bytes)
    late_fee: int = 0  # 延滞金 within `amount`, yen
    dunning_fee: int = 0  # 督促手数料 within `amount`, yen

    @property
    def principal(self) -> int:
        return self.amount - self.late_fee - self.dunning_fee

    @property
    def is_dunning(self) -> bool:
        """A 督促状: 督促手数料 is charged only once a 督促状 is sent, so a slip that bills one is one."""
        return self.dunning_fee > 0


def slip_font_path() -> str:
    """Return the slip font file: $KOKIN_SLIP_FONT, else IPAexGothic as found by fontconfig."""
    override = os.environ.get(FONT_ENV_VAR)
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"{FONT_ENV_VAR}={override} is not a file")
        return override
    return _fontconfig_path(FONT_FAMILY)


@cache
def _fontconfig_path(family: str) -> str:
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        raise FileNotFoundError(f"fc-match not found: install fontconfig or set {FONT_ENV_VAR}")
    found = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [fc_match, "-f", "%{family}\n%{file}", family], capture_output=True, text=True, check=True
    ).stdout
    families, _, path = found.partition("\n")
    # fc-match answers with a fallback font rather than failing; a substitute would lack kanji.
    if family not in families.split(","):
        raise FileNotFoundError(f"font {family} not installed (fonts-ipaexfont) and {FONT_ENV_VAR} unset")
    return path


def registered_font() -> str:
    """The embedded IPAexGothic font's name, registered once per process."""
    # Once per process: TTFont parses the whole 6 MB file; it keeps subsets per document.
    # The lock keeps two threads' first renders from registering two copies.
    with _FONT_LOCK:
        if FONT_FAMILY not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(FONT_FAMILY, slip_font_path()))
    return FONT_FAMILY


def render_slips(
    slips: Iterable[PrintableSlip], out: BinaryIO, *, on_page: Callable[[], None] | None = None
) -> int:
    """Render every slip as one A4 page (one instalment per sheet) into ONE PDF; return the page count.

    Raises BarcodeError for a slip whose barcode disagrees with its printed fields, and
    ValueError for no slips at all (a PDF needs a page); `out` then gets nothing.
    """
    registered_font()
    # The initial font would otherwise be Helvetica: referenced, never embedded.
    canvas = Canvas(
        out, pagesize=A4, invariant=True, pageCompression=1, initialFontName=FONT_FAMILY
    )
    canvas.setTitle("納付書")
    canvas.setCreator("kokin-gateway")
    canvas.setAuthor("kokin-gateway")
    canvas.setSubject("公金の納付書")
    pages = 0
    for slip in slips:
        _check_barcode(slip)
        _check_additions(slip)
        _draw_page(canvas, slip)
        canvas.showPage()
        pages += 1
        if on_page is not None:
            on_page()
    if not pages:
        raise ValueError("no slips to render: a PDF needs at least one page")
    canvas.save()
    return pages


def _check_barcode(slip: PrintableSlip) -> None:
    if slip.barcode is None:
        return
    fields = decode(slip.barcode)
    # A store collects what the barcode says, so it must match what the resident reads.
    printed = (slip.number, slip.amount, slip.reissue, slip.store_deadline)
    encoded = (fields.slip_number, fields.amount, fields.reissue, fields.store_deadline)
    if printed != encoded:
        raise BarcodeError(f"slip {slip.number}: barcode fields {encoded} differ from {printed}")
    if slip.amount > MAX_BARCODE_AMOUNT:
        raise BarcodeError(f"slip {slip.number}: {slip.amount:,} yen may not carry a barcode")


def _check_additions(slip: PrintableSlip) -> None:
    if slip.late_fee < 0 or slip.dunning_fee < 0 or slip.principal <= 0:
        raise ValueError(f"slip {slip.number}: additions {slip.late_fee:,} + {slip.dunning_fee:,} leave no "
                         f"principal in {slip.amount:,} yen")


def _draw_page(canvas: Canvas, slip: PrintableSlip) -> None:
    _draw_header(canvas, slip)
    _draw_summary(canvas, slip)
    if slip.barcode is not None:
        bottom = _draw_store_section(canvas, slip.barcode)
    else:
        bottom = _draw_no_barcode_notice(canvas, slip)
    if slip.el_qr or slip.el_number:
        bottom = _draw_eltax_section(canvas, slip, bottom + 10)
    heading = GATEWAY_ONLINE_HEADING if slip.el_qr or slip.el_number else ONLINE_HEADING
    bottom = _draw_online_section(canvas, slip.pay_url, bottom + 12, heading)
    top = _draw_paragraph(canvas, bottom + 10, "ご注意", 9, _RIGHT - _LEFT)
    _draw_notes(canvas, top, _GENERAL_NOTES, 9, _RIGHT - _LEFT)


# Layout: positions are millimetres from the top of the page, converted by _y.


def _y(top_mm: float) -> float:
    return PAGE_HEIGHT - top_mm * mm


def _snap(points: float) -> float:
    return round(points / _DOT) * _DOT


def _draw_header(canvas: Canvas, slip: PrintableSlip) -> None:
    font = FONT_FAMILY
    canvas.setFont(font, 14)
    canvas.drawString(_LEFT, _y(20), slip.municipality_name)
    if slip.reissue:
        _draw_reissue_mark(canvas, slip.reissue)
    canvas.setFont(font, 11)
    canvas.drawString(_LEFT, _y(29), fiscal_year_label(slip.fiscal_year))
    installment = f"第{slip.installment}期"
    canvas.setFont(font, 17)
    canvas.drawRightString(_RIGHT, _y(38), installment)
    title = f"{slip.fund_name}　{'督促状' if slip.is_dunning else '納付書'}"
    room = _RIGHT - _LEFT - pdfmetrics.stringWidth(installment, font, 17) - 6 * mm
    canvas.setFont(font, _fitting_size(title, 17, room))
    canvas.drawString(_LEFT, _y(38), title)
    canvas.setLineWidth(0.8)
    canvas.line(_LEFT, _y(42), _RIGHT, _y(42))
    if slip.payer_name:
        addressee = f"{slip.payer_name} 様"
        canvas.setFont(font, _fitting_size(addressee, 14, _RIGHT - _LEFT))
        canvas.drawString(_LEFT, _y(52), addressee)


def _draw_reissue_mark(canvas: Canvas, reissue: int) -> None:
    text = f"再発行（{reissue}回目）"
    width = pdfmetrics.stringWidth(text, FONT_FAMILY, 12) + 6 * mm
    canvas.setLineWidth(1.2)
    canvas.rect(_RIGHT - width, _y(23), width, 8 * mm, stroke=1, fill=0)
    canvas.setFont(FONT_FAMILY, 12)
    canvas.drawCentredString(_RIGHT - width / 2, _y(20.4), text)


def _draw_summary(canvas: Canvas, slip: PrintableSlip) -> None:
    rows = (
        ("納付金額", f"{slip.amount:,}円", 20),
        *((("内訳", additions_label(slip), 10.5),) if slip.late_fee or slip.dunning_fee else ()),
        ("納期限", date_label(slip.due_date), 13),
        ("コンビニ・アプリ支払期限", _store_deadline_label(slip), 13),
        ("納付書番号", " ".join(slip.number[i : i + 4] for i in range(0, 16, 4)), 13),
    )
    # Four rows of 10 mm, or five of 8 with the additions apart: the box ends at 98 mm either way.
    top, label_width = 58, 62 * mm
    row_height = 40 / len(rows)
    height = len(rows) * row_height
    canvas.setFillGray(0.92)
    canvas.rect(_LEFT, _y(top + height), label_width, height * mm, stroke=0, fill=1)
    canvas.setFillGray(0)
    canvas.setLineWidth(0.6)
    canvas.rect(_LEFT, _y(top + height), _RIGHT - _LEFT, height * mm)
    canvas.line(_LEFT + label_width, _y(top), _LEFT + label_width, _y(top + height))
    for index, (label, value, size) in enumerate(rows):
        baseline = _y(top + index * row_height + row_height * 0.66)
        if index:
            canvas.line(_LEFT, _y(top + index * row_height), _RIGHT, _y(top + index * row_height))
        canvas.setFont(FONT_FAMILY, 10.5)
        canvas.drawString(_LEFT + 3 * mm, baseline, label)
        canvas.setFont(FONT_FAMILY, _fitting_size(value, size, _RIGHT - _LEFT - label_width - 7 * mm))
        canvas.drawString(_LEFT + label_width + 5 * mm, baseline - (1 if size > 13 else 0), value)


def principal_label(fund_name: str) -> str:
    """本税 for a tax, 本料 for any other fund (a premium, a fee, a charge)."""
    return "本税" if "税" in fund_name else "本料"


def additions_label(slip: PrintableSlip) -> str:
    """e.g. "本税 12,800円　延滞金 1,000円　督促手数料 100円" (an addition of 0 left out)."""
    parts = [f"{principal_label(slip.fund_name)} {slip.principal:,}円"]
    if slip.late_fee:
        parts.append(f"延滞金 {slip.late_fee:,}円")
    if slip.dunning_fee:
        parts.append(f"督促手数料 {slip.dunning_fee:,}円")
    return "　".join(parts)


def _store_deadline_label(slip: PrintableSlip) -> str:
    if slip.barcode is None:
        return "取扱いなし"
    if slip.store_deadline is None:
        return "期限なし"
    return date_label(slip.store_deadline)


def barcode_symbol(digits: str) -> Code128:
    """Return the GS1-128 symbol for 44 digits: Start C, FNC1, the digits; quiet zones included."""
    # Quiet zones set explicitly: reportlab's default is max(1/4 inch, 10 modules) per side,
    # which would not be the geometry the constants above promise.
    return Code128(
        "\xf1" + digits,
        barWidth=MODULE_WIDTH_MM * mm,
        barHeight=BAR_HEIGHT_MM * mm,
        quiet=True,
        lquiet=QUIET_ZONE_MM * mm,
        rquiet=QUIET_ZONE_MM * mm,
        humanReadable=False,
    )


def _draw_store_section(canvas: Canvas, digits: str) -> float:
    _draw_heading(canvas, 108, STORE_HEADING)
    left = _snap(_LEFT)
    bar_bottom = _snap(_y(126))
    canvas.setFillGray(0)  # black bars on the white page, whatever was drawn before
    barcode_symbol(digits).drawOn(canvas, left, bar_bottom)
    centre = left + SYMBOL_WIDTH_MM * mm / 2
    canvas.setFont(FONT_FAMILY, 9)
    canvas.drawCentredString(centre, _y(130), digits[:22])
    canvas.drawCentredString(centre, _y(134), digits[22:])
    notes_left = _LEFT + SYMBOL_WIDTH_MM * mm + 6 * mm
    _draw_notes(canvas, 113, _STORE_NOTES, 9, _RIGHT - notes_left, notes_left)
    return 136


def _draw_no_barcode_notice(canvas: Canvas, slip: PrintableSlip) -> float:
    notice = OVER_LIMIT_NOTICE if slip.amount > MAX_BARCODE_AMOUNT else NO_BARCODE_NOTICE
    top, left, width = 106, _LEFT + 5 * mm, _RIGHT - _LEFT - 10 * mm
    line_top = _draw_paragraph(canvas, top + 8, notice, 11.5, width, left)
    if slip.alternatives:
        line_top = _draw_paragraph(canvas, line_top + 3, "次の方法でお支払いいただけます。", 11, width, left)
        line_top = _draw_notes(canvas, line_top, slip.alternatives, 11, width, left)
    bottom = line_top + 0.5
    canvas.setLineWidth(1.6)
    canvas.rect(_LEFT, _y(bottom), _RIGHT - _LEFT, (bottom - top) * mm, stroke=1, fill=0)
    return bottom


def _draw_eltax_section(canvas: Canvas, slip: PrintableSlip, top: float) -> float:
    """The eL-QR at its own module size, and the eL番号 beside it; return the section's bottom (mm)."""
    _draw_heading(canvas, top, EL_HEADING)
    size = 0.0
    if slip.el_qr:
        rows = el_qr_matrix(slip.el_qr)
        size = (len(rows) + 2 * QR_QUIET_MODULES) * EL_QR_MODULE_MM * mm
        left, bottom = _snap(_LEFT), _snap(_y(top + 3) - size)
        _draw_mask(canvas, rows, left, bottom, EL_QR_MODULE_MM * mm)
    text_left = _LEFT + (size + 4 * mm if size else 0)
    line = top + 9
    if slip.el_number:
        canvas.setFont(FONT_FAMILY, 10.5)
        canvas.drawString(text_left, _y(line), "eL番号")
        grouped = " ".join(slip.el_number[i:i + 4] for i in range(0, len(slip.el_number), 4))
        canvas.setFont(FONT_FAMILY, _fitting_size(grouped, 12, _RIGHT - text_left))
        canvas.drawString(text_left, _y(line + 6), grouped)
        line += 13
    line = _draw_paragraph(canvas, line, EL_HINT, 9, _RIGHT - text_left, text_left)
    return max(top + 3 + size / mm, line)


def el_qr_matrix(payload: str) -> tuple[bytes, ...]:
    """The eL-QR's modules, one row a bytes (1 dark): the payload's UTF-8 bytes, level M, no ECI header."""
    return _el_qr_matrix(payload)


@lru_cache(maxsize=256)  # a re-print of the same slips encodes each payload once
def _el_qr_matrix(payload: str) -> tuple[bytes, ...]:
    # zxing-cpp's encoder (C++): segno, pure Python, took 60 ms for a 512-byte symbol, several
    # times a whole page. Given bytes, it writes no ECI header; it may put a run of digits in
    # numeric mode, which decodes to the same bytes.
    code = zxingcpp.create_barcode(payload.encode("utf-8"), zxingcpp.BarcodeFormat.QRCode, ec_level=EL_QR_ERROR)
    image = code.to_image(scale=1, add_quiet_zones=False)  # one byte a module: 0 dark, 255 light
    size = image.shape[1]
    modules = bytes(memoryview(image)).translate(_DARK_MODULES)  # type: ignore[arg-type]  # Image is a buffer
    return tuple(modules[start:start + size] for start in range(0, len(modules), size))


def _draw_online_section(canvas: Canvas, url: str, top: float, heading: str = ONLINE_HEADING) -> float:
    _draw_heading(canvas, top, heading)
    qr_size = 30 * mm
    _draw_qr(canvas, url, _LEFT, _y(top + 4) - qr_size, qr_size)
    text_left = _LEFT + qr_size + 6 * mm
    canvas.setFont(FONT_FAMILY, 10.5)
    canvas.drawString(text_left, _y(top + 13), ONLINE_HINT)
    canvas.setFont(FONT_FAMILY, _fitting_size(url, 10, _RIGHT - text_left))
    canvas.drawString(text_left, _y(top + 21), url)
    return top + 4 + qr_size / mm


def _draw_heading(canvas: Canvas, top: float, text: str) -> None:
    canvas.rect(_LEFT, _y(top), 3 * mm, 3 * mm, stroke=0, fill=1)
    canvas.setFont(FONT_FAMILY, 11.5)
    canvas.drawString(_LEFT + 5 * mm, _y(top), text)


def _draw_paragraph(
    canvas: Canvas, top: float, text: str, size: float, width: float, left: float = _LEFT
) -> float:
    canvas.setFont(FONT_FAMILY, size)
    for line in _wrapped(text, size, width):
        canvas.drawString(left, _y(top), line)
        top += size * 0.5
    return top


def _draw_notes(
    canvas: Canvas, top: float, notes: tuple[str, ...], size: float, width: float, left: float = _LEFT
) -> float:
    # Bulleted, with continuation lines hanging under the text rather than the bullet.
    indent = pdfmetrics.stringWidth(_BULLET, FONT_FAMILY, size)
    for note in notes:
        canvas.setFont(FONT_FAMILY, size)
        canvas.drawString(left, _y(top), _BULLET)
        top = _draw_paragraph(canvas, top, note, size, width - indent, left + indent)
    return top


def _draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> None:
    rows = segno.make(url, error="m", micro=False, encoding="utf-8").matrix
    _draw_matrix(canvas, rows, x, y, size / (len(rows) + 2 * QR_QUIET_MODULES))


def _draw_mask(canvas: Canvas, rows: Sequence[bytes], x: float, y: float, module: float) -> None:
    """A QR symbol as a 1-bit image mask, one sample a module, painted black where dark.

    A 512-byte eL-QR has some 2,000 dark runs: as rectangles they tripled a page's size and
    time. As an image mask it is 89 rows of 12 bytes; at 4 dots a module every module edge
    falls on the 300 and 600 dpi grids, and masks are not smoothed (no /Interpolate).
    """
    count = len(rows)
    padding, width = b"0" * (-count % 8), (count + 7) // 8  # each row starts on a byte
    bits = b"".join(int(row.translate(_AS_DIGITS) + padding, 2).to_bytes(width) for row in rows)
    side = count * module
    origin = QR_QUIET_MODULES * module
    canvas.saveState()
    canvas.setFillGray(0)
    canvas.transform(side, 0, 0, side, x + origin, y + origin)
    canvas.addLiteral(f"BI /W {count} /H {count} /IM true /BPC 1 /D [1 0] /F /AHx ID\n{bits.hex()}>\nEI")
    canvas.restoreState()


_AS_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def _draw_matrix(canvas: Canvas, rows: Sequence[bytes | bytearray], x: float, y: float, module: float) -> None:
    """A QR symbol's modules with the quiet zone left blank; (x, y) is the quiet zone's lower left corner."""
    count = len(rows)
    # One path in module units: integer operands are cheap to format and keep the PDF
    # small, where a reportlab call per dark run costs a float formatting each.
    operations = [
        f"{run.start()} {count - 1 - index} {run.end() - run.start()} 1 re"
        for index, row in enumerate(rows)
        for run in _DARK_RUNS.finditer(row)
    ]
    operations.append("f")
    origin = QR_QUIET_MODULES * module
    canvas.saveState()
    canvas.transform(module, 0, 0, module, x + origin, y + origin)
    canvas.addLiteral("\n".join(operations))
    canvas.restoreState()


# Text: labels, dates and line wrapping.


def fiscal_year_label(fiscal_year: int) -> str:
    """Return e.g. "令和8年度（2026年度）" for 2026; the first Reiwa year is "元"."""
    if fiscal_year < _REIWA_START.year:
        return f"{fiscal_year}年度"
    return f"令和{_reiwa_year(fiscal_year)}年度（{fiscal_year}年度）"


def date_label(day: date) -> str:
    """Return e.g. "令和8年6月30日（火）"; dates before Reiwa stay Gregorian."""
    weekday = _WEEKDAYS[day.weekday()]
    if day < _REIWA_START:
        return f"{day.year}年{day.month}月{day.day}日（{weekday}）"
    return f"令和{_reiwa_year(day.year)}年{day.month}月{day.day}日（{weekday}）"


def _reiwa_year(year: int) -> str:
    era_year = year - _REIWA_START.year + 1
    return "元" if era_year == 1 else str(era_year)


def _fitting_size(text: str, size: float, width: float) -> float:
    natural = pdfmetrics.stringWidth(text, FONT_FAMILY, size)
    return size if natural <= width else size * width / natural


@lru_cache(maxsize=512)
def _wrapped(text: str, size: float, width: float) -> tuple[str, ...]:
    # Japanese has no spaces to break at: break between any two characters, except
    # before closing punctuation, which may hang past the margin instead.
    lines: list[str] = []
    line, line_width = "", 0.0
    for char in text:
        char_width = pdfmetrics.stringWidth(char, FONT_FAMILY, size)
        if line and line_width + char_width > width and char not in _NO_LINE_START:
            lines.append(line)
            line, line_width = "", 0.0
        line += char
        line_width += char_width
    if line:
        lines.append(line)
    return tuple(lines)
