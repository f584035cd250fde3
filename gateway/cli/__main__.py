"""`python -m gateway.cli`: the `kokin` command without its installed script."""
from __future__ import annotations

from gateway.cli import main

main()
