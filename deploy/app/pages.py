"""The worker's web pages: Prometheus metrics, and behind a console token the console, its state, explain and the
analysts' review queue (a page and a JSON API)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import quote, urlsplit

import msgspec
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dispatch.escalation import clock_key
from dispatch.review import ReviewStore
from dispatch.task_queue import TaskQueues
from dispatch.throttle import RefusalThrottle
from ops.access import ConsoleTokens, Grant, Role, host_allowed, may
from ops.board import OpsBoard
from ops.console import console_state, login_page, page
from ops.explain import Trail, render
from ops.review import VerdictError, review_entry, review_page, verdict
from schemas.catalogue import tr

# aiohttp refuses a charset inside content_type; the exposition format is UTF-8 by definition
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
COOKIE = "yujing_console"
audit = logging.getLogger("yujing.audit")


def add_pages(app: Any, registry: CollectorRegistry, board: OpsBoard, queues: TaskQueues, redis: Any,
              redis_prefix: str, trail_of: Callable[[str], Trail], allowed_hosts: Sequence[str],
              review: ReviewStore, publish: Callable[[bytes, bytes], Awaitable[None]],
              wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
    """Register the pages on a faust app; `trail_of` gathers a warning's trail (a scan of topics: run off the loop),
    `publish` writes an assessment to `yujing.assessments` (key, value) and returns once the broker has it.
    Metrics are open (nothing personal); the console needs a token's cookie or bearer header, explain and review an
    analyst's."""
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

    _add_review_pages(app, admit, review, publish, lambda: redis.get(clock_key(redis_prefix)), allowed_hosts, wall_ms)


def _add_review_pages(app: Any, admit: Callable[[Any, Any, Role], Awaitable[tuple[Grant | None, Any]]],
                      review: ReviewStore, publish: Callable[[bytes, bytes], Awaitable[None]],
                      clock_of: Callable[[], Awaitable[Any]], allowed_hosts: Sequence[str],
                      wall_ms: Callable[[], int]) -> None:
    """The analysts' review queue: its page, its JSON, and the verdict (a form or a JSON body) of one decision."""
    @app.page("/console/review")
    async def review_queue(web: Any, request: Any) -> Any:
        grant, refusal = await admit(web, request, "analyst")
        if grant is None:
            return refusal or web.html(login_page(), status=401)
        clock = int(await clock_of() or 0)
        entries = [review_entry(h, clock) for h in await review.waiting()]
        sent = request.query.get("sent", "")
        notice = tr("{action} of {decision_id} sent by {analyst}", action=request.query.get("action", ""),
                    decision_id=sent, analyst=grant.holder) if sent else ""
        return web.html(review_page(entries, clock, notice), headers=_no_store())

    @app.page("/console/review.json")
    async def review_json(web: Any, request: Any) -> Any:
        grant, refusal = await admit(web, request, "analyst")
        if grant is None:
            return refusal or web.json({"error": tr("a console token is required")}, status=401)
        clock = int(await clock_of() or 0)
        return web.json({"clock": clock, "waiting": [review_entry(h, clock) for h in await review.waiting()]},
                        headers=_no_store())

    class Verdict(View):
        async def post(self, request: Any, decision_id: str) -> Any:
            grant, refusal = await admit(self, request, "analyst")
            if grant is None:
                return refusal or self.json({"error": tr("a console token is required")}, status=401)
            origin = request.headers.get("Origin")
            if origin and not host_allowed(urlsplit(origin).netloc, allowed_hosts):
                return self.json({"error": tr("a form from another site is refused")}, status=403)
            as_json = request.headers.get("Content-Type", "").startswith("application/json")
            try:
                body = await request.json() if as_json else dict(await request.post())
                if not isinstance(body, dict):
                    raise VerdictError(tr("the body must be a JSON object"))
                assessment = verdict(decision_id, body, grant.holder, wall_ms())
            except (VerdictError, ValueError) as exc:
                return self.json({"error": str(exc)}, status=400)
            if await review.held(decision_id) is None:
                return self.json({"error": tr("no decision {decision_id} is waiting for review",
                                              decision_id=decision_id)}, status=409)
            await publish(decision_id.encode(), msgspec.json.encode(assessment))
            audit.info("assessment %s of %r by %s: %s", assessment.action, decision_id, grant.holder,
                       assessment.reason or assessment.tier or "")
            if as_json:
                return self.json(msgspec.to_builtins(assessment), status=202)
            where = f"/console/review?sent={quote(decision_id, safe='')}&action={assessment.action}"
            return self.text("", status=303, headers={"Location": where})

    app.page("/console/review/{decision_id}")(Verdict)


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store"}
