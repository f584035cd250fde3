"""What the bad-file corpora share: the MANIFEST.toml that names each file's one expected error."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def manifest_text(header: Iterable[str], cases: Iterable[Mapping[str, Any]]) -> str:
    """A TOML array of `[[case]]` tables in the given key order; None values are left out."""
    parts = [f"# {line}" for line in header]
    for case in cases:
        parts += ["", "[[case]]"]
        parts += [f"{key} = {value if isinstance(value, int) else json.dumps(value, ensure_ascii=False)}"
                  for key, value in case.items() if value is not None]
    return "\n".join(parts) + "\n"
