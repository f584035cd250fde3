"""The message catalogue: every message of the code and the templates has English, and the
compiled catalogue the app loads is the one the English file gives."""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from gateway.i18n import CODE_LABELS

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"
SOURCES = (GATEWAY, ROOT / "reconciliation")  # where `make translations` extracts the messages from
ENGLISH = GATEWAY / "translations" / "en" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]


def _english() -> dict[str, str]:
    with (ENGLISH / "messages.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale="en") if m.id and "fuzzy" not in m.flags}


def _used() -> set[str]:
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    return {message[2] if isinstance(message[2], str) else message[2][0]
            for source in SOURCES for message in extract_from_dir(str(source), METHODS, keywords=keywords)}


def test_every_message_of_the_pages_has_english() -> None:
    english = _english()
    untranslated = sorted(m for m in _used() if not english.get(m))
    assert not untranslated, f"no English for {len(untranslated)} messages (run make translations): {untranslated[:10]}"


def test_the_compiled_catalogue_is_the_english_file() -> None:
    with (ENGLISH / "messages.mo").open("rb") as f:
        compiled = {m.id: m.string for m in read_mo(f) if m.id}
    assert compiled == _english(), "messages.mo is stale: run make translations"


def test_every_code_has_a_name_in_both_languages() -> None:
    english = _english()
    for kind, names in CODE_LABELS.items():
        for code, name in names.items():
            assert english.get(name._args[0]), f"{kind} {code}: no English for {name._args[0]}"
