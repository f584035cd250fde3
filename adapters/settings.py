"""Reading a provider's settings in its factory: the same checks and messages for every provider.

A factory gets its settings with secrets already resolved from the environment; whatever
is wrong raises ValueError naming the provider and the setting, so the service does not
start. Sandbox mode fills in placeholder credentials that only the simulator accepts.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_SANDBOX_CREDENTIALS: set[str] = set()


def sandbox_credentials(defaults: Mapping[str, str]) -> dict[str, str]:
    """Declare a provider's sandbox credentials: public (they are in this source), so production refuses them."""
    _SANDBOX_CREDENTIALS.update(defaults.values())
    return dict(defaults)


def published_sandbox_credentials() -> frozenset[str]:
    """Every sandbox credential declared by the factories imported so far (adapters.registry imports them all)."""
    return frozenset(_SANDBOX_CREDENTIALS)


def sandbox_mode(provider: str, config: Mapping[str, Any], *, from_text: bool = False) -> bool:
    """Read `sandbox`: true or false, given explicitly.

    With `from_text`, a missing flag means false and the usual spellings of a boolean in an
    environment variable ("true", "0", ...) are accepted too.
    """
    value = config.get("sandbox", False if from_text else None)
    if isinstance(value, bool):
        return value
    if from_text and str(value).strip().lower() in _TRUE + _FALSE:
        return str(value).strip().lower() in _TRUE
    raise ValueError(f"{provider}: set `sandbox` to true or false explicitly, not {value!r}")


def credentials(provider: str, config: Mapping[str, Any], keys: Iterable[str], *,
                sandbox_defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the named settings, each a non-blank string; `sandbox_defaults` fills the ones not given."""
    keys = tuple(keys)
    values = dict(sandbox_defaults or {})
    values.update({key: config[key] for key in keys if config.get(key)})
    missing = [key for key in keys if not isinstance(values.get(key), str) or not values[key].strip()]
    if missing:
        raise ValueError(f"{provider}: missing settings: {', '.join(missing)}")
    return {key: values[key] for key in keys}


def timeout(provider: str, value: Any, default: float | tuple[float, float]) -> float | tuple[float, float]:
    """Read `timeout`: seconds, or [connect, read] seconds; None keeps the provider's default."""
    if value is None:
        return default
    if _seconds(value):
        return float(value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(_seconds(v) for v in value):
        return float(value[0]), float(value[1])
    raise ValueError(f"{provider}: timeout must be a positive number of seconds or [connect, read]")


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
