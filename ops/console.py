"""The live console: one page on the worker's web server, refreshed from a JSON state read from Redis."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any, Iterator

from dispatch.escalation import breaches_key, clock_key
from dispatch.task_queue import TaskQueues
from ops.board import OpsBoard
from schemas.catalogue import N_, language, tr
from schemas.labels import code_words

PAGE = Path(__file__).with_name("console.html")


PLACEHOLDER = re.compile(r"\{\{(.+?)\}\}")  # {{English words}} in the page: a message of the catalogue
HTML_LANG = {"zh": "zh-CN", "en": "en"}
FILLED = ("lang", "words")  # placeholders the page fills itself, not messages
# the script's own texts, handed to it as JSON with the codes' words (a translation never lands inside JS source)
SCRIPT_TEXTS = {"awaiting": N_("awaiting the bank"), "live": N_("live · updated"),
                "disconnected": N_("disconnected; retrying")}


def page(lang: str | None = None) -> str:
    """The console's HTML in the operators' language (it polls `/console/state.json`)."""
    lang = lang or language()
    words = code_words(lang) | {key: tr(msgid, lang) for key, msgid in SCRIPT_TEXTS.items()}
    as_json = json.dumps(words, ensure_ascii=False).replace("<", "\\u003c")  # no "</script>" can end the script
    fixed = dict(zip(FILLED, (HTML_LANG[lang], as_json)))
    return PLACEHOLDER.sub(lambda m: fixed.get(m[1]) or html.escape(tr(m[1], lang)),
                           PAGE.read_text(encoding="utf-8"))


def extract_page(fileobj: Any, keywords: Any, comment_tags: Any, options: Any) -> Iterator[tuple[int, str, str, list]]:
    """Babel's extractor for the page's `{{English words}}` (babel.cfg), so `pybabel extract` finds them."""
    text = fileobj.read().decode("utf-8")
    for m in PLACEHOLDER.finditer(text):
        if m[1] not in FILLED:
            yield text.count("\n", 0, m.start()) + 1, "", m[1], []


def login_page(refused: bool = False, lang: str | None = None) -> str:
    """The form that trades a console token (`yujing console-token`) for a session cookie."""
    lang = lang or language()
    words = {key: html.escape(tr(msgid, lang)) for key, msgid in (
        ("title", N_("yujing · operations console")), ("refused", N_("token refused (unknown or expired)")),
        ("token", N_("token")), ("sign_in", N_("sign in")))}
    note = f'<p id="refused">{words["refused"]}</p>' if refused else ""
    return (f'<!doctype html><html lang="{HTML_LANG[lang]}"><head><meta charset="utf-8"><title>{words["title"]}'
            f'</title></head><body><h1>{words["title"]}</h1>{note}<form method="post" action="/console/login"><label>'
            f'{words["token"]} <input id="token" name="token" type="password" autocomplete="off" required></label> '
            f'<button id="sign-in">{words["sign_in"]}</button></form></body></html>')


async def console_state(board: OpsBoard, queues: TaskQueues, client: Any, prefix: str) -> dict[str, Any]:
    """Everything the console shows: warnings by tier, queues, SLA breaches, interceptions, the pipeline clock."""
    clock = int(await client.get(clock_key(prefix)) or 0)
    rows = []
    for queue, (depth, oldest_ts) in (await queues.depths()).items():
        channel, unit = queue.split(":", 1)
        rows.append({"channel": channel, "unit": unit, "depth": depth,
                     "oldest_s": max(0, clock - oldest_ts) // 1000 if oldest_ts is not None and clock else None})
    rows.sort(key=lambda r: (-r["depth"], r["channel"], r["unit"]))
    return {"clock": clock, "tiers": await board.tiers(), "warnings": await board.recent("warnings", 50),
            "queues": rows[:50], "sla_breaches": int(await client.get(breaches_key(prefix)) or 0),
            "interceptions": await board.recent("interceptions", 20)}
