"""The worker's web pages: Prometheus metrics, the live console, its state and a warning's audit trail."""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dispatch.task_queue import TaskQueues
from ops.board import OpsBoard
from ops.console import console_state, page
from ops.explain import Trail, render

# aiohttp refuses a charset inside content_type; the exposition format is UTF-8 by definition
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


def add_pages(app: Any, registry: CollectorRegistry, board: OpsBoard, queues: TaskQueues, redis: Any,
              redis_prefix: str, trail_of: Callable[[str], Trail]) -> None:
    """Register the pages on a faust app; `trail_of` gathers a warning's trail (a scan of topics: run off the loop)."""

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=METRICS_CONTENT_TYPE)

    @app.page("/console")
    async def console_page(web: Any, request: Any) -> Any:
        return web.html(page())

    @app.page("/console/state.json")
    async def console_json(web: Any, request: Any) -> Any:
        return web.json(await console_state(board, queues, redis, redis_prefix))

    @app.page("/console/explain/{warning_id}")
    async def console_explain(web: Any, request: Any, warning_id: str) -> Any:
        trail = await asyncio.get_running_loop().run_in_executor(None, trail_of, warning_id)
        return web.text(render(trail), status=200 if trail.decision else 404)
