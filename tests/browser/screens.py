"""The screens the accessibility tests visit, and signing in to the staff side in a browser."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Payment, ReconException, Sale
from gateway.services.refunds import request_refund
from gateway.services.staff_accounts import create_user
from tests.staff import second_factor
from tests.ward_day import CODE, PASSWORD, WardDay, build_ward_day


@dataclass(frozen=True)
class StaffWard:
    """A ward day (tests/ward_day.py) with an administrator, and a refund waiting for a second person."""

    day: WardDay
    exception_id: int
    sale_id: int
    slip_number: str

    def screens(self) -> dict[str, list[str]]:
        """The staff screens to visit, by the account that may open them."""
        today = self.day.today.isoformat()
        return {
            "acct": ["/staff/exceptions", f"/staff/exceptions/{self.exception_id}", f"/staff/slips/{self.slip_number}",
                     "/staff/search", "/staff/reports",
                     *(f"/staff/reports/{name}" for name in ("daily", "receipts", "remittances", "usage")),
                     f"/staff/revenue?date={today}", "/staff/feed", "/staff/close", "/staff/exceptions/999999"],
            "approver": ["/staff/refunds"],
            "clerk": ["/staff/counter", f"/staff/counter/sales/{self.sale_id}",
                      f"/staff/counter/sales/{self.sale_id}/receipt", f"/staff/close?date={today}"],
            "admin": ["/staff/", "/staff/users", "/staff/fees", "/staff/playbook", "/staff/playbook/double_payment"],
        }

    def report_screens(self) -> list[str]:
        """The screens with wide tables: every report, the feed, the revenue journal, the queue."""
        return [path for path in self.screens()["acct"] if not path.endswith("999999")]


def build_staff_ward(app: Any, session: Session, cipher: Any) -> StaffWard:
    day = build_ward_day(app, session, cipher)
    create_user(session, CODE, "admin", "administrator", PASSWORD, actor="test")
    paid = session.scalar(select(Payment).where(Payment.channel == "paypay", Payment.status == "succeeded"))
    assert paid is not None
    request_refund(session, paid.municipality_id, paid.id, 100, reason="a fee charged twice", requested_by="acct")
    exception_id = session.scalar(select(ReconException.id).order_by(ReconException.id).limit(1))
    sale_id = session.scalar(select(Sale.id).where(Sale.status == "paid").order_by(Sale.id).limit(1))
    slip_number = paid.slip.number if paid.slip is not None else None
    session.rollback()
    assert exception_id is not None and sale_id is not None and slip_number is not None
    return StaffWard(day, exception_id, sale_id, slip_number)


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    """Sign in on the staff login page (and the second factor); wait until the staff side answers."""
    page.context.clear_cookies()
    page.goto(f"{base}/staff/login")
    page.get_by_label("ユーザー名").fill(username)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(lambda url: "/staff/login" not in url)
    second_factor(page, base, username)
