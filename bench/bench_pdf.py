"""Benchmark slip PDF rendering against bare reportlab drawing the same pages.

Usage: python bench/bench_pdf.py [--slips 1000] [--rounds 3]

  ours  render_slips() on synthetic PrintableSlips (one in 20 over 300,000 yen, so
        without a barcode), one PDF in memory;
  bare  one reportlab Canvas drawing the same strings at the same places, with the same
        font, the same Code128 and the same segno QR and path drawing, from strings
        formatted beforehand (formatting and checks are what `ours` adds).

Prints pages/s for both (best of --rounds), the ratio ours/bare (goal >= 0.8) and what
QR encoding alone costs a page. Figures, never assertions.

  --eltax BYTES  every slip of `ours` also carries an eL番号, a 延滞金 and an eL-QR payload of
                 BYTES bytes (each its own); `bare` does not draw them, so the ratio is then
                 what the eL-QR costs a page.
"""
from __future__ import annotations

import argparse
import io
import re
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta

import segno
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from domain.barcode import SlipBarcode, encode
from domain.identifiers import make_slip_number
from gateway.rendering import slip_pdf
from gateway.rendering.slip_pdf import PrintableSlip, render_slips

FONT = slip_pdf.FONT_FAMILY
LEFT, RIGHT, HEIGHT = 18 * mm, A4[0] - 18 * mm, A4[1]
DARK_RUNS = re.compile(rb"\x01+")
ONLINE_HINT = "スマートフォンのカメラで読み取ると、この納付書のお支払いページが開きます。"
NAMES = ("見本 太郎", "試験 花子", "区民 一郎", "納税 美咲", "例示 健太", "")
ALTERNATIVES = ("区役所・出張所の窓口、指定金融機関の窓口", "クレジットカード（オンライン決済・QRコードから）")
# The wrapped lines render_slips prints; bare draws them as given.
STORE_NOTES = (
    (
        "コンビニエンスストアのレジ、または請求書払いに対応したスマートフォン",
        "決済アプリでバーコードを読み取ってお支払いください。",
    ),
    (
        "支払期限を過ぎた納付書、金額を訂正した納付書、バーコードが汚れて読み",
        "取れない納付書はお取り扱いできません。",
    ),
    ("アプリによって1回にお支払いできる金額の上限が異なります。",),
)
GENERAL_NOTES = (
    ("納期限までにお納めください。",),
    ("すでにお支払い済みの場合は、この納付書は使わないでください（二重払いにご注意ください）。",),
)
OVER_LIMIT_LINES = (
    "この納付書の金額は30万円を超えるため、コンビニエンスストア・スマートフォンアプリ",
    "ではお支払いいただけません。",
)


