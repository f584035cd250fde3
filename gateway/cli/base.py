"""What every command shares: app context, progress bars, one-line failures."""
from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session
from werkzeug.serving import WSGIRequestHandler, run_simple

from domain.calendar import business_date
from domain.errors import DomainError
from domain.layouts import LayoutError
from gateway.crypto import DataCipher
from gateway.db import Database, utcnow
from gateway.hardening import redact_target
from gateway.observability import context

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("gateway.progress")


class ClickProgress:
    """Progress on the terminal: a bar per stage, on stderr so stdout stays parseable.

    When the logs are JSON (KOKIN_LOG_FORMAT=json) and stderr is no terminal, as under systemd,
    each stage is a log line instead (its start with the count to do, its end with the time),
    so that stderr stays one JSON object a line.
    """

    def __init__(self) -> None:
        self._bar: Any = None
        self._stage: tuple[str, int, float] | None = None
        self._as_log = current_app.config.get("LOG_FORMAT") == "json" and not sys.stderr.isatty()

    def start(self, label: str, total: int) -> None:
        self.finish()
        if self._as_log:
            self._stage = (label, total, time.perf_counter())
            log.info("%s: %d to do", label, total)
            return
        self._bar = click.progressbar(length=max(total, 1), label=label.ljust(28), file=sys.stderr,
                                      show_pos=True, show_eta=True)
        self._bar.__enter__()

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def finish(self) -> None:
        if self._stage is not None:
            label, total, began = self._stage
            log.info("%s: %d done in %.1f s", label, total, time.perf_counter() - began)
            self._stage = None
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def today() -> date:
    """Today's business date (Asia/Tokyo) on the gateway's clock."""
    return business_date(utcnow())


def database() -> Database:
    return current_app.extensions["kokin.db"]  # type: ignore[no-any-return]


def session() -> Session:
    """The command's session; `operation` closes it when the command ends."""
    return database().scoped()


def cipher() -> DataCipher:
    return current_app.extensions["kokin.cipher"]  # type: ignore[no-any-return]


def operation(func: F) -> F:
    """Run a command in the app context; turn expected failures into a one-line reason."""

    @functools.wraps(func)
    @with_appcontext
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with context.operation(f"cli-{func.__name__}"):  # the command's log lines and events under one id
                return func(*args, **kwargs)
        except DomainError as exc:
            for line in exc.details.get("errors", []):
                click.echo(f"  {line}", err=True)
            raise click.ClickException(exc.message) from exc
        except BrokenPipeError:
            raise  # the reader of stdout has gone (`kokin ... | head`): the entry point ends quietly
        except (LayoutError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            database().scoped.remove()

    return wrapper  # type: ignore[return-value]


def municipality_option(func: F) -> F:
    """Add --municipality, defaulting to the only configured municipality."""
    return click.option("--municipality", "municipality_code", default=None,
                        help="6-digit local government code (default: the only configured one)")(func)


def resolve_municipality(code: str | None) -> str:
    if code:
        return code
    configured = current_app.config["MUNICIPALITIES"]
    if len(configured) != 1:
        raise click.ClickException("several municipalities are configured: name one with --municipality")
    return str(configured[0]["code"])


def serve_app(port: int) -> None:
    """Serve the command's app on 127.0.0.1 until Ctrl-C: Werkzeug's development server, threaded.

    Werkzeug directly, not `app.run`, which does nothing when Flask's CLI started the process.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # the app, not its proxy
    run_simple("127.0.0.1", port, app, use_reloader=False, use_debugger=False, threaded=True,
               request_handler=RedactingRequestHandler)


class RedactingRequestHandler(WSGIRequestHandler):
    """The development server's request log without secrets in query strings (PayPay's `?token=`)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.path = redact_target(self.path)
        self.requestline = redact_target(self.requestline)
        super().log_request(code, size)
