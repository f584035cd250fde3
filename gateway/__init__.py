"""kokin-gateway: a cashless payment gateway for public funds (公金) of a Japanese ward."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from adapters.registry import load_adapters, load_agency_adapters
from gateway.boundary import init_boundary
from gateway.config import load_settings, resolve_secrets
from gateway.crypto import load_cipher
from gateway.db import Database, ReadReplica
from gateway.errors import register_error_handlers
from gateway.hardening import check_production, init_hardening


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, database, cipher, API and error handlers. Nothing at import."""
    settings = load_settings(config)
    app = Flask(__name__, instance_path=settings.get("INSTANCE_PATH"), instance_relative_config=True)
    app.config.update(settings)
    instance = Path(app.instance_path)
    if not app.config["DATABASE_URL"]:
        instance.mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'kokin.sqlite3'}"
    adapter_settings = resolve_secrets(app.config["ADAPTERS"])
    agency_settings = resolve_secrets(app.config["AGENCIES"])
    if app.config["PRODUCTION"]:
        check_production(app.config, adapter_settings, agency_settings)  # every problem at once, before any use
    db = Database(app.config["DATABASE_URL"], app.config["DATABASE_POOLER"])
    app.extensions["kokin.db"] = db
    replica = ReadReplica(db, app.config["DATABASE_REPLICA_URL"], app.config["DATABASE_POOLER"])
    app.extensions["kokin.replica"] = replica
    app.extensions["kokin.cipher"] = load_cipher(
        app.config["DATA_KEYS_ENV"], instance, sandbox=app.config["SANDBOX"],
        payer_ref_env=app.config["PAYER_REF_KEY_ENV"],
    )

    app.extensions["kokin.adapters"] = load_adapters(adapter_settings)
    app.extensions["kokin.agencies"] = load_agency_adapters(agency_settings)

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        db.scoped.remove()
        replica.remove()

    from gateway.observability import init_observability

    init_observability(app)  # first: every request, a refused one too, gets its id, its log context and its count
    init_boundary(app)  # before any route: bounded <int:...>, no NUL or lone surrogate, no deep JSON
    from gateway.i18n import init_i18n

    init_i18n(app)  # the pages' language: Japanese, English on a switch
    from gateway.api import register_api

    register_api(app)
    from gateway.staff import init_staff

    init_staff(app)
    from gateway.site import bp as site_pages  # the front page and the API document

    app.register_blueprint(site_pages)
    from gateway.sandbox_pages import init_sandbox

    init_sandbox(app)  # sandbox mode only: simulators' state in the database, their pages under /sandbox
    if app.config["TRUSTED_PROXIES"]:  # the client's address and scheme as the load balancer saw them
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    init_hardening(app)  # security headers on every response, body limits, no secret in access logs
    register_error_handlers(app)  # after the API: flask-smorest registers a handler of its own
    return app