def with_eltax(slips: list[PrintableSlip], size: int) -> list[PrintableSlip]:
    """The slips with an eL番号, a 延滞金 and an eL-QR payload of `size` bytes each (ASCII, all different)."""
    return [replace(s, el_number=f"{n:032d}", late_fee=100 if s.amount > 1_000 else 0,
                    el_qr=(f"{n:08d}" + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz" * 9)[:size])
            for n, s in enumerate(slips)]


def synthetic_slips(count: int) -> list[PrintableSlip]:
    """Return `count` slips of the ward's resident tax, one in 20 over the barcode limit."""
    slips = []
    for serial in range(1, count + 1):
        number = make_slip_number(2026, serial)
        amount = 412_300 + serial if serial % 20 == 0 else 1_000 + serial * 37 % 250_000
        deadline = date(2026, 7, 31) + timedelta(days=serial % 60)
        barcode = None
        if amount <= 300_000:
            barcode = encode(SlipBarcode("912345", "01234", number, serial % 3, deadline, amount))
        slips.append(
            PrintableSlip(
                number=number, barcode=barcode, amount=amount, due_date=deadline - timedelta(days=31),
                store_deadline=deadline if barcode else None, fund_name="特別区民税・都民税（普通徴収）",
                fiscal_year=2026, installment=1 + serial % 4, payer_name=NAMES[serial % len(NAMES)],
                pay_url=f"https://pay.example.jp/pay/{serial:08d}Zq3xTb8LwP2m", reissue=serial % 3 if barcode else 0,
                municipality_name="墨田区", alternatives=() if barcode else ALTERNATIVES,
            )
        )
    return slips


@dataclass(frozen=True)
class BarePage:
    strings: dict[str, str]
    digits: str | None
    url: str
    reissue: str | None
    reissue_width: float
    alternatives: tuple[str, ...]


def bare_pages(slips: list[PrintableSlip]) -> list[BarePage]:
    """Format every string beforehand, so that `bare` times drawing only."""
    return [
        BarePage(
            strings={
                "municipality": s.municipality_name, "year": slip_pdf.fiscal_year_label(s.fiscal_year),
                "title": f"{s.fund_name}　納付書", "installment": f"第{s.installment}期",
                "payer": f"{s.payer_name} 様" if s.payer_name else "", "amount": f"{s.amount:,}円",
                "due": slip_pdf.date_label(s.due_date),
                "store": slip_pdf.date_label(s.store_deadline) if s.store_deadline else "取扱いなし",
                "number": " ".join(s.number[i : i + 4] for i in range(0, 16, 4)),
            },
            digits=s.barcode, url=s.pay_url, reissue=f"再発行（{s.reissue}回目）" if s.reissue else None,
            reissue_width=stringWidth(f"再発行（{s.reissue}回目）", FONT, 12) + 6 * mm, alternatives=s.alternatives,
        )
        for s in slips
    ]


def y(top_mm: float) -> float:
    return HEIGHT - top_mm * mm


def bare_render(pages: list[BarePage], out: io.BytesIO) -> int:
    canvas = Canvas(out, pagesize=A4, invariant=True, pageCompression=1, initialFontName=FONT)
    for page in pages:
        bare_header_and_summary(canvas, page)
        if page.digits:
            bare_store_section(canvas, page.digits)
            bottom = 136.0
        else:
            bottom = bare_notice(canvas, page.alternatives)
        bare_online_and_notes(canvas, page.url, bottom + 12)
        canvas.showPage()
    canvas.save()
    return len(pages)


def bare_header_and_summary(canvas: Canvas, page: BarePage) -> None:
    s = page.strings
    canvas.setFont(FONT, 14)
    canvas.drawString(LEFT, y(20), s["municipality"])
    if page.reissue:
        canvas.setLineWidth(1.2)
        canvas.rect(RIGHT - page.reissue_width, y(23), page.reissue_width, 8 * mm, stroke=1, fill=0)
        canvas.setFont(FONT, 12)
        canvas.drawCentredString(RIGHT - page.reissue_width / 2, y(20.4), page.reissue)
    canvas.setFont(FONT, 11)
    canvas.drawString(LEFT, y(29), s["year"])
    canvas.setFont(FONT, 17)
    canvas.drawRightString(RIGHT, y(38), s["installment"])
    canvas.drawString(LEFT, y(38), s["title"])
    canvas.setLineWidth(0.8)
    canvas.line(LEFT, y(42), RIGHT, y(42))
    if s["payer"]:
        canvas.setFont(FONT, 14)
        canvas.drawString(LEFT, y(52), s["payer"])
    canvas.setFillGray(0.92)
    canvas.rect(LEFT, y(98), 62 * mm, 40 * mm, stroke=0, fill=1)
    canvas.setFillGray(0)
    canvas.setLineWidth(0.6)
    canvas.rect(LEFT, y(98), RIGHT - LEFT, 40 * mm)
    canvas.line(LEFT + 62 * mm, y(58), LEFT + 62 * mm, y(98))
    rows = (
        ("納付金額", "amount", 20),
        ("納期限", "due", 13),
        ("コンビニ・アプリ支払期限", "store", 13),
        ("納付書番号", "number", 13),
    )
    for index, (label, key, size) in enumerate(rows):
        if index:
            canvas.line(LEFT, y(58 + index * 10), RIGHT, y(58 + index * 10))
        canvas.setFont(FONT, 10.5)
        canvas.drawString(LEFT + 3 * mm, y(64.6 + index * 10), label)
        canvas.setFont(FONT, size)
        canvas.drawString(LEFT + 67 * mm, y(64.6 + index * 10) - (1 if size > 13 else 0), s[key])


def bare_store_section(canvas: Canvas, digits: str) -> None:
    bare_heading(canvas, 108, slip_pdf.STORE_HEADING)
    Code128(
        "\xf1" + digits, barWidth=slip_pdf.MODULE_WIDTH_MM * mm, barHeight=slip_pdf.BAR_HEIGHT_MM * mm,
        quiet=True, lquiet=slip_pdf.QUIET_ZONE_MM * mm, rquiet=slip_pdf.QUIET_ZONE_MM * mm, humanReadable=False,
    ).drawOn(canvas, LEFT, y(126))
    centre = LEFT + slip_pdf.SYMBOL_WIDTH_MM * mm / 2
    canvas.setFont(FONT, 9)
    canvas.drawCentredString(centre, y(130), digits[:22])
    canvas.drawCentredString(centre, y(134), digits[22:])
    bare_notes(canvas, 113, STORE_NOTES, 9, LEFT + slip_pdf.SYMBOL_WIDTH_MM * mm + 6 * mm)


def bare_notice(canvas: Canvas, alternatives: tuple[str, ...]) -> float:
    canvas.setFont(FONT, 11.5)
    for index, line in enumerate(OVER_LIMIT_LINES):
        canvas.drawString(LEFT + 5 * mm, y(114 + index * 5.75), line)
    canvas.setFont(FONT, 11)
    canvas.drawString(LEFT + 5 * mm, y(128.5), "次の方法でお支払いいただけます。")
    bottom = bare_notes(canvas, 134, tuple((a,) for a in alternatives), 11, LEFT + 5 * mm) + 0.5
    canvas.setLineWidth(1.6)
    canvas.rect(LEFT, y(bottom), RIGHT - LEFT, (bottom - 106) * mm, stroke=1, fill=0)
    return bottom


def bare_online_and_notes(canvas: Canvas, url: str, top: float) -> None:
    bare_heading(canvas, top, "オンライン決済（クレジットカード・PayPay）はこちら")
    rows = segno.make(url, error="m", micro=False, encoding="utf-8").matrix
    module = 30 * mm / (len(rows) + 8)
    ops = [
        f"{r.start()} {len(rows) - 1 - i} {r.end() - r.start()} 1 re"
        for i, row in enumerate(rows)
        for r in DARK_RUNS.finditer(row)
    ]
    canvas.saveState()
    canvas.transform(module, 0, 0, module, LEFT + 4 * module, y(top + 34) + 4 * module)
    canvas.addLiteral("\n".join(ops) + "\nf")
    canvas.restoreState()
    canvas.setFont(FONT, 10.5)
    canvas.drawString(LEFT + 36 * mm, y(top + 13), ONLINE_HINT)
    canvas.setFont(FONT, 10)
    canvas.drawString(LEFT + 36 * mm, y(top + 21), url)
    canvas.setFont(FONT, 9)
    canvas.drawString(LEFT, y(top + 44), "ご注意")
    bare_notes(canvas, top + 48.5, GENERAL_NOTES, 9, LEFT)


def bare_heading(canvas: Canvas, top: float, text: str) -> None:
    canvas.rect(LEFT, y(top), 3 * mm, 3 * mm, stroke=0, fill=1)
    canvas.setFont(FONT, 11.5)
    canvas.drawString(LEFT + 5 * mm, y(top), text)


def bare_notes(canvas: Canvas, top: float, notes: tuple[tuple[str, ...], ...], size: float, left: float) -> float:
    for lines in notes:
        canvas.setFont(FONT, size)
        canvas.drawString(left, y(top), "・")
        for line in lines:
            canvas.drawString(left + size, y(top), line)
            top += size * 0.5
    return top


def pages_per_second(render: object, pages: object) -> tuple[float, int]:
    out = io.BytesIO()
    began = time.perf_counter()
    count = render(pages, out)  # type: ignore[operator]
    return count / (time.perf_counter() - began), len(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slips", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--eltax", type=int, default=0, metavar="BYTES")
    args = parser.parse_args()
    plain = synthetic_slips(args.slips)
    slips = with_eltax(plain, args.eltax) if args.eltax else plain
    render_slips(slips[:20], io.BytesIO())  # registers the font and warms caches for both
    pages = bare_pages(plain)
    ours, bare = [], []
    for _ in range(args.rounds):  # interleaved, so that drift on the machine hits both
        ours.append(pages_per_second(render_slips, slips))
        bare.append(pages_per_second(bare_render, pages))
    (ours_rate, ours_bytes), (bare_rate, bare_bytes) = max(ours), max(bare)
    began = time.perf_counter()
    for slip in slips:
        segno.make(slip.pay_url, error="m", micro=False, encoding="utf-8")
    qr_ms = (time.perf_counter() - began) * 1000 / len(slips)
    print(f"slips: {len(slips):,} ({sum(s.barcode is None for s in slips)} without barcode), best of {args.rounds}")
    print(f"ours: {ours_rate:,.0f} pages/s  ({ours_bytes / 1e6:.2f} MB PDF)")
    print(f"bare: {bare_rate:,.0f} pages/s  ({bare_bytes / 1e6:.2f} MB PDF)")
    print(f"ratio ours/bare: {ours_rate / bare_rate:.2f}  (goal >= 0.8)")
    print(f"QR encoding alone (segno.make): {qr_ms:.2f} ms/page of {1000 / ours_rate:.2f} ms/page")
    if args.eltax:
        began = time.perf_counter()
        for slip in slips:
            slip_pdf._el_qr_matrix.__wrapped__(slip.el_qr or "")
        el_ms = (time.perf_counter() - began) * 1000 / len(slips)
        print(f"eL-QR of {args.eltax} bytes on every page; its encoding alone: {el_ms:.2f} ms/page")


if __name__ == "__main__":
    main()
