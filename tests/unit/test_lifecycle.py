"""The state machines are data: transitions, terminal states, and the generated diagram."""
from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import DomainError
from domain.lifecycle import ATTEMPT, MACHINES, PAYMENT, REFUND, IllegalTransition, document
from gateway.errors import GatewayError
from gateway.fees import system_fee

DOCS = Path(__file__).resolve().parents[2] / "docs" / "states.md"


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_terminal_states_have_no_way_out(machine) -> None:  # type: ignore[no-untyped-def]
    for transition in machine.transitions:
        assert transition.source not in machine.terminal, transition


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_state_is_reachable_from_the_initial_state(machine) -> None:  # type: ignore[no-untyped-def]
    reached, frontier = {machine.initial}, [machine.initial]
    while frontier:
        state = frontier.pop()
        for t in machine.transitions:
            if t.source == state and t.target not in reached:
                reached.add(t.target)
                frontier.append(t.target)
    assert reached == set(machine.states)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_one_event_leads_to_one_state(machine) -> None:  # type: ignore[no-untyped-def]
    pairs = [(t.source, t.event) for t in machine.transitions]
    assert len(pairs) == len(set(pairs))


def test_an_illegal_transition_raises_with_a_stable_code() -> None:
    with pytest.raises(IllegalTransition) as caught:
        PAYMENT.next("refunded", "succeed")
    assert caught.value.code == "illegal_transition"
    assert caught.value.details == {"machine": "payment", "state": "refunded", "event": "succeed"}


def test_an_illegal_transition_is_in_the_gateway_s_one_error_family_and_answers_409() -> None:
    assert issubclass(IllegalTransition, DomainError) and issubclass(GatewayError, DomainError)
    assert IllegalTransition("x").status == 409


def test_money_accepted_late_still_counts() -> None:
    for state in ("failed", "expired", "cancelled", "unknown"):
        assert ATTEMPT.next(state, "succeed") == "succeeded"


def test_a_refund_is_approved_before_it_is_executed() -> None:
    assert not REFUND.allows("requested", "execute")
    assert REFUND.next(REFUND.next("requested", "approve"), "execute") == "processing"


def test_the_checked_in_diagram_is_generated_from_the_machines() -> None:
    assert DOCS.read_text(encoding="utf-8") == document()


CARD = {"first_band": 10_000, "first_fee": 40, "band": 10_000, "step": 83}


@pytest.mark.parametrize(("amount", "fee"), [(1, 40), (10_000, 40), (10_001, 123), (20_000, 123),
                                             (20_001, 206), (300_000, 40 + 29 * 83)])
def test_the_card_fee_is_a_first_band_then_a_step_per_further_band(amount: int, fee: int) -> None:
    assert system_fee(amount, CARD) == fee


def test_a_channel_without_a_schedule_charges_no_fee() -> None:
    assert system_fee(12_345, None) == 0
