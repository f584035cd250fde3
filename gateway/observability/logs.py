"""Logging: one line a record, JSON in production (KOKIN_LOG_FORMAT=json), text elsewhere.

Every line carries the time (UTC), level, logger, message and the request id of the request or
job it belongs to. Personal data is never passed to a logger (see README, "Logs"); a test scans
the logs of a whole demo for names, payer references and tokens.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from gateway.observability.context import current_request_id

FORMATS = ("json", "text")
_MARK = "_kokin_handler"


def _add_request_id(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise RuntimeError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    renderer: Any = (structlog.processors.JSONRenderer(ensure_ascii=False) if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, _add_request_id,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )


def configure_logging(fmt: str = "text", level: str = "INFO", stream: Any = None) -> None:
    """Put one handler of ours on the root logger (replacing an earlier one of ours); idempotent."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # SQLAlchemy logs every statement with its parameters at INFO: values that may be personal data.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
