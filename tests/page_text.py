"""A page as a person reads it, the English catalogue and the ward's own words: for the tests of language."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from sqlalchemy import select

from gateway.models import EXCEPTION_KINDS, Counter, FeeItem, FundType, Municipality, Terminal
from gateway.services.playbooks import playbook_of
from tests.ward_day import CODE

ENGLISH_PO = Path(__file__).resolve().parents[1] / "gateway" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
KANA_KANJI = "\u3005\u3040-\u30ff\u3400-\u9fff"
# A stretch of Japanese: kana and kanji, with the punctuation, full-width forms and digits between them.
JAPANESE = re.compile(f"[{KANA_KANJI}](?:[{KANA_KANJI}\u3000-\u303f\uff01-\uff5e\\d,.]*[{KANA_KANJI}])?")


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


SWITCH_BACK = "日本語"  # the link back to Japanese, in Japanese (lang="ja")


def ward_data(session: Any) -> list[str]:
    """The texts the ward writes itself, longest first; and the Japanese terms the English messages keep (速報)."""
    texts = {SWITCH_BACK}
    for column in (Municipality.name, FundType.name, FundType.account, FundType.revenue_item, Counter.name,
                   Terminal.name, FeeItem.name):
        texts |= {value for value in session.scalars(select(column)) if value}
    ward = session.scalar(select(Municipality.id).where(Municipality.code == CODE))
    for kind in EXCEPTION_KINDS:
        book = playbook_of(session, ward, kind)
        texts |= {book.meaning, *book.checks, *(play.effect for play in book.resolutions)}
    for english in english_catalogue().values():
        texts |= japanese_runs(english)
    return sorted(texts, key=len, reverse=True)


def untranslated(html: str, data: list[str]) -> set[str]:
    """The Japanese of the page that is not the ward's data."""
    left: set[str] = set()
    for text in text_nodes(html):
        for value in data:
            text = text.replace(value, " ")
        left |= japanese_runs(text)
    return left
