"""The resident pay page /pay/<token>: what it shows, and starting a card or PayPay payment."""
from __future__ import annotations

import re
import secrets
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.config import load_settings
from gateway.models import Payment, PaymentAttempt, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips, reissue_slip
from tests.page_text import english_catalogue, japanese_runs, text_nodes, visible_text
from tests.rows import by_id

CODE = "131075"
PAYER_NAME = "墨田　花子"
RESIDENT_TAX = dict(municipality_code=CODE, assessment_id="01-2026-0000000001", fund_code="01", fiscal_year=2026,
                    installment=2, payer_ref="0000000001", payer_name=PAYER_NAME, amount=12_300,
                    due_date=date(2026, 6, 30))
CERTIFICATE_FEE = dict(RESIDENT_TAX, assessment_id="51-2026-0000000001", fund_code="51", installment=1, amount=300)


@pytest.fixture
def slips(session, cipher) -> dict[str, Slip]:  # type: ignore[no-untyped-def]
    import_ledger(session, cipher, ledger_file_bytes([RESIDENT_TAX, CERTIFICATE_FEE], "kokin-csv", date(2026, 4, 1)),
                  filename="ledger.csv")
    issue_slips(session, CODE)
    tax = session.scalar(select(Slip).where(Slip.amount == 12_300))
    fee = session.scalar(select(Slip).where(Slip.amount == 300))
    assert tax is not None and fee is not None
    return {"tax": tax, "fee": fee}


@pytest.fixture
def slip(slips) -> Slip:  # type: ignore[no-untyped-def]
    return slips["tax"]  # type: ignore[no-any-return]


def _form(client: Any, token: str, channel: str, query: str = "") -> tuple[str, dict[str, str]]:
    """GET the slip page; return its HTML and the fields of the `channel` pay form."""
    html = client.get(f"/pay/{token}{query}").get_data(as_text=True)
    form = re.search(rf'<form[^>]*action="[^"]*/{channel}[^"]*">(.*?)</form>', html, re.S)
    assert form is not None, f"no {channel} form on the page"
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))
    return html, fields


