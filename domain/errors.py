"""The root of the one error family: a refused request with a stable snake_case code.

Pure, so that the domain's own refusals (an illegal state transition) belong to the same
family as the gateway's: gateway.errors.GatewayError and its kinds build on DomainError,
and every handler and command that reports errors catches DomainError.
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An expected failure with a stable snake_case code.

    `status` is the HTTP status a caller answering over HTTP gives it: a number, so that
    nothing here needs a web framework.
    """

    code = "domain_error"
    status = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code
        if status:
            self.status = status


class IllegalTransition(DomainError):
    """A state machine refused an event in the state it is in (domain.lifecycle)."""

    code = "illegal_transition"
    status = 409
