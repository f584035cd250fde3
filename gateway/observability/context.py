"""The request id: taken from the edge (`X-Request-Id`) or made here, carried to logs and audit events.

A context variable, so that services deep below a view, and the log lines and events they
write, know the request they serve without being handed it. Commands and scheduler jobs set
one of their own (`operation`), so that their events and lines can be found together too.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = "X-Request-Id"
_REQUEST_ID: ContextVar[str | None] = ContextVar("kokin_request_id", default=None)
# What the edge may hand over: a load balancer's or a client's id, never a place for text.
_ACCEPTED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")


def current_request_id() -> str | None:
    return _REQUEST_ID.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(offered: str | None) -> str:
    """The edge's id when it is one (8 to 64 letters, digits and . _ : -), else a new one."""
    return offered if offered is not None and _ACCEPTED.fullmatch(offered) else new_request_id()


@contextmanager
def operation(name: str, request_id: str | None = None) -> Iterator[str]:
    """Run a command or a job under an id of its own (`<name>-<random>`); the id."""
    value = request_id or f"{name}-{new_request_id()[:16]}"
    token = _REQUEST_ID.set(value)
    try:
        yield value
    finally:
        _REQUEST_ID.reset(token)


def bind(value: str) -> object:
    """Set the id for the rest of this context; the token `unbind` takes."""
    return _REQUEST_ID.set(value)


def unbind(token: object) -> None:
    _REQUEST_ID.reset(token)  # type: ignore[arg-type]
