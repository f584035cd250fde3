"""What the accessibility tests check on a page: axe-core at WCAG 2.1 AA, and no sideways scrolling.

JIS X 8341-3:2016 level AA is WCAG 2.0 AA; the issue asks for WCAG 2.1 AA, which contains it.
axe-core ships inside axe-playwright-python (no network). axe finds what a machine can find
(contrast, names, labels, landmarks, language, table headers); the keyboard and reflow tests
check the rest that a machine can.
"""
from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]}
# A best practice beyond WCAG that JIS X 8341-3 readers expect too: every page's content in landmarks.
BEST_PRACTICES = {"runOnly": {"type": "rule", "values": ["region", "landmark-one-main", "page-has-heading-one",
                                                          "bypass", "heading-order", "landmark-unique"]},
                  "resultTypes": ["violations"]}

_AXE = Axe()


def axe_violations(page: Any) -> list[str]:
    """The WCAG 2.1 A/AA violations (and the landmark best practices) on the page, one line per element."""
    found = []
    for options in (OPTIONS, BEST_PRACTICES):
        results = _AXE.run(page, options=options)
        for violation in results.response["violations"]:
            for node in violation["nodes"]:
                found.append(f"{violation['id']} ({violation['impact']}): {', '.join(map(str, node['target']))} "
                             f"- {node.get('failureSummary', '').replace(chr(10), ' ')}")
    return found


def page_scrolls_sideways(page: Any) -> bool:
    """Whether the page itself is wider than the window (a table may scroll inside its own region)."""
    return bool(page.evaluate("document.scrollingElement.scrollWidth > document.scrollingElement.clientWidth"))
