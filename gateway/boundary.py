"""Hostile input stopped at the door, before any view or database sees it: a clear 4xx, never a 500.

- Paths and query strings must be valid UTF-8 without NUL (PostgreSQL refuses NUL in text,
  psycopg cannot send a lone surrogate); form fields without NUL.
- JSON bodies of the API: at most MAX_JSON_DEPTH deep, strings and keys without NUL or lone
  surrogates. (Provider notifications are parsed by their adapters only after the signature.)
- Numbers in paths and query strings: `<int:...>` routes match only up to 2**31 - 1, the
  largest id the tables' integer keys hold (a larger id is a 404, as an unknown one), and a
  query number of more than 18 digits or a page beyond MAX_PAGE is refused with the field named.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, request
from werkzeug.routing import IntegerConverter

from gateway.errors import InvalidCharacters, InvalidJson, ValidationFailed

MAX_JSON_DEPTH = 32
MAX_PAGE = 1_000_000
ID_MAX = 2**31 - 1  # the tables' primary keys are PostgreSQL integers
_HUGE_NUMBER = re.compile(r"[-+]?\d{19,}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` within the ids' range: a larger number matches no route (404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", ID_MAX)
        super().__init__(map, *args, **kwargs)


def init_boundary(app: Flask) -> None:
    """Before any rule is added: the bounded `int` converter; and the checks before every request."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.before_request(check_request)


def check_request() -> None:
    environ = request.environ
    path = environ.get("PATH_INFO", "")
    _check_text(_wsgi_text(path), "the path")
    query = environ.get("QUERY_STRING", "")
    if query:
        _check_text(_query_text(query), "the query string")
        _check_numbers()
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise InvalidCharacters(f"form field {name!r} contains a NUL byte", details={"field": name})
    if request.path.startswith("/api/") and request.is_json and request.content_length:
        _check_json(request.get_data(cache=True))


def _wsgi_text(value: str) -> str:
    """PATH_INFO as WSGI hands it (bytes as latin-1), read as UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise InvalidCharacters("the path is not valid UTF-8") from None


def _query_text(query: str) -> str:
    try:
        return unquote_to_bytes(query.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCharacters("the query string is not valid UTF-8") from None


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidCharacters(f"{where} contains a NUL byte")
    if _SURROGATE.search(text):
        raise InvalidCharacters(f"{where} contains a lone surrogate")


def _check_numbers() -> None:
    for name, value in request.args.items(multi=True):
        if _HUGE_NUMBER.fullmatch(value.strip()):
            raise ValidationFailed(f"{name} is out of range", details={"fields": {"query": {name: ["out of range"]}}})
        if name == "page" and value.isdigit() and int(value) > MAX_PAGE:
            raise ValidationFailed(f"page is beyond {MAX_PAGE:,}",
                                   details={"fields": {"query": {"page": [f"at most {MAX_PAGE:,}"]}}})


def _check_json(data: bytes) -> None:
    try:
        document = json.loads(data)
    except RecursionError:
        raise InvalidJson(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        return  # not JSON: the view's own parser says so, naming where
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_json_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidJson(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                if key is not None:
                    _check_json_text(key)
                stack.append((item, depth + 1))


def _check_json_text(text: str) -> None:
    if "\x00" in text:
        raise InvalidCharacters("a JSON string contains a NUL character")
    if _SURROGATE.search(text):
        raise InvalidCharacters("a JSON string contains a lone surrogate")
