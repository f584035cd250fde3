"""Writes sent as one statement: each write's parameters are renamed apart, escaped percent signs kept."""
from __future__ import annotations

from gateway.db import _prefixed


def test_named_parameters_are_renamed_and_escaped_percent_signs_are_left_alone() -> None:
    sql = "UPDATE t SET a = %(a)s WHERE b LIKE '%%(x)s%%' AND c = %(c_1)s"
    assert _prefixed(sql, "w3_") == "UPDATE t SET a = %(w3_a)s WHERE b LIKE '%%(x)s%%' AND c = %(w3_c_1)s"
