"""Discover adapters through entry points (`kokin.adapters`, `kokin.agencies`); load only those configured."""
from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from adapters.agency import AgencyAdapter
from adapters.base import PaymentAdapter

ENTRY_POINT_GROUP = "kokin.adapters"


class AdapterNotFound(RuntimeError):
    """A configured adapter is not installed: the service must not start without it."""


def available() -> list[str]:
    """Return the names of the installed adapters."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_adapters(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, PaymentAdapter]:
    """Build each configured adapter from its entry point's factory and its config.

    `configs` maps adapter name to its settings, secrets already resolved from the
    environment. A name with no installed entry point raises AdapterNotFound.
    """
    installed = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    adapters: dict[str, PaymentAdapter] = {}
    for name, config in configs.items():
        if name not in installed:
            raise AdapterNotFound(f"adapter {name!r} is configured but not installed; "
                                  f"installed: {', '.join(sorted(installed)) or 'none'}")
        factory = installed[name].load()
        adapter = factory(config)
        if not isinstance(adapter, PaymentAdapter) or adapter.name != name:
            raise AdapterNotFound(f"entry point {name!r} did not build a payment adapter named {name!r}")
        adapters[name] = adapter
    return adapters


AGENCY_ENTRY_POINT_GROUP = "kokin.agencies"


def load_agency_adapters(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, AgencyAdapter]:
    """Build each configured collection-agency adapter (entry points `kokin.agencies`)."""
    installed = {ep.name: ep for ep in entry_points(group=AGENCY_ENTRY_POINT_GROUP)}
    agencies: dict[str, AgencyAdapter] = {}
    for name, config in configs.items():
        if name not in installed:
            raise AdapterNotFound(f"agency adapter {name!r} is configured but not installed; "
                                  f"installed: {', '.join(sorted(installed)) or 'none'}")
        agencies[name] = installed[name].load()(name, config)
    return agencies
