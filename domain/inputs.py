"""What any text or JSON from outside must be before it goes further: the rules every door shares.

PostgreSQL cannot store NUL in text, and a lone surrogate (half of a UTF-16 pair, which
JSON's \\uD800 escapes can produce) cannot be encoded to UTF-8 by any driver: both were
500s deep inside a query. Python's json recurses once per nesting level, so a body nested
10,000 deep blows the stack before any schema sees it. The HTTP boundary
(gateway.boundary) and the provider adapters (adapters.base.load_json) refuse all three
with these functions.
"""
from __future__ import annotations

import re

MAX_JSON_DEPTH = 32  # our deepest document (a payment, its attempts) nests 3 levels; providers' events about 6
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a valid pair was joined into one character by the decoder
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def bad_character(text: str) -> str | None:
    """What makes `text` unfit to store ("a NUL character", "a lone surrogate ..."), or None when it is fit."""
    if "\x00" in text:
        return "a NUL character"
    if _LONE_SURROGATE.search(text):
        return "a lone surrogate (half of a UTF-16 pair)"
    return None


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `body` nests arrays and objects more than `limit` deep; read without parsing.

    Brackets inside strings do not count. A body that is not JSON at all may pass: parsing
    it then fails as it would have.
    """
    depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub(b'""', body)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
