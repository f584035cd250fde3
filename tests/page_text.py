"""A page as a person reads it, and the English catalogue, for the tests of the pages' language."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.pofile import read_po

ENGLISH_PO = Path(__file__).resolve().parents[1] / "gateway" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
JAPANESE = re.compile(r"[\u3005\u3040-\u30ff\u3400-\u9fff\uff01-\uff5e]+(?:[\u3000-\u303f\d,.]*"
                      r"[\u3005\u3040-\u30ff\u3400-\u9fff\uff01-\uff5e]+)*")


class _Visible(HTMLParser):
    """The text a person reads: text nodes outside script and style, and the values of buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "input" and dict(attrs).get("type") in ("submit", "button"):
            self.parts.append(dict(attrs).get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def text_nodes(html: str) -> list[str]:
    """The page's texts, one per text node, stripped; empty ones left out."""
    reader = _Visible()
    reader.feed(html)
    return [part.strip() for part in reader.parts if part.strip()]


def visible_text(html: str) -> str:
    return " ".join(text_nodes(html))


def japanese_runs(text: str) -> set[str]:
    """The stretches of Japanese in `text` (kana, kanji, full-width forms, with what joins them)."""
    return set(JAPANESE.findall(text))


def english_catalogue() -> dict[str, str]:
    """The English of every translated message: Japanese message id -> English."""
    with ENGLISH_PO.open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale="en") if m.id and m.string and "fuzzy" not in m.flags}
