"""The message catalogue: every message the code, the console page and the alert rules use has its Chinese, with
the same placeholders; Chinese is the default and English a setting; a bad setting is refused."""
from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg

from ops.console import login_page, page
from schemas.catalogue import catalogue, language, tr

ROOT = Path(__file__).resolve().parents[3]
KEYWORDS = {"tr": None, "N_": None, "_error": (2,)}  # as `pybabel extract -k tr -k N_ -k _error:2` (babel.cfg)


def used_messages() -> dict[str, str]:
    """Every msgid the code marks and the console page holds, found as `pybabel extract` finds them (babel.cfg),
    with where."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, str] = {}
    for filename, lineno, message, _, _ in extract_from_dir(ROOT, method_map, options_map, keywords=KEYWORDS):
        if isinstance(message, str):
            found.setdefault(message, f"{filename}:{lineno}")
    return found


def _fields(text: str) -> set[str]:
    """Python's placeholders and Prometheus's Go templates (the alert annotations)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name} | set(re.findall(r"\{\{.*?\}\}", text))


def test_every_message_in_use_has_its_chinese_with_the_same_placeholders() -> None:
    zh = catalogue("zh")
    used = used_messages()
    assert len(used) > 150 and "awaiting the bank" in used  # the extraction found the code's and the page's
    assert "No signals received for 10 minutes" in used  # … and the alert rules'
    missing = {m: where for m, where in used.items() if m not in zh}
    assert not missing, missing
    differ = {m: zh[m] for m in used if _fields(m) != _fields(zh[m])}
    assert not differ, differ
    words = {m: re.sub(r"\{\w+\}", "", m) for m in used}  # a message with English words gets Chinese ones
    untranslated = [m for m in used if re.search(r"[a-z]{3}", words[m]) and not re.search(r"[\u4e00-\u9fff]", zh[m])]
    assert not untranslated, untranslated


def test_chinese_by_default_english_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUJING_LANG", raising=False)
    assert language() == "zh" and tr("aged {age}", age=70) == "70 岁"
    assert '<html lang="zh-CN">' in page() and "当前预警" in page() and "{{" not in page()
    assert "口令" in login_page(refused=True)
    monkeypatch.setenv("YUJING_LANG", "en")
    assert tr("aged {age}", age=70) == "aged 70"
    assert '<html lang="en">' in page() and "Current warnings" in page()
    monkeypatch.setenv("YUJING_LANG", "fr")
    with pytest.raises(ValueError, match="YUJING_LANG"):
        tr("aged {age}", age=70)
