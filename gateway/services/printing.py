"""Turn slips into printable pages: decrypt the payer's name only here, at print time."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.eltax import split_paid
from gateway.crypto import DataCipher
from gateway.models import Municipality, Slip
from gateway.progress import NoProgress, Progress
from gateway.rendering.slip_pdf import PrintableSlip, render_slips

CHANNEL_LABELS = {
    "card": "クレジットカード（オンライン決済・QRコードから）",
    "paypay": "PayPay（オンライン決済・QRコードから）",
    "emoney": "区役所窓口での電子マネー",
}
COUNTER = "区役所・出張所の窓口、指定金融機関の窓口"
PRINT_CHUNK = 1000


def pay_url(municipality: Municipality, slip: Slip) -> str:
    return f"{municipality.pay_base_url.rstrip('/')}/pay/{slip.pay_token}"


def printable(slip: Slip, municipality: Municipality, cipher: DataCipher) -> PrintableSlip:
    """Return the printable view of one slip (with the payer's decrypted name)."""
    assessment = slip.assessment
    fund = assessment.fund_type
    alternatives: tuple[str, ...] = ()
    # An issued slip is for the instalment's amount (an amendment voids it): it splits as the instalment.
    _, late_fee, dunning_fee = split_paid(slip.amount, assessment.amount, assessment.late_fee, assessment.dunning_fee)
    if slip.barcode is None:
        alternatives = tuple(CHANNEL_LABELS[c] for c in fund.channels if c in CHANNEL_LABELS) + (COUNTER,)
    return PrintableSlip(
        number=slip.number, barcode=slip.barcode, amount=slip.amount, due_date=slip.due_date,
        store_deadline=slip.store_deadline, fund_name=fund.name, fiscal_year=assessment.fiscal_year,
        installment=assessment.installment, reissue=slip.reissue, municipality_name=municipality.name,
        payer_name=cipher.decrypt(assessment.payer_name_enc) if assessment.payer_name_enc else "",
        pay_url=pay_url(municipality, slip), alternatives=alternatives, el_number=assessment.el_number,
        el_qr=assessment.el_qr, late_fee=late_fee, dunning_fee=dunning_fee,
    )



def _printables(session: Session, cipher: DataCipher, municipality_id: int, slip_ids: list[int],
                progress: Progress) -> Iterator[PrintableSlip]:
    municipality = session.get(Municipality, municipality_id)
    assert municipality is not None
    for start in range(0, len(slip_ids), PRINT_CHUNK):
        chunk = slip_ids[start: start + PRINT_CHUNK]
        slips = session.scalars(select(Slip).where(Slip.municipality_id == municipality_id, Slip.id.in_(chunk))
                                .order_by(Slip.id)).unique().all()
        for slip in slips:
            yield printable(slip, municipality, cipher)
            progress.advance(1)


def render_pdf(session: Session, cipher: DataCipher, municipality_id: int, slip_ids: Iterable[int], out: BinaryIO,
               *, progress: Progress | None = None) -> int:
    """Render the ward's slips, one page each, into one PDF on `out`; return the page count."""
    progress = progress or NoProgress()
    ids = sorted(slip_ids)
    progress.start("rendering PDF", len(ids))
    pages = render_slips(_printables(session, cipher, municipality_id, ids, progress), out)
    progress.finish()
    return pages
