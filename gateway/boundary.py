"""The request boundary: what every request must be before a view, a schema or the database sees it.

- Text no database can store (domain.inputs.bad_character: NUL, a lone surrogate) in the
  path, the query string, a form, a JSON body or a header is refused with 400
  `invalid_characters`, naming where. The error handlers answer the API with the envelope
  and the staff and pay pages with their HTML page.
- A JSON body nested deeper than domain.inputs.MAX_JSON_DEPTH is refused (400
  `json_too_deep`) before it is parsed: Python's parser recurses once a level.
- `<int:...>` in any route is a database id: ASCII digits, at most MAX_ID (PostgreSQL's
  integer). A larger number matches no route (404) instead of failing in the query.

Views that read their body raw (provider notifications, uploaded files) are marked
`raw_body`: the boundary leaves their body alone, and the adapter or the file layout reads it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Flask, current_app, request
from werkzeug.routing import IntegerConverter, Map

from domain.inputs import MAX_JSON_DEPTH, bad_character, json_too_deep
from gateway.errors import InvalidCharacters, JsonTooDeep

MAX_ID = 2**31 - 1  # ids are PostgreSQL integer columns (SQLite's are wider: the smaller bound holds for both)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
F = TypeVar("F", bound=Callable[..., Any])


class IdConverter(IntegerConverter):
    """`<int:...>`: 0 to MAX_ID in ASCII digits; anything else matches no route."""

    regex = r"[0-9]{1,10}"

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def raw_body(view: F) -> F:
    """Mark a view that reads its request body itself, as bytes: the boundary does not parse it."""
    view.kokin_raw_body = True  # type: ignore[attr-defined]
    return view


def init_boundary(app: Flask) -> None:
    """Bound `<int:...>` route values and check every request; call before any blueprint is registered."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(check_request)


def check_request() -> None:
    """Raise InvalidCharacters or JsonTooDeep for a request no view should see."""
    _check("path", None, request.path)
    for name, value in request.args.items(multi=True):
        _check("query", name, name, value)
    for name, value in request.headers.items():
        _check("header", name, name, value)
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "kokin_raw_body", False):
        return
    if request.mimetype in FORM_TYPES:
        for name, value in request.form.items(multi=True):
            _check("form", name, name, value)
    elif request.is_json and request.content_length != 0:
        if json_too_deep(request.get_data(cache=True)):
            raise JsonTooDeep(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        for field, text in _strings(request.get_json(), ""):  # a body that does not parse: 400 from Flask
            _check("json", field or None, text)


def _check(where: str, field: str | None, *texts: str) -> None:
    for text in texts:
        problem = bad_character(text)
        if problem is not None:
            shown = None if field is None else _shown(field)
            named = f" ({shown})" if shown else ""
            raise InvalidCharacters(f"the request's {where}{named} contains {problem}, which cannot be stored",
                                    details={"where": where, **({"field": shown} if shown else {})})


def _shown(name: str) -> str:
    """A field's name fit to echo: a NUL or a lone surrogate in it written as an escape."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _strings(value: Any, field: str) -> Iterator[tuple[str, str]]:
    """Every string of a parsed JSON value, keys included, with its dotted field name."""
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if field else str(key)
            yield name, key
            yield from _strings(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{field}.{index}" if field else str(index))
