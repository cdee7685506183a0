"""The operators' words from one message catalogue (gettext PO, read with Babel): Simplified Chinese by default,
English with `YUJING_LANG=en`.

Messages are written in code as their English text (the msgid) with `{name}` placeholders; the Chinese is in
`schemas/locale/zh_CN/LC_MESSAGES/yujing.po`. `tests/unit/schemas/test_catalogue.py` finds every message the code
and the console page use, and fails on one without its translation or with placeholders that differ.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "yujing"
LOCALES = {"zh": "zh_CN", "en": None}  # English is the msgids themselves


def language() -> str:
    """The language of the operators' messages: `YUJING_LANG` (`zh`, the default, or `en`)."""
    lang = os.environ.get("YUJING_LANG") or "zh"
    if lang not in LOCALES:
        raise ValueError(f"YUJING_LANG must be one of {', '.join(LOCALES)}, not {lang!r}")
    return lang


def po_path(locale: str) -> Path:
    """The PO file of a locale (`zh_CN`)."""
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """msgid → translation for one language (empty for English); fuzzy entries are not used."""
    locale = LOCALES[lang]
    if locale is None:
        return {}
    with po_path(locale).open("rb") as f:
        parsed = read_po(f, locale=locale, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in parsed if m.id and m.string and not m.fuzzy}


def N_(msgid: str) -> str:
    """Mark a message for the catalogue where it is defined; it is translated (`tr`) where it is used."""
    return msgid


def tr(msgid: str, lang: str | None = None, **params: object) -> str:
    """`msgid` in the operators' language (`lang`, else `language()`), its `{name}` placeholders filled."""
    text = catalogue(lang or language()).get(msgid, msgid)
    return text.format(**params) if params else text
