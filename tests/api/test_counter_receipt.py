"""The counter receipt carries what a real receipt does: municipality, counter, items, amount, tender, time, number."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from domain.calendar import TOKYO
from gateway.models import Sale
from gateway.services.counters import counter_terminals
from gateway.services.sales import SaleLineRequest
from gateway.services.staff_accounts import create_user
from tests.counter import paid_sale
from tests.rows import by_id
from tests.staff import PASSWORD, log_in

CODE = "131075"


def _text(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert found, element_id
    return found.group(1).strip()


def test_the_receipt_names_the_ward_the_counter_the_items_the_amount_the_tender_the_time_and_its_number(
        app: Any, client: FlaskClient, session: Session) -> None:
    clerk = create_user(session, CODE, "clerk", "counter_staff", PASSWORD, counter_code="resident", actor="test")
    counter, _ = counter_terminals(session, clerk.municipality_id, "resident")
    counter_name = counter.name
    sale_id = paid_sale(app, session, clerk, [SaleLineRequest("juminhyo", 2), SaleLineRequest("inkan", 1)],
                        brand="QR_CODE", business_date=datetime.now(TOKYO).date())
    paid = by_id(session, Sale, sale_id, populate_existing=True)
    assert paid is not None and paid.completed_at is not None
    number, paid_at = paid.receipt_number, paid.completed_at.astimezone(TOKYO)
    session.rollback()
    assert log_in(client, "clerk").status_code == 302

    html = client.get(f"/staff/counter/sales/{sale_id}/receipt").get_data(as_text=True)

    assert _text(html, "receipt-municipality") == "墨田区"
    assert _text(html, "receipt-counter") == counter_name and counter_name
    assert _text(html, "receipt-number") == number
    assert _text(html, "receipt-paid-at") == paid_at.strftime("%Y年%m月%d日 %H:%M")  # Asia/Tokyo
    assert _text(html, "receipt-tender") == "QR"
    assert _text(html, "receipt-total") == "900円"
    lines = html[html.index('id="receipt-lines"'):html.index('id="receipt-total"')]
    assert "住民票の写し" in lines and "300円 × 2" in lines and "600円" in lines
    assert "印鑑登録証明書" in lines and "300円 × 1" in lines
