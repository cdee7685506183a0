"""The worker's web pages: Prometheus metrics, and behind a console token the console, its state and explain."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Sequence

from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dispatch.task_queue import TaskQueues
from dispatch.throttle import RefusalThrottle
from ops.access import ConsoleTokens, Grant, Role, host_allowed, may
from ops.board import OpsBoard
from ops.console import console_state, login_page, page
from ops.explain import Trail, render
from schemas.catalogue import tr

# aiohttp refuses a charset inside content_type; the exposition format is UTF-8 by definition
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
COOKIE = "yujing_console"
audit = logging.getLogger("yujing.audit")


def add_pages(app: Any, registry: CollectorRegistry, board: OpsBoard, queues: TaskQueues, redis: Any,
              redis_prefix: str, trail_of: Callable[[str], Trail], allowed_hosts: Sequence[str],
              wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
    """Register the pages on a faust app; `trail_of` gathers a warning's trail (a scan of topics: run off the loop).
    Metrics are open (nothing personal); the console needs a token's cookie or bearer header, explain an analyst's."""
    tokens = ConsoleTokens(redis, redis_prefix)
    throttle = RefusalThrottle(redis, f"{redis_prefix}console:")

    async def admit(web: Any, request: Any, need: Role) -> tuple[Grant | None, Any]:
        """The caller's grant, or the response refusing them."""
        if not host_allowed(request.host, allowed_hosts):
            return None, web.text(tr("unknown Host: set YUJING_ALLOWED_HOSTS to the names the console is served "
                                     "under"), status=400)
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else request.cookies.get(COOKIE, "")
        grant = await tokens.grant_of(token)
        # A good token is never throttled: behind an ingress all share one address, and guessing must not lock
        # the operators out.
        if not may(grant, "viewer", wall_ms()):
            if await throttle.turn_away(request.remote or "?", guessed=bool(token)):
                return None, web.text(tr("too many refused tokens; try again later"), status=429)
            return None, None  # the caller decides: a login form or a 401
        if not may(grant, need, wall_ms()):
            return None, web.text(tr("this needs the {role} role", role=need), status=403)
        return grant, None

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=METRICS_CONTENT_TYPE)

    @app.page("/console")
    async def console_page(web: Any, request: Any) -> Any:
        grant, refusal = await admit(web, request, "viewer")
        if grant is None:
            return refusal or web.html(login_page(), status=401)
        return web.html(page(), headers=_no_store())

    class Login(View):
        async def post(self, request: Any) -> Any:
            form = await request.post()
            token = str(form.get("token", "")).strip()
            if not host_allowed(request.host, allowed_hosts):
                return self.text(tr("unknown Host: set YUJING_ALLOWED_HOSTS to the names the console is served "
                                    "under"), status=400)
            grant = await tokens.grant_of(token)
            if grant is None or not may(grant, "viewer", wall_ms()):
                if await throttle.turn_away(request.remote or "?"):
                    return self.text(tr("too many refused tokens; try again later"), status=429)
                return self.html(login_page(refused=True), status=401)
            audit.info("console sign-in: %s (%s)", grant.holder, grant.role)
            secure = "; Secure" if request.secure or request.headers.get("X-Forwarded-Proto") == "https" else ""
            max_age = max(1, (grant.expires_ms - wall_ms()) // 1000)
            cookie = f"{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
            return self.text("", status=303, headers={"Location": "/console", "Set-Cookie": cookie})

    app.page("/console/login")(Login)

    @app.page("/console/state.json")
    async def console_json(web: Any, request: Any) -> Any:
        grant, refusal = await admit(web, request, "viewer")
        if grant is None:
            return refusal or web.json({"error": tr("a console token is required")}, status=401)
        return web.json(await console_state(board, queues, redis, redis_prefix), headers=_no_store())

    @app.page("/console/explain/{warning_id}")
    async def console_explain(web: Any, request: Any, warning_id: str) -> Any:
        grant, refusal = await admit(web, request, "analyst")
        if grant is None:
            return refusal or web.text(tr("a console token is required"), status=401)
        audit.info("explain %r read by %s", warning_id, grant.holder)
        trail = await asyncio.get_running_loop().run_in_executor(None, trail_of, warning_id)
        return web.text(render(trail), status=200 if trail.decision else 404, headers=_no_store())


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store"}
