"""Configuration classes, picked by KOKIN_ENV; a ward's file (KOKIN_CONFIG) overrides them.

Secrets never live in files: a config file names the environment variable that holds each.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")


class Config:
    TESTING = False
    # Production (KOKIN_ENV=production) refuses to start unless it is safe to take real money
    # (gateway.hardening.check_production).
    PRODUCTION = False
    # Request bodies, bytes: any request; a provider notification (read only after this check);
    # an agency file posted to the API (a day of a million 120-byte records is 122 MB).
    MAX_CONTENT_LENGTH = 1024 * 1024
    WEBHOOK_MAX_BYTES = 256 * 1024
    AGENCY_FILE_MAX_BYTES = 256 * 1024 * 1024
    # Staff sign-in (gateway.services.staff_sign_in, staff_sessions): a session ends after this
    # many idle minutes or hours in all; a user is locked after this many failures in a row for
    # these minutes (0: until an administrator unlocks); an address that failed this often within
    # the window is refused (429) until the oldest failure leaves it.
    STAFF_IDLE_TIMEOUT_MINUTES = 30
    STAFF_SESSION_HOURS = 12
    STAFF_MAX_FAILED_SIGN_INS = 5
    STAFF_LOCKOUT_MINUTES = 15
    STAFF_ADDRESS_MAX_FAILURES = 20
    STAFF_ADDRESS_WINDOW_MINUTES = 10
    # None = the embedded default: a SQLite file in the instance folder.
    DATABASE_URL: str | None = None
    # Environment variable holding the comma-separated Fernet keys for personal data,
    # newest first. Unset in sandbox mode: a key file in the instance folder is made.
    DATA_KEYS_ENV = "KOKIN_DATA_KEYS"
    # Environment variable holding the key (32 bytes or more) of the keyed hash that stands for
    # each payer reference (gateway.crypto). Unset in sandbox mode: a key file in the instance
    # folder is made. Never rotated by `kokin keys rotate`: see README, "Keys".
    PAYER_REF_KEY_ENV = "KOKIN_PAYER_REF_KEY"
    SANDBOX = True
    # Adapter name -> its settings. A key ending in `_env` names the environment variable
    # holding that secret (`secret_key_env = "STRIPE_SECRET_KEY"` gives `secret_key`).
    ADAPTERS: dict[str, dict[str, Any]] = {"stripe": {"sandbox": True}, "paypay": {"sandbox": True},
                                           "square": {"sandbox": True}}
    # Collection agencies (adapter name -> settings: layout, data_types, chains, pull_url,
    # company_id, password_env, remitter_kana: the name(s) in half-width kana its remittances
    # carry on the ward's bank statement). Sandbox: both shipped layouts with the default chain
    # table, and made-up remitter names.
    AGENCIES: dict[str, dict[str, Any]] = {"agency-fixed120": {"remitter_kana": ["ｶ)ｻﾝﾌﾟﾙｼﾕｳﾉｳﾀﾞｲｺｳ"]},
                                           "agency-csv": {"remitter_kana": ["ｶ)ｻﾝﾌﾟﾙｼｰｴｽﾌﾞｲ"]},
                                           # eLTAX payment data (layout, methods, remitter_kana): its money is
                                           # remitted by 地方税共同機構.
                                           "eltax-csv": {"remitter_kana": ["ﾁﾎｳｾﾞｲｷｮｳﾄﾞｳｷｺｳ"]}}
    # Each agency's fee per payment (yen), invoiced separately; a deposit short by exactly
    # these fees is reported as fee_netted (gross budgeting).
    AGENCY_FEES: dict[str, int] = {"agency-fixed120": 60, "agency-csv": 55}
    # Where sandbox simulators keep their state: "database" (the table sandbox_state, shared by
    # `kokin serve`, `kokin recon run` and the scheduler) or "memory" (each process its own).
    SANDBOX_STATE = "database"
    # The gateway's address in the simulated providers' page links made outside a request
    # (`kokin demo`); None: the first municipality's pay_base_url.
    SANDBOX_BASE_URL: str | None = None
    # Which adapter carries each online channel.
    CHANNEL_ADAPTERS: dict[str, str] = {"card": "stripe", "paypay": "paypay"}
    # System usage fees charged to the payer on top, per channel (gateway.fees).
    FEE_SCHEDULES: dict[str, dict[str, int]] = {
        "card": {"first_band": 10_000, "first_fee": 40, "band": 10_000, "step": 83},
    }
    # 地方税お支払サイト, where a fund whose channels include `eltax` is paid online (the pay
    # page links there instead of offering the gateway's card or PayPay checkout). The site of
    # 地方税共同機構, the same for every municipality; a ward's file may set `eltax_pay_url`.
    ELTAX_PAY_URL = "https://www.payment.eltax.lta.go.jp/"
    LEDGER_LAYOUT = "kokin-csv"
    # Logs (gateway.observability.logs): "json" (one object a line) or "text"; None leaves the
    # process's logging as it is (tests, `kokin` commands on a terminal). KOKIN_LOG_FORMAT sets it.
    LOG_FORMAT: str | None = None
    LOG_LEVEL = "INFO"
    # Environment variable holding the token `/metrics` asks of a scraper not on the loopback side.
    METRICS_TOKEN_ENV = "KOKIN_METRICS_TOKEN"  # noqa: S105 (a variable's name)
    # A read replica for reports and other long reads (KOKIN_DATABASE_REPLICA_URL); None: the primary.
    DATABASE_REPLICA_URL: str | None = None
    # "transaction" when DATABASE_URL is a pooler in transaction mode (PgBouncer; KOKIN_DATABASE_POOLER);
    # then KOKIN_DATABASE_DIRECT_URL (a session connection: PostgreSQL itself, or a session-mode
    # pool) carries the scheduler's leader lock. None: DATABASE_URL is PostgreSQL itself.
    DATABASE_POOLER: str | None = None
    DATABASE_DIRECT_URL: str | None = None
    # How many proxies in front of the app append to X-Forwarded-For and set X-Forwarded-Proto
    # (KOKIN_TRUSTED_PROXIES; the load balancer: 1). 0 trusts none: behind a load balancer every
    # request would then come from its address, and sign-in throttling per address would
    # throttle everyone at once.
    TRUSTED_PROXIES = 0
    JSON_AS_ASCII = False
    API_TITLE = "kokin-gateway"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    API_PAGE_SIZE_MAX = 500


class DevelopmentConfig(Config):
    pass


class TestConfig(Config):
    TESTING = True


class ProductionConfig(Config):
    PRODUCTION = True
    SANDBOX = False
    LOG_FORMAT = "json"
    ADAPTERS: dict[str, dict[str, Any]] = {}  # a ward's KOKIN_CONFIG names its providers
    AGENCIES: dict[str, dict[str, Any]] = {}


def resolve_secrets(adapters: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Replace every `<name>_env` setting by `<name>` read from that environment variable."""
    resolved: dict[str, dict[str, Any]] = {}
    for adapter, settings in adapters.items():
        resolved[adapter] = {}
        for key, value in settings.items():
            if key.endswith("_env"):
                if value not in os.environ:
                    raise RuntimeError(f"adapter {adapter}: environment variable {value} ({key}) is not set")
                resolved[adapter][key.removesuffix("_env")] = os.environ[value]
            else:
                resolved[adapter][key] = value
    return resolved


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the settings: class from KOKIN_ENV, then KOKIN_CONFIG, env, then `overrides`."""
    env_name = os.environ.get("KOKIN_ENV", "development")
    if env_name not in CONFIGS:
        raise RuntimeError(f"KOKIN_ENV={env_name!r} is not one of {', '.join(CONFIGS)}")
    cls = CONFIGS[env_name]
    settings = {k: getattr(cls, k) for k in dir(cls) if k.isupper()}
    settings["MUNICIPALITIES"] = _read_toml(DEFAULTS_FILE)["municipalities"]
    config_file = os.environ.get("KOKIN_CONFIG")
    if config_file:
        settings.update(_file_settings(Path(config_file)))
    if os.environ.get("KOKIN_DATABASE_URL"):
        settings["DATABASE_URL"] = os.environ["KOKIN_DATABASE_URL"]
    for variable, key in (("KOKIN_DATABASE_REPLICA_URL", "DATABASE_REPLICA_URL"), ("KOKIN_LOG_FORMAT", "LOG_FORMAT"),
                          ("KOKIN_DATABASE_POOLER", "DATABASE_POOLER"),
                          ("KOKIN_DATABASE_DIRECT_URL", "DATABASE_DIRECT_URL")):
        if os.environ.get(variable):
            settings[key] = os.environ[variable]
    if os.environ.get("KOKIN_TRUSTED_PROXIES"):
        settings["TRUSTED_PROXIES"] = _proxies(os.environ["KOKIN_TRUSTED_PROXIES"])
    settings.update(overrides or {})
    return settings


def _proxies(value: str) -> int:
    if not value.isdigit() or int(value) > 5:
        raise RuntimeError(f"KOKIN_TRUSTED_PROXIES={value!r}: give how many proxies are in front, 0 to 5")
    return int(value)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise RuntimeError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuntimeError(f"config file {path} is not valid TOML: {exc}") from exc


def _file_settings(path: Path) -> dict[str, Any]:
    raw = _read_toml(path)
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "municipalities":
            settings["MUNICIPALITIES"] = value
        elif key == "database_url_env":
            settings["DATABASE_URL"] = os.environ.get(value)
        else:
            settings[key.upper()] = value
    return settings
