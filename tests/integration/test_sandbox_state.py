"""Sandbox providers shared by processes: `kokin recon run` after `kokin demo` sees the demo's payments."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.simulator_state import MemoryStore
from adapters.stripe.simulator import StripeSimulator
from domain.calendar import TOKYO
from gateway import create_app
from gateway.cli import cli
from gateway.models import Payment, ReconException, SandboxObject
from tests.conftest import MUNICIPALITIES


def _process(db_url: str, folder: Path, **config: Any) -> Any:
    """A new app on the same database: what another `kokin` process builds."""
    return create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(folder),
                       "MUNICIPALITIES": MUNICIPALITIES, **config})


def _demo_then_recon(app: Any, db_url: str, folder: Path, **config: Any) -> tuple[Any, str]:
    demo = app.test_cli_runner().invoke(cli, ["demo", "--payers", "150", "--no-serve"])
    assert demo.exit_code == 0, demo.output
    app.extensions["kokin.db"].dispose()  # the demo's process ends
    recon = _process(db_url, folder, **config)
    try:
        today = datetime.now(TOKYO).date().isoformat()
        result = recon.test_cli_runner().invoke(cli, ["recon", "run", "--date", today])
        assert result.exit_code == 0, result.output
    finally:
        recon.extensions["kokin.db"].dispose()
    return result, today


def test_recon_in_another_process_after_the_demo_raises_no_missing_in_settlement(app, session, db_url,  # type: ignore[no-untyped-def]
                                                                                  tmp_path) -> None:
    result, _ = _demo_then_recon(app, db_url, tmp_path / "recon")
    missing = list(session.scalars(select(ReconException).where(ReconException.kind == "missing_in_settlement")))
    assert missing == [], [(m.subject_key, m.details) for m in missing]
    assert "settlement stripe: the provider's settlement of the day" in result.output
    assert "note: SANDBOX_STATE is memory" not in result.stderr
    card = session.scalars(select(Payment).where(Payment.channel == "card")).all()
    assert card  # the demo paid by card, and the other process's Stripe settled exactly those
    scopes = set(session.scalars(select(SandboxObject.scope)))
    assert {"stripe", "paypay", "square"} <= scopes


def test_with_simulators_in_memory_another_process_sees_none_of_the_demos_payments(app, session, db_url,  # type: ignore[no-untyped-def]
                                                                                    tmp_path) -> None:
    # What the shared state fixes: the same run with each process's providers in memory.
    app.extensions["kokin.db"].dispose()
    memory = _process(db_url, tmp_path / "demo", SANDBOX_STATE="memory")
    result, _ = _demo_then_recon(memory, db_url, tmp_path / "recon", SANDBOX_STATE="memory")
    missing = set(session.scalars(select(ReconException.subject_key).where(
        ReconException.kind == "missing_in_settlement")))
    assert missing, "the card payments and counter sales should be missing from an empty provider"
    assert "note: SANDBOX_STATE is memory" in result.stderr


def test_two_simulators_on_one_store_see_each_others_sessions() -> None:
    store = MemoryStore()
    first, second = StripeSimulator(), StripeSimulator()
    first.state.attach(store, "stripe")
    second.state.attach(store, "stripe")
    session = first.handle("POST", "/v1/checkout/sessions", {
        "mode": "payment", "success_url": "https://ward.example/done",
        "line_items": [{"quantity": "1", "price_data": {"currency": "jpy", "unit_amount": "1200",
                                                        "product_data": {"name": "住民税"}}}]},
        {"Authorization": "Bearer sk_test_x"})
    assert session[0] == 200
    session_id = json.loads(session[2])["id"]
    second.simulate_payment(session_id, "paid")
    assert first.checkout_session(session_id)["payment_status"] == "paid"
    assert first.event_types(session_id) == ["charge.succeeded", "payment_intent.succeeded",
                                             "checkout.session.completed"]
    with pytest.raises(RuntimeError, match="inside `state.unit\\(\\)`"):
        first.state.bucket("objects")
