"""The live console: one page on the worker's web server, refreshed from a JSON state read from Redis."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dispatch.task_queue import TaskQueues
from ops.board import OpsBoard

PAGE = Path(__file__).with_name("console.html")


def page() -> str:
    """The console's HTML (static; it polls `/console/state.json`)."""
    return PAGE.read_text(encoding="utf-8")


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
