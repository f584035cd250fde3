"""Sandbox wiring shared by every provider's simulator: each sits behind a `requests` session.

A simulator answers `handle(method, path, headers, body)` with `(status, JSON document)`,
or with a Reply when the provider's own headers and formatting matter (Stripe's
Request-Id and Idempotent-Replayed). `mount_simulator` routes the provider's base URL on a
session to it and refuses every other URL, so sandbox mode runs the production HTTP code
(our thin clients, or the provider's SDK on that session) and never leaves the process.
"""
from __future__ import annotations

import http
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict


@dataclass(frozen=True)
class Reply:
    """A simulator's answer as the provider formats it: status, JSON text and headers."""

    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)


class HandlesRequests(Protocol):
    def handle(self, method: str, path: str, headers: Mapping[str, str],
               body: bytes) -> tuple[int, dict[str, Any]] | Reply: ...


def mount_simulator(session: requests.Session, base_url: str, simulator: HandlesRequests, *,
                    content_type: str = "application/json", with_query: bool = False) -> None:
    """Route `base_url` on `session` to `simulator`; every other URL is refused."""
    session.mount("https://", _NoNetwork())
    session.mount("http://", _NoNetwork())
    session.mount(base_url.rstrip("/"), _SimulatorTransport(simulator, content_type, with_query))


class _SimulatorTransport(BaseAdapter):
    """A `requests` transport that hands each prepared request to a simulator."""

    def __init__(self, simulator: HandlesRequests, content_type: str, with_query: bool) -> None:
        super().__init__()
        self._simulator = simulator
        self._content_type = content_type
        self._with_query = with_query

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            raise requests.RequestException("the simulator takes whole bodies only")
        headers = {key: value.decode("latin-1") if isinstance(value, bytes) else value
                   for key, value in request.headers.items()}
        url = urlsplit(str(request.url))
        path = url.path + (f"?{url.query}" if self._with_query and url.query else "")
        answer = self._simulator.handle(str(request.method), path, headers, body)
        if not isinstance(answer, Reply):
            answer = Reply(answer[0], json.dumps(answer[1], ensure_ascii=False))
        response = requests.Response()
        response.status_code = answer.status
        response.reason = http.HTTPStatus(answer.status).phrase
        response.headers = CaseInsensitiveDict({"Content-Type": self._content_type, **answer.headers})
        response._content = answer.text.encode("utf-8")
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


class _NoNetwork(BaseAdapter):
    """Sandbox mode never leaves the process."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        raise requests.ConnectionError(f"sandbox mode: no network access to {request.url}")

    def close(self) -> None:
        pass
