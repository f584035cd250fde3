"""The ward ledger's file layouts (TOML tables in this folder), read by adapters.layouts."""
from __future__ import annotations

from pathlib import Path

from adapters import layouts
from adapters.layouts import (
    MAX_ERRORS,
    Layout,
    LayoutError,
    LineError,
    Record,
    csv_header,
    encode_fixed,
    read,
    write_csv_line,
)

LAYOUT_DIR = Path(__file__).parent


def load_layout(name_or_path: str) -> Layout:
    """Load a shipped ledger layout by name, or a ward's own from a .toml path."""
    return layouts.load_layout(name_or_path, LAYOUT_DIR)


__all__ = ["MAX_ERRORS", "Layout", "LayoutError", "LineError", "Record", "csv_header", "encode_fixed",
           "load_layout", "read", "write_csv_line"]
