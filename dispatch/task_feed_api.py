"""The task feed's HTTP API (aiohttp): grid workers and callers list, claim and report their own tasks.

    GET  /v1/tasks                        open tasks of the caller's grid or station, highest tier and
                                          earliest deadline first, and the ones the caller holds
    POST /v1/tasks/{task_id}/claim        claim a task (again: keep holding it)
    POST /v1/tasks/{task_id}/outcome      {"outcome": "dissuaded", "note": "...", "amount_saved_fen": 0}

Every request carries `Authorization: Bearer <token>` (401 without a known, unexpired one; after 20 refused
tokens within a minute from one address, its unknown tokens get 429 for the rest of it; a good one still
passes). A POST also carries a fresh `X-Request-Id` and `X-Request-Time` (epoch ms, within the replay window of
the server's wall clock): a request id seen before, or a stale time, is a replay (409 / 400); an id is spent
only by a request found valid, so a corrected retry may reuse it. Another grid's task is answered like a
missing one (404), so its existence does not leak; errors never echo a person's data. Bodies over 16 KiB: 413.
Every list, claim and report is logged on `yujing.audit`.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dispatch.metrics import feed_metrics
from dispatch.task_queue import TaskQueues
from dispatch.tasks import Report, Scope, channel_of, check_report, priority
from dispatch.throttle import RefusalThrottle
from schemas.catalogue import tr
from schemas.records import Outcome, encode

MAX_BODY = 16 * 1024
REPLAY_WINDOW_S = 300
SCOPE: web.AppKey[Scope] = web.AppKey("scope", Scope)  # type: ignore[assignment]

OutcomeSink = Callable[[Outcome], Awaitable[None]]
audit = logging.getLogger("yujing.audit")  # who listed, claimed and reported what: workers and task ids, no numbers


def _error(status: int, message: str, **params: object) -> web.Response:
    """An error answer; `message` is the catalogue's msgid, given in the operators' language."""
    return web.json_response({"error": tr(message, **params)}, status=status,
                             headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


def _authenticator(queues: TaskQueues, wall_ms: Callable[[], int]) -> Any:
    """The middleware that admits a request: an unexpired token (throttled when wrong), and on a POST a
    well-formed request id and time."""
    throttle = RefusalThrottle(queues.client, f"{queues.prefix}auth:")

    @web.middleware
    async def authenticate(request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path in ("/healthz", "/metrics"):  # nothing personal in either
            return await handler(request)
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        scope = await queues.scope_of(token, wall_ms())
        if scope is None:  # a good token is never throttled: behind an ingress every client has one address
            if await throttle.turn_away(request.remote or "?", guessed=bool(token)):
                return _error(429, "too many refused tokens; try again later")
            return _error(401, "a valid bearer token is required")
        if request.method == "POST":
            problem = _fresh(request, wall_ms())
            if problem is not None:
                return problem
        request[SCOPE] = scope
        return await handler(request)

    return authenticate


def _fresh(request: web.Request, now_ms: int) -> web.Response | None:
    """Refuse a POST without a well-formed request id and a time inside the replay window (the id is spent only
    once the request is found valid: `_first_use`)."""
    request_id = request.headers.get("X-Request-Id", "")
    try:
        sent_at = int(request.headers.get("X-Request-Time", ""))
    except ValueError:
        return _error(400, "X-Request-Time (epoch milliseconds) is required")
    if not 8 <= len(request_id) <= 64 or not request_id.isascii():
        return _error(400, "X-Request-Id (8 to 64 ASCII characters, new for every request) is required")
    if abs(now_ms - sent_at) > REPLAY_WINDOW_S * 1000:
        return _error(400, "X-Request-Time is outside the replay window")
    return None


async def _first_use(queues: TaskQueues, request: web.Request, scope: Scope) -> web.Response | None:
    """Spend the request's id: a 409 when it was spent before (a replay)."""
    if not await queues.first_use(scope.worker, request.headers["X-Request-Id"], 2 * REPLAY_WINDOW_S):
        return _error(409, "replayed request")
    return None


