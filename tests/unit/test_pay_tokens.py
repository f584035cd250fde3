"""A slip's pay token names its ward, so the pay page finds the slip on the ward's node (domain.identifiers)."""
from __future__ import annotations

import secrets

import pytest

from domain.identifiers import is_wardless_pay_token, pay_token_maker, ward_code_of_pay_token

URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_new_token_names_its_ward_and_stays_url_safe() -> None:
    maker = pay_token_maker("131075")
    tokens = {maker() for _ in range(1_000)} | {pay_token_maker("131075")()}

    assert len(tokens) == 1_001  # 128 random bits each
    for token in tokens:
        assert len(token) == 29 and set(token) <= URL_SAFE  # fits the slips' column (43) and a QR link
        assert token.startswith("131075-") and ward_code_of_pay_token(token) == "131075"
        assert not is_wardless_pay_token(token)


def test_a_token_made_before_tokens_named_their_ward_is_known_by_its_shape() -> None:
    for _ in range(200):
        token = secrets.token_urlsafe(16)  # how tokens were made before
        assert is_wardless_pay_token(token) and ward_code_of_pay_token(token) is None


@pytest.mark.parametrize("token", [
    "131076-" + "a" * 22,  # the code's check digit is wrong
    "131075-" + "a" * 21, "131075-" + "a" * 23, "131075-" + "a" * 21 + "%",  # not made by us
    "131075_" + "a" * 22, "１３１０７５-" + "a" * 22, "131075-" + "a" * 22 + "\n", "",
])
def test_a_token_not_naming_a_ward_names_none(token: str) -> None:
    assert ward_code_of_pay_token(token) is None


@pytest.mark.parametrize("token", ["a" * 21, "a" * 23, "a" * 21 + ".", "a" * 21 + "\n", "abc\x00def", ""])
def test_a_string_of_another_shape_is_no_token_made_before_either(token: str) -> None:
    assert not is_wardless_pay_token(token)


def test_a_token_is_made_only_for_a_municipality_code() -> None:
    with pytest.raises(ValueError, match="local government code"):
        pay_token_maker("131076")
