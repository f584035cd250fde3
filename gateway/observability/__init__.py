"""What operators see of a running gateway: request ids, logs, health and metrics (CONTRACT, Operations).

- every request gets an id (the edge's `X-Request-Id` when it sends a sane one), answered in
  the same header, put on every log line and on every audit event the request records;
- `/healthz`: the process answers; `/readyz`: the database answers and its schema is at the
  migrations' head (503 naming what is not ready); both without authentication;
- `/metrics`: Prometheus text, to the loopback side only unless the request carries the
  metrics token (`Authorization: Bearer $KOKIN_METRICS_TOKEN`); a request that came through a
  proxy (X-Forwarded-For) counts as from outside.
"""
from __future__ import annotations

import hmac
import os
import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from sqlalchemy import text

from gateway import migrate
from gateway.observability import context, metrics
from gateway.observability.logs import configure_logging

bp = Blueprint("ops", __name__)
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def init_observability(app: Flask) -> None:
    if app.config.get("LOG_FORMAT"):
        configure_logging(app.config["LOG_FORMAT"], app.config.get("LOG_LEVEL", "INFO"))
    db = app.extensions["kokin.db"]
    metrics.observe_pool(db.engine)
    app.extensions["kokin.migration_head"] = migrate.script_head(db.engine)
    app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = context.accepted_request_id(request.headers.get(context.HEADER))
        g.request_id_token = context.bind(g.request_id)

    @app.after_request
    def _answered(response: Response) -> Response:
        if "request_id" in g:
            response.headers[context.HEADER] = g.request_id
            _observe(response.status_code)
        return response

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        if "request_started" in g and not g.get("request_observed"):
            _observe(500)  # the request ended in an error no handler answered
        token = g.pop("request_id_token", None)
        if token is not None:
            context.unbind(token)


def _observe(status: int) -> None:
    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    metrics.observe_request(request.method, route, status, time.perf_counter() - g.request_started)
    g.request_observed = True


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    engine = current_app.extensions["kokin.db"].engine
    head = current_app.extensions["kokin.migration_head"]
    problems: list[str] = []
    revision = None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = migrate.current_revision(engine)
    except Exception as exc:  # any failure to reach it is "not ready", named; never a 500
        problems.append(f"the database does not answer ({type(exc).__name__})")
    else:
        if revision != head:
            problems.append(f"the database schema is at {revision or 'no revision'}, the code needs {head}: "
                            f"run `kokin db upgrade`")
    body = {"status": "not ready" if problems else "ready", "migration": revision, "head": head}
    if problems:
        body["problems"] = problems
    return jsonify(body), 503 if problems else 200


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    if not _may_scrape():
        return Response("not found\n", status=404, mimetype="text/plain")
    data, content_type = metrics.exposition(current_app.extensions["kokin.db"].session)
    return Response(data, content_type=content_type)


def _may_scrape() -> bool:
    token = os.environ.get(current_app.config.get("METRICS_TOKEN_ENV", "KOKIN_METRICS_TOKEN"), "")
    offered = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        return True
    return request.remote_addr in LOOPBACK and "X-Forwarded-For" not in request.headers