def _count(session: Any, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _pay_by_card(app: Any, client: Any, session: Any, slip: Slip) -> None:
    _, fields = _form(client, slip.pay_token, "card")
    assert client.post(f"/pay/{slip.pay_token}/card", data=fields).status_code == 303
    ref = session.scalar(select(PaymentAttempt.provider_ref).order_by(PaymentAttempt.id.desc()).limit(1))
    stripe = app.extensions["kokin.adapters"]["stripe"]
    stripe.simulator.simulate_payment(ref, "paid")
    settle_attempt(session, "stripe", stripe.fetch_status(ref), actor="test")


def test_the_page_shows_the_slip_and_the_card_fee_apart(client, slip) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/pay/{slip.pay_token}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    for shown in ("墨田区", "特別区民税・都民税（普通徴収）", "令和8年度（2026年度）", "第2期", "12,300",
                  "令和8年6月30日（火）", "未納", "クレジットカードで支払う", "PayPayで支払う",
                  "システム利用料 123円（税・保険料とは別にお支払いいただきます）", "お支払い合計 12,423円"):
        assert shown in html, shown
    assert 'name="viewport"' in html and 'lang="ja"' in html


def test_the_page_shows_no_personal_data(client, slip) -> None:  # type: ignore[no-untyped-def]
    html = client.get(f"/pay/{slip.pay_token}").get_data(as_text=True)
    assert PAYER_NAME not in html and "花子" not in html and "0000000001" not in html
    assert slip.number not in html  # the slip number leads to the payer at the counter


def test_a_fund_shows_only_the_channels_it_accepts_online(client, slips) -> None:  # type: ignore[no-untyped-def]
    html = client.get(f"/pay/{slips['fee'].pay_token}").get_data(as_text=True)
    assert "クレジットカードで支払う" in html and "PayPayで支払う" not in html
    assert "システム利用料 40円" in html


def test_the_english_page_is_english_and_links_back_to_japanese(client, slip) -> None:  # type: ignore[no-untyped-def]
    html = client.get(f"/pay/{slip.pay_token}?lang=en").get_data(as_text=True)
    for shown in ('lang="en"', "Special ward and metropolitan resident tax (by slip)", "FY2026 (Reiwa 8)",
                  "12,300", "Tue 30 June 2026", "Pay by Credit card", "Pay by PayPay",
                  "System usage fee 123 yen", f'href="/pay/{slip.pay_token}"'):
        assert shown in html, shown
    assert "お支払い方法" not in html
    assert f'/pay/{slip.pay_token}/card?lang=en"' in html  # the form keeps the language
    words = " ".join(re.sub(r"<[^>]+>", " ", html).split())  # the page's text, as a reader sees it
    assert "Instalment No. 2" in words and "Instalment Instalment" not in words
    assert "Fiscal year FY2026 (Reiwa 8)" in words


def test_the_english_page_says_in_the_catalogue_s_english_every_message_of_the_japanese_one(  # type: ignore[no-untyped-def]
        client, slip) -> None:
    english = english_catalogue()
    japanese_page = text_nodes(client.get(f"/pay/{slip.pay_token}").get_data(as_text=True))
    messages = [text for text in japanese_page if text in english]
    assert {"納付書のお支払い", "お支払い方法を選んでください", "お支払い状況を確認する"} <= set(messages)
    english_page = visible_text(client.get(f"/pay/{slip.pay_token}?lang=en").get_data(as_text=True))
    assert [m for m in messages if english[m] not in english_page] == []
    assert japanese_runs(english_page) <= {"墨田区", "日本語"}  # the ward's name, and the switch back


def test_the_staff_switch_s_cookie_leaves_the_pay_page_in_the_language_of_its_address(  # type: ignore[no-untyped-def]
        client, slip) -> None:
    client.set_cookie("kokin_lang", "en")
    assert "お支払い方法を選んでください" in client.get(f"/pay/{slip.pay_token}").get_data(as_text=True)
    assert "Choose how to pay" in client.get(f"/pay/{slip.pay_token}?lang=en").get_data(as_text=True)


def test_an_unknown_token_is_a_japanese_404_that_leaks_nothing(client, slip) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/pay/not-a-real-token")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and "ページが見つかりません" in html
    assert "Traceback" not in html and "not valid" not in html and "<form" not in html


def test_the_link_names_the_slip_s_ward(client, slip) -> None:  # type: ignore[no-untyped-def]
    assert slip.pay_token.startswith(f"{CODE}-")  # the page finds it on the ward's node (docs/scaling.md)
    assert client.get(f"/pay/{slip.pay_token}").status_code == 200


def test_a_link_naming_another_ward_finds_nothing(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    second = load_settings()["MUNICIPALITIES"][1]
    seed_reference_data(session, [second])  # the tests seed the first ward alone
    secret = slip.pay_token.removeprefix(f"{CODE}-")
    for other in (second["code"], "131083"):  # a ward of the service without the slip, and a code of none
        response = client.get(f"/pay/{other}-{secret}")
        assert response.status_code == 404 and "<form" not in response.get_data(as_text=True)


def test_a_link_printed_before_links_named_their_ward_still_opens_its_slip(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    old = secrets.token_urlsafe(16)  # how tokens were made before
    slip.pay_token = old
    session.commit()

    html = client.get(f"/pay/{old}").get_data(as_text=True)
    assert "12,300" in html and "クレジットカードで支払う" in html
    _, fields = _form(client, old, "card")
    assert client.post(f"/pay/{old}/card", data=fields).status_code == 303


def test_a_paid_slip_says_so_and_offers_no_button(app, client, session, slip) -> None:  # type: ignore[no-untyped-def]
    _pay_by_card(app, client, session, slip)
    html = client.get(f"/pay/{slip.pay_token}").get_data(as_text=True)
    assert "お支払い済み" in html and "この納付書はお支払い済みです" in html
    assert "<form" not in html and "<button" not in html
    result = client.get(f"/pay/{slip.pay_token}/result").get_data(as_text=True)
    assert 'data-state="paid"' in result and "お支払いが完了しました" in result


def test_a_void_slip_points_to_the_newer_slip_and_offers_no_button(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    _, fields = _form(client, slip.pay_token, "card")
    reissue_slip(session, slip.municipality_id, slip.number, reason="address change", actor="test")
    html = client.get(f"/pay/{slip.pay_token}").get_data(as_text=True)
    assert "新しい納付書でお支払いください" in html and "<form" not in html and "<button" not in html
    late = client.post(f"/pay/{slip.pay_token}/card", data=fields)  # a page opened before the reissue
    assert late.status_code == 409 and "この納付書は無効です" in late.get_data(as_text=True)
    assert _count(session, Payment) == 0


def test_a_post_without_the_csrf_token_is_refused(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    _, fields = _form(client, slip.pay_token, "card")
    response = client.post(f"/pay/{slip.pay_token}/card", data={"nonce": fields["nonce"]})
    assert response.status_code == 400 and "ページの有効期限が切れました" in response.get_data(as_text=True)
    forged = client.post(f"/pay/{slip.pay_token}/card", data={**fields, "csrf_token": "x" * 43})
    assert forged.status_code == 400
    cross_site = client.post(f"/pay/{slip.pay_token}/card", data=fields, headers={"Origin": "https://evil.test"})
    assert cross_site.status_code == 400
    assert _count(session, Payment) == 0


def test_a_card_post_redirects_to_the_hosted_page(app, client, session, slip) -> None:  # type: ignore[no-untyped-def]
    _, fields = _form(client, slip.pay_token, "card")
    response = client.post(f"/pay/{slip.pay_token}/card", data=fields)
    attempt = session.scalar(select(PaymentAttempt))
    assert response.status_code == 303 and response.headers["Location"] == attempt.redirect_url
    # sandbox mode: the simulated Checkout page, served by the gateway itself (/sandbox)
    assert attempt.redirect_url == f"http://localhost/sandbox/stripe/checkout/{attempt.provider_ref}"
    assert attempt.amount == 12_423
    stripe_session = app.extensions["kokin.adapters"]["stripe"].fetch_status(attempt.provider_ref)
    assert stripe_session.provider_ref == attempt.provider_ref  # the simulator knows this checkout


def test_a_double_submit_opens_one_checkout(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    _, fields = _form(client, slip.pay_token, "card")
    first = client.post(f"/pay/{slip.pay_token}/card", data=fields)
    second = client.post(f"/pay/{slip.pay_token}/card", data=fields)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert _count(session, Payment) == 1 and _count(session, PaymentAttempt) == 1


def test_a_paypay_post_shows_a_qr_code_and_a_deep_link(client, session, slip) -> None:  # type: ignore[no-untyped-def]
    _, fields = _form(client, slip.pay_token, "paypay")
    response = client.post(f"/pay/{slip.pay_token}/paypay", data=fields)
    html = response.get_data(as_text=True)
    attempt = session.scalar(select(PaymentAttempt))
    assert response.status_code == 200
    assert re.search(r'<svg[^>]*class="qr"', html) and "<path" in html
    assert f'href="{attempt.qr_payload}"' in html
    assert "支払い完了後、このページを更新してください" in html
    assert f'href="/pay/{slip.pay_token}/result"' in html
    assert PAYER_NAME not in html


def test_the_result_page_follows_a_paypay_payment(app, client, session, slip) -> None:  # type: ignore[no-untyped-def]
    assert 'data-state="none"' in client.get(f"/pay/{slip.pay_token}/result").get_data(as_text=True)
    _, fields = _form(client, slip.pay_token, "paypay")
    client.post(f"/pay/{slip.pay_token}/paypay", data=fields)
    assert 'data-state="pending"' in client.get(f"/pay/{slip.pay_token}/result").get_data(as_text=True)
    ref = session.scalar(select(PaymentAttempt.provider_ref))
    app.extensions["kokin.adapters"]["paypay"].simulator.simulate_payment(ref, "COMPLETED")
    # No webhook here: the result page asks the provider about the pending attempt itself.
    html = client.get(f"/pay/{slip.pay_token}/result").get_data(as_text=True)
    assert 'data-state="paid"' in html
    session.expire_all()
    assert by_id(session, Slip, slip.id).status == "paid"


def test_the_result_page_says_when_a_payment_failed(app, client, session, slip) -> None:  # type: ignore[no-untyped-def]
    _, fields = _form(client, slip.pay_token, "paypay")
    client.post(f"/pay/{slip.pay_token}/paypay", data=fields)
    ref = session.scalar(select(PaymentAttempt.provider_ref))
    app.extensions["kokin.adapters"]["paypay"].simulator.simulate_payment(ref, "FAILED")
    html = client.get(f"/pay/{slip.pay_token}/result?lang=en").get_data(as_text=True)
    assert 'data-state="failed"' in html and "did not go through" in html


def test_a_channel_the_fund_does_not_accept_is_a_friendly_message(client, session, slips) -> None:  # type: ignore[no-untyped-def]
    token = slips["fee"].pay_token
    _, fields = _form(client, token, "card")
    response = client.post(f"/pay/{token}/paypay", data=fields)
    assert response.status_code == 422
    assert "このお支払い方法ではお支払いいただけません" in response.get_data(as_text=True)
    assert _count(session, Payment) == 0


def test_a_provider_that_does_not_answer_is_a_friendly_503(app, client, session, slip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from adapters.base import RetryableError

    def down(_request: Any) -> Any:
        raise RetryableError("stripe: connection refused")

    monkeypatch.setattr(app.extensions["kokin.adapters"]["stripe"], "create_checkout", down)
    _, fields = _form(client, slip.pay_token, "card")
    response = client.post(f"/pay/{slip.pay_token}/card", data=fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 503 and "決済サービスに接続できません" in html and "Traceback" not in html
    monkeypatch.undo()
    assert client.post(f"/pay/{slip.pay_token}/card", data=fields).status_code == 303  # the same form may retry


def test_the_json_api_still_needs_no_csrf_token(client, slip) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/payments", json={"slip_number": slip.number, "channel": "card",
                                                     "return_url": "https://ward.test/"})
    assert response.status_code == 401  # refused for the missing API key, not for CSRF
