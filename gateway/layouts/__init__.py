"""The ward ledger's file layouts: TOML tables in this folder, read by domain.layouts."""
from __future__ import annotations

from pathlib import Path

from domain import layouts
from domain.layouts import Layout

LAYOUT_DIR = Path(__file__).parent


def load_layout(name_or_path: str) -> Layout:
    """Load a shipped ledger layout by name, or a ward's own from a .toml path."""
    return layouts.load_layout(name_or_path, LAYOUT_DIR)
