"""Discover adapters through entry points (`kokin.adapters`, `kokin.agencies`); load only those configured."""
from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from adapters.agency import AgencyAdapter
from adapters.base import PaymentAdapter
from adapters.eltax import EltaxAdapter
from adapters.settings import published_sandbox_credentials

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
    adapters: dict[str, PaymentAdapter] = {}
    for name, config in configs.items():
        adapter = _factory(ENTRY_POINT_GROUP, name, "adapter")(config)
        if not isinstance(adapter, PaymentAdapter) or adapter.name != name:
            raise AdapterNotFound(f"entry point {name!r} did not build a payment adapter named {name!r}")
        adapters[name] = adapter
    return adapters


AGENCY_ENTRY_POINT_GROUP = "kokin.agencies"


def load_agency_adapters(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, AgencyAdapter | EltaxAdapter]:
    """Build each configured collection-agency (or eLTAX payment data) adapter (entry points `kokin.agencies`)."""
    return {name: _factory(AGENCY_ENTRY_POINT_GROUP, name, "agency adapter")(name, config)
            for name, config in configs.items()}


def known_sandbox_credentials() -> frozenset[str]:
    """The credentials every installed adapter's sandbox uses (published in its source): never valid in production."""
    for group in (ENTRY_POINT_GROUP, AGENCY_ENTRY_POINT_GROUP):
        for entry_point in entry_points(group=group):
            entry_point.load()  # its factory module declares its sandbox credentials when imported
    return published_sandbox_credentials()


def _factory(group: str, name: str, what: str) -> Any:
    """The factory an installed entry point names; AdapterNotFound names what is installed instead."""
    installed = {ep.name: ep for ep in entry_points(group=group)}
    if name not in installed:
        raise AdapterNotFound(f"{what} {name!r} is configured but not installed; "
                              f"installed: {', '.join(sorted(installed)) or 'none'}")
    return installed[name].load()
