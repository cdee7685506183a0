"""Writes the alert rules and their promtool tests in the operators' language, from the English ones in `rules/en/`.

    .venv/bin/python -m deploy.prometheus.build_rules      # after editing rules/en/ or the catalogue; a test checks

An annotation's English text is its msgid in the catalogue (schemas/catalogue.py); its Go templates
(`{{ $labels.topic }}`) are Prometheus's, left as they are. The tests' expected annotations are rendered text: each
is matched to the template it was rendered from, and the same values put into the translated template.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Iterator

from schemas.catalogue import language, tr

RULES = Path(__file__).parent / "rules"
SOURCES = RULES / "en"
FILES = ("yujing.rules.yml", "yujing.rules.test.yml")
ANNOTATION = re.compile(r'^(\s+)(summary|description): "(.*)"$')
ANNOTATION_KEY = re.compile(r"^\s+(summary|description):")
GO_TEMPLATE = re.compile(r"\{\{.*?\}\}")
GO_TEMPLATE_SPLIT = re.compile(r"(\{\{.*?\}\})")


def _unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def annotation_templates(rules_text: str) -> list[str]:
    """The English summaries and descriptions of a rules file, in order."""
    return [_unquote(m[3]) for line in rules_text.splitlines() if (m := ANNOTATION.match(line))]


def _render_as(rendered: str, templates: list[str], lang: str | None) -> str:
    """A rendered English annotation in the language: matched to its template, its values kept."""
    for template in templates:
        parts = GO_TEMPLATE_SPLIT.split(template)  # text, template, text, …
        pattern = "".join(re.escape(part) if i % 2 == 0 else "(.+?)" for i, part in enumerate(parts))
        m = re.fullmatch(pattern, rendered)
        if m:
            values = dict(zip(parts[1::2], m.groups()))
            return GO_TEMPLATE.sub(lambda e: values[e[0]], tr(template, lang))
    raise ValueError(f"no alert annotation renders as {rendered!r}")


def translate(text: str, templates: list[str], lang: str | None = None, rendered: bool = False) -> str:
    """A rules file (or, `rendered`, a promtool test file) with every summary and description in the language."""
    def line(raw: str) -> str:
        m = ANNOTATION.match(raw)
        if m is None:
            if ANNOTATION_KEY.match(raw):  # would stay English unseen, and out of the catalogue too
                raise ValueError(f"write an annotation on one line in double quotes: {raw.strip()!r}")
            return raw
        english = _unquote(m[3])
        words = _render_as(english, templates, lang) if rendered else tr(english, lang)
        return f'{m[1]}{m[2]}: "{_quote(words)}"'
    return "\n".join(line(raw) for raw in text.splitlines()) + "\n"


HEADER = "# Written from rules/en/ in the operators' language (python -m deploy.prometheus.build_rules): edit those.\n"


def build(lang: str | None = None) -> dict[str, str]:
    """Each file's text in the language (English: the sources as they are)."""
    rules, tests = ((SOURCES / name).read_text(encoding="utf-8") for name in FILES)
    templates = annotation_templates(rules)
    header = "" if (lang or language()) == "en" else HEADER
    return {FILES[0]: header + translate(rules, templates, lang),
            FILES[1]: header + translate(tests, templates, lang, rendered=True)}


def extract_rules(fileobj: Any, keywords: Any, comment_tags: Any, options: Any) -> Iterator[tuple[int, str, str, list]]:
    """Babel's extractor for the English annotations of the rules (babel.cfg), so `pybabel extract` finds them."""
    for lineno, raw in enumerate(fileobj.read().decode("utf-8").splitlines(), start=1):
        m = ANNOTATION.match(raw)
        if m:
            yield lineno, "", _unquote(m[3]), []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RULES, help="folder (default: deploy/prometheus/rules)")
    out = parser.parse_args().out
    for name, text in build().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