def build_app(queues: TaskQueues, write_outcome: OutcomeSink, now_ms: Callable[[], int],
              wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
              registry: CollectorRegistry | None = None) -> web.Application:
    """The feed application over the queues; `write_outcome` puts a report on `outcomes` (acks=all)."""
    registry = registry if registry is not None else CollectorRegistry()
    m = feed_metrics(registry)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def metrics(_: web.Request) -> web.Response:
        clock = now_ms()
        m.depth.clear()
        m.oldest.clear()
        for queue, (n, first_ts) in (await queues.depths()).items():
            channel, unit = queue.split(":", 1)
            m.depth.labels(channel, unit).set(n)
            if first_ts is not None:
                m.oldest.labels(channel, unit).set(max(0, clock - first_ts) / 1000)
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def list_tasks(request: web.Request) -> web.Response:
        scope = request[SCOPE]
        listed = []
        for queue in scope.queues():
            await queues.release_abandoned(queue)
            for item in await queues.list(queue, scope.worker):
                listed.append({**item.task, "channel": channel_of(queue), "mine": item.mine, "claims": item.claims})
        listed.sort(key=priority)
        try:
            limit = min(max(int(request.query.get("limit", "100") or 100), 1), 500)
        except ValueError:
            return _error(400, "limit must be a whole number (1 to 500)")
        audit.info("list: %s (%s:%s) got %d task(s)", scope.worker, scope.kind, scope.unit, min(limit, len(listed)))
        return web.json_response({"worker": scope.worker, "scope": f"{scope.kind}:{scope.unit}",
                                  "tasks": listed[:limit], "more": len(listed) > limit})

    async def _locate(scope: Scope, task_id: str) -> str | None:
        queue = await queues.locate(task_id)
        return queue if queue in scope.queues() else None  # another grid's task looks like no task

    async def claim(request: web.Request) -> web.Response:
        scope = request[SCOPE]
        task_id = request.match_info["task_id"]
        queue = await _locate(scope, task_id)
        if queue is None:
            return _error(404, "no such task in your queue")
        replay = await _first_use(queues, request, scope)
        if replay is not None:
            return replay
        await queues.release_abandoned(queue)
        status = await queues.claim(queue, task_id, scope.worker)
        audit.info("claim: %s %s -> %s", scope.worker, task_id, status)
        task = await queues.get(queue, task_id) if status == "ok" else None
        if task is not None:
            m.claims.labels(channel_of(queue)).inc()
            return web.json_response({"task": task, "hold_for_ms": queues.claim_timeout_ms})
        if status == "missing":
            return _error(404, "no such task in your queue")
        if status == "taken":
            return _error(409, "another worker holds this task")
        return _error(409, "this task is finished")

    async def report(request: web.Request) -> web.Response:
        scope = request[SCOPE]
        task_id = request.match_info["task_id"]
        try:
            body = msgspec.json.decode(await request.read(), type=Report)
        except msgspec.ValidationError as exc:
            return _error(400, "invalid report: {why}", why=exc)
        except msgspec.DecodeError:
            return _error(400, "the body must be a JSON object")
        queue = await _locate(scope, task_id)
        if queue is None:
            return _error(404, "no such task in your queue")
        problem = check_report(queue, body)
        if problem is not None:
            return web.json_response({"error": problem}, status=400)  # in the operators' words already
        replay = await _first_use(queues, request, scope)
        if replay is not None:
            return replay
        task = await queues.get(queue, task_id) or {}  # gone when reported before: the stored outcome is used
        outcome = Outcome(warning_id=str(task.get("warning_id", "")), channel=channel_of(queue),
                          outcome=body.outcome, ts=now_ms(), task_id=task_id,  # type: ignore[arg-type]
                          amount_saved_fen=body.amount_saved_fen, note=body.note)
        status, raw = await queues.report(queue, task_id, scope.worker, encode(outcome))
        audit.info("report: %s %s %s -> %s", scope.worker, task_id, body.outcome, status)
        if raw is None:
            if status == "not_claimed":
                return _error(409, "claim the task before reporting on it")
            return _error(409, "this task is finished")
        stored = msgspec.json.decode(raw, type=Outcome)
        await write_outcome(stored)  # before `sent`: a crash in between leaves it for the worker's retry
        await queues.sent(task_id)
        m.reports.labels(stored.channel, stored.outcome).inc()
        return web.json_response({"outcome": msgspec.to_builtins(stored)}, status=202)

    app = web.Application(middlewares=[_authenticator(queues, wall_ms)], client_max_size=MAX_BODY)
    app.router.add_get("/healthz", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/tasks", list_tasks)
    app.router.add_post("/v1/tasks/{task_id}/claim", claim)
    app.router.add_post("/v1/tasks/{task_id}/outcome", report)
    return app
