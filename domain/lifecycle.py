"""The payment state machines, declared as data.

Every transition names the event it records in the event record; an illegal transition
raises IllegalTransition. `mermaid()` draws a machine for the docs (docs/states.md is
generated from this module by `python -m domain.lifecycle`).
"""
from __future__ import annotations

from dataclasses import dataclass

from domain.errors import IllegalTransition


@dataclass(frozen=True)
class Transition:
    source: str
    event: str  # also the kind recorded in the event record, prefixed by the machine's name
    target: str


@dataclass(frozen=True)
class Machine:
    name: str
    initial: str
    terminal: frozenset[str]
    transitions: tuple[Transition, ...]

    @property
    def states(self) -> list[str]:
        seen = [self.initial]
        for t in self.transitions:
            for state in (t.source, t.target):
                if state not in seen:
                    seen.append(state)
        return seen

    def next(self, state: str, event: str) -> str:
        """Return the state `event` leads to from `state`; raise IllegalTransition if none."""
        for t in self.transitions:
            if t.source == state and t.event == event:
                return t.target
        raise IllegalTransition(f"{self.name} cannot {event} when {state}",
                                details={"machine": self.name, "state": state, "event": event})

    def allows(self, state: str, event: str) -> bool:
        return any(t.source == state and t.event == event for t in self.transitions)

    def moves(self, event: str) -> dict[str, str]:
        """Where `event` leads from each state that allows it: {source: target}."""
        return {t.source: t.target for t in self.transitions if t.event == event}

    def mermaid(self) -> str:
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        lines += [f"    {t.source} --> {t.target}: {t.event}" for t in self.transitions]
        lines += [f"    {state} --> [*]" for state in sorted(self.terminal)]
        return "\n".join(lines)


def _t(source: str, event: str, target: str) -> Transition:
    return Transition(source, event, target)


# A payment of one slip. It stays open while attempts fail: the resident may try again.
PAYMENT = Machine(
    name="payment",
    initial="open",
    terminal=frozenset({"refunded", "cancelled"}),
    transitions=(
        _t("open", "succeed", "succeeded"),
        _t("open", "cancel", "cancelled"),
        _t("succeeded", "store_void", "cancelled"),  # 速報取消: the store voided the bill payment
        _t("succeeded", "refund_part", "partially_refunded"),
        _t("succeeded", "refund_all", "refunded"),
        _t("partially_refunded", "refund_part", "partially_refunded"),
        _t("partially_refunded", "refund_all", "refunded"),
    ),
)

# One try at a provider. Money accepted is never lost: a provider that reports success
# for an attempt we had given up on (expired, failed, unknown) still wins.
ATTEMPT = Machine(
    name="attempt",
    initial="created",
    terminal=frozenset({"succeeded"}),
    transitions=(
        _t("created", "open", "pending"),
        _t("created", "fail", "failed"),
        _t("created", "lose_track", "unknown"),
        _t("pending", "succeed", "succeeded"),
        _t("pending", "fail", "failed"),
        _t("pending", "expire", "expired"),
        _t("pending", "cancel", "cancelled"),
        _t("pending", "lose_track", "unknown"),
        _t("unknown", "open", "pending"),
        _t("unknown", "succeed", "succeeded"),
        _t("unknown", "fail", "failed"),
        _t("unknown", "expire", "expired"),
        _t("failed", "succeed", "succeeded"),
        _t("expired", "succeed", "succeeded"),
        _t("cancelled", "succeed", "succeeded"),
    ),
)

# A refund: requested (by staff or automatically for a double payment), approved by a
# second person, then carried out by the provider or by the ward's bank transfer.
REFUND = Machine(
    name="refund",
    initial="requested",
    terminal=frozenset({"succeeded", "rejected"}),
    transitions=(
        _t("requested", "approve", "approved"),
        _t("requested", "reject", "rejected"),
        _t("approved", "execute", "processing"),
        _t("processing", "resume", "processing"),  # pending at the provider, or its answer lost: ask again
        _t("processing", "succeed", "succeeded"),
        _t("processing", "fail", "failed"),
        _t("failed", "retry", "processing"),
    ),
)

MACHINES = (PAYMENT, ATTEMPT, REFUND)


def document() -> str:
    """Return the Markdown page of every machine's diagram."""
    parts = ["# Payment states", "", "Generated from `domain/lifecycle.py` by "
             "`python -m domain.lifecycle > docs/states.md`; do not edit by hand.", ""]
    for machine in MACHINES:
        parts += [f"## {machine.name}", "", "```mermaid", machine.mermaid(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(document(), end="")
