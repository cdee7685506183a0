"""The live console: one page on the worker's web server, refreshed from a JSON state read from Redis."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from dispatch.task_queue import TaskQueues
from ops.board import OpsBoard

PAGE = Path(__file__).with_name("console.html")


def page() -> str:
    """The console's HTML (static; it polls `/console/state.json`)."""
    return PAGE.read_text(encoding="utf-8")


def login_page(message: str = "") -> str:
    """The form that trades a console token (`yujing console-token`) for a session cookie."""
    note = f'<p id="refused">{html.escape(message)}</p>' if message else ""
    return ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>yujing console: sign in</title>'
            '</head><body><h1>yujing console</h1>' + note +
            '<form method="post" action="/console/login"><label>token <input id="token" name="token" '
            'type="password" autocomplete="off" required></label> <button id="sign-in">sign in</button></form>'
            '</body></html>')


async def console_state(board: OpsBoard, queues: TaskQueues, client: Any, prefix: str) -> dict[str, Any]:
    """Everything the console shows: warnings by tier, queues, SLA breaches, interceptions, the pipeline clock."""
    clock = int(await client.get(f"{prefix}clock") or 0)
    rows = []
    for queue, (depth, oldest_ts) in (await queues.depths()).items():
        channel, unit = queue.split(":", 1)
        rows.append({"channel": channel, "unit": unit, "depth": depth,
                     "oldest_s": max(0, clock - oldest_ts) // 1000 if oldest_ts is not None and clock else None})
    rows.sort(key=lambda r: (-r["depth"], r["channel"], r["unit"]))
    return {"clock": clock, "tiers": await board.tiers(), "warnings": await board.recent("warnings", 50),
            "queues": rows[:50], "sla_breaches": int(await client.get(f"{prefix}sla:breaches") or 0),
            "interceptions": await board.recent("interceptions", 20)}
