"""Which approved provider template a message is sent as, with which parameters and signature."""
from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas.records import SmsTask

PROVIDERS_FILE = Path(__file__).resolve().parent.parent / "config" / "sms_providers.toml"


class TemplateError(ValueError):
    """The provider templates file is missing, malformed, or lacks a template a message needs."""


@dataclass(frozen=True)
class Template:
    """One message as a provider template: its code, its parameters in the text's order, its signature."""

    name: str
    code: str
    params: dict[str, str]
    sign: str


def template_name(task: SmsTask, texts: dict) -> str:
    """Our template of a message: `sms.<fraud type>` for a warning, `reminder.<fraud type>`; `unknown` when the
    type has no text of its own."""
    section = "reminder" if task.kind == "reminder" else "sms"
    return f"{section}.{task.fraud_type if task.fraud_type in texts[section] else 'unknown'}"


def template_params(text: str, texts: dict) -> dict[str, str]:
    """The parameters a template text takes, in their order in the text, with their values."""
    names = [field for _, field, _, _ in string.Formatter().parse(text) if field]
    return {name: str(texts[name]) for name in dict.fromkeys(names)}


class ProviderTemplates:
    """A provider's section of the templates file: codes by our template names, signatures by section."""

    def __init__(self, provider: str, texts: dict, path: Path = PROVIDERS_FILE) -> None:
        try:
            section = tomllib.loads(path.read_text())[provider]
            self._codes: dict[str, str] = dict(section["templates"])
            self._signs: dict[str, str] = dict(section["signs"])
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise TemplateError(f"{path}: no usable [{provider}] templates and signs ({exc})") from None
        self._texts = texts
        missing = [f"{s}.{ft}" for s in ("sms", "reminder") for ft in texts[s] if f"{s}.{ft}" not in self._codes]
        if missing:
            raise TemplateError(f"{path}: [{provider}.templates] lacks {', '.join(missing)}")

    def for_task(self, task: SmsTask) -> Template:
        """The approved template a message goes out as."""
        name = template_name(task, self._texts)
        section, fraud_type = name.split(".")
        return Template(name, self._codes[name], template_params(self._texts[section][fraud_type], self._texts),
                        self._signs[section])
