"""Our attempt reference names its ward and fits every provider's limits (domain.identifiers)."""
from __future__ import annotations

import re

import pytest

from domain.identifiers import ATTEMPT_REFERENCE_LENGTH, make_attempt_reference, ward_code_of_reference

# The strictest limits among the providers it is sent to (domain/providers.md and the adapters):
# Square's reference_id at most 40 characters, PayPay's merchantPaymentId A-Z a-z 0-9 - _.
SQUARE_REFERENCE_MAX = 40
PAYPAY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def test_a_new_reference_names_its_ward_and_fits_every_provider() -> None:
    references = {make_attempt_reference("131075") for _ in range(1_000)}

    assert len(references) == 1_000  # 120 random bits each
    for reference in references:
        assert len(reference) == ATTEMPT_REFERENCE_LENGTH <= SQUARE_REFERENCE_MAX
        assert PAYPAY_ID.fullmatch(reference) and reference.isascii()
        assert reference.startswith("kk-131075-") and ward_code_of_reference(reference) == "131075"


@pytest.mark.parametrize("reference", [
    "kk-7734bbe6aa6d4690a2a900b894f1daad",  # made before references named their ward (kk-<uuid4 hex>)
    "KOKIN-CONTRACT-000001", "kk-not-ours", "",
    "kk-131076-" + "0" * 30,  # the code's check digit is wrong
    "kk-131075-" + "0" * 29, "kk-131075-" + "0" * 31, "kk-131075-" + "A" * 30,  # not made by us
    "kk-131075-" + "0" * 30 + "\n", "kk-１３１０７５-" + "0" * 30,
])
def test_a_reference_that_is_not_one_naming_a_ward_names_none(reference: str) -> None:
    assert ward_code_of_reference(reference) is None


def test_a_reference_is_made_only_for_a_municipality_code() -> None:
    with pytest.raises(ValueError, match="local government code"):
        make_attempt_reference("131076")
