"""A fund paid online through eLTAX: the pay page links to 地方税お支払サイト and offers no checkout of ours.

The ward's file (tests/data/config/eltax-ward.toml, read as KOKIN_CONFIG) gives 131083 a
resident tax whose channels include `eltax` and a light vehicle tax that keeps card and
PayPay; both are seeded, imported and issued through the real services.
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from domain.channels import paid_through_eltax
from gateway.config import load_settings
from gateway.models import FundType, Municipality, Payment, PaymentAttempt, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.apikeys import create_api_key
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips

PAYING = ("slips:read", "payments:write")  # the API key of a kiosk or an app that takes payments

WARD_FILE = Path(__file__).parents[1] / "data" / "config" / "eltax-ward.toml"
CODE = "131083"
ELTAX_SITE = "https://www.payment.eltax.lta.go.jp/"
TAX = dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
           installment=1, payer_ref="0000000001", payer_name="江東　次郎", amount=12_300, due_date=date(2026, 6, 30))
LIGHT_VEHICLE = dict(TAX, assessment_id="02-2026-0000000001", fund_code="02", amount=3_900)


@pytest.fixture
def ward(session, monkeypatch) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KOKIN_CONFIG", str(WARD_FILE))
    return load_settings()


@pytest.fixture
def slips(session, cipher, ward) -> dict[str, Slip]:  # type: ignore[no-untyped-def]
    """The ward's two funds seeded from its file, one instalment of each imported and issued."""
    seed_reference_data(session, ward["MUNICIPALITIES"])
    import_ledger(session, cipher, ledger_file_bytes([TAX, LIGHT_VEHICLE], "kokin-csv", date(2026, 4, 1)),
                  filename="ledger.csv")
    issue_slips(session, CODE)
    by_amount = {s.amount: s for s in session.scalars(select(Slip).join(Municipality).where(Municipality.code == CODE))}
    return {"eltax": by_amount[12_300], "card": by_amount[3_900]}


@pytest.fixture
def headers(session, slips) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {create_api_key(session, 'kiosk', CODE, actor='test', scopes=PAYING)}"}


def _count(session: Any, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _pay(client: Any, headers: dict[str, str], slip: Slip, channel: str, key: str) -> Any:
    return client.post("/api/v1/payments", headers={**headers, "Idempotency-Key": key},
                       json={"slip_number": slip.number, "channel": channel, "return_url": "https://ward.test/done"})


def test_the_wards_file_sets_the_eltax_site_and_a_fund_paid_through_it(session, slips, ward) -> None:  # type: ignore[no-untyped-def]
    assert ward["ELTAX_PAY_URL"] == ELTAX_SITE
    funds = {f.code: f.channels for f in session.scalars(
        select(FundType).join(Municipality).where(Municipality.code == CODE))}
    assert funds == {"01": ["agency", "eltax"], "02": ["agency", "card", "paypay"]}


def test_the_embedded_default_keeps_the_gateways_checkouts_for_its_taxes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("KOKIN_CONFIG", raising=False)  # eLTAX is the ward's choice, in its own file
    settings = load_settings()
    assert settings["ELTAX_PAY_URL"] == ELTAX_SITE
    assert all(not paid_through_eltax(f["channels"]) for m in settings["MUNICIPALITIES"] for f in m["funds"])


def test_the_page_links_to_the_eltax_site_and_offers_no_checkout_of_ours(client, slips) -> None:  # type: ignore[no-untyped-def]
    html = client.get(f"/pay/{slips['eltax'].pay_token}").get_data(as_text=True)
    assert "地方税お支払サイト" in html and "eL-QR" in html
    link = re.search(r'<a class="button button-eltax" href="([^"]+)"', html)
    assert link is not None and link.group(1) == ELTAX_SITE
    assert "<form" not in html and "クレジットカード" + "で支払う" not in html and "PayPayで支払う" not in html
    assert "システム利用料" not in html and "/card" not in html and "/paypay" not in html
    assert "江東" + "　次郎" not in html  # still no personal data


def test_the_english_page_links_there_too(client, slips) -> None:  # type: ignore[no-untyped-def]
    html = client.get(f"/pay/{slips['eltax'].pay_token}?lang=en").get_data(as_text=True)
    assert "Local Tax Payment Site" in html and f'href="{ELTAX_SITE}"' in html and "<form" not in html


def test_the_link_is_configuration(app, client, slips) -> None:  # type: ignore[no-untyped-def]
    app.config["ELTAX_PAY_URL"] = "https://eltax.example.test/pay"
    html = client.get(f"/pay/{slips['eltax'].pay_token}").get_data(as_text=True)
    assert 'href="https://eltax.example.test/pay"' in html and ELTAX_SITE not in html


def test_a_fund_without_eltax_keeps_the_gateways_checkouts(client, slips) -> None:  # type: ignore[no-untyped-def]
    html = client.get(f"/pay/{slips['card'].pay_token}").get_data(as_text=True)
    assert "クレジットカードで支払う" in html and "PayPayで支払う" in html and "システム利用料 40円" in html
    assert "地方税お支払サイト" not in html and ELTAX_SITE not in html


def test_a_card_post_for_an_eltax_fund_opens_nothing_and_points_to_the_site(client, session, slips) -> None:  # type: ignore[no-untyped-def]
    # A form kept from the light vehicle tax's page, sent to the resident tax's slip.
    page = client.get(f"/pay/{slips['card'].pay_token}").get_data(as_text=True)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.split("</form>")[0]))
    response = client.post(f"/pay/{slips['eltax'].pay_token}/card", data=fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "地方税お支払サイトでお支払いください" in html
    assert f'href="{ELTAX_SITE}"' in html
    assert _count(session, Payment) == 0 and _count(session, PaymentAttempt) == 0


@pytest.mark.parametrize("channel", ["card", "paypay"])
def test_the_api_refuses_our_checkout_for_an_eltax_fund(client, headers, session, slips, channel) -> None:  # type: ignore[no-untyped-def]
    response = _pay(client, headers, slips["eltax"], channel, f"k-{channel}")
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "channel_not_accepted" and "eLTAX" in error["message"]
    assert error["details"] == {"pay_through": "eltax", "pay_url": ELTAX_SITE}
    assert _count(session, Payment) == 0
    again = _pay(client, headers, slips["eltax"], channel, f"k-{channel}")  # the same key replays the refusal
    assert again.status_code == 422 and again.json == response.json


def test_the_api_still_opens_a_checkout_for_a_fund_without_eltax(client, headers, session, slips) -> None:  # type: ignore[no-untyped-def]
    response = _pay(client, headers, slips["card"], "card", "k-card")
    assert response.status_code == 201 and response.json["fee_amount"] == 40
    assert _count(session, Payment) == 1


def test_a_fund_that_lists_card_beside_eltax_is_still_paid_through_eltax(client, headers, session, slips) -> None:  # type: ignore[no-untyped-def]
    fund = slips["card"].assessment.fund_type  # staff add eltax to the light vehicle tax after seeding
    fund.channels = ["agency", "card", "paypay", "eltax"]
    session.commit()

    html = client.get(f"/pay/{slips['card'].pay_token}").get_data(as_text=True)
    assert f'href="{ELTAX_SITE}"' in html and "<form" not in html
    response = _pay(client, headers, slips["card"], "card", "k-listed")
    assert response.status_code == 422 and response.json["error"]["details"]["pay_through"] == "eltax"
    assert _count(session, Payment) == 0
