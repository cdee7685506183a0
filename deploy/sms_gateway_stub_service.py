"""A local SMS gateway for tests and the demo: delivers each `message_id` once, counts, and fails on request.

    POST /send            {message_id, to, text}  → 200, or 409 when that id was already delivered
    POST /admin/fail      {count, status}         → the next `count` sends answer `status` (or hang: status 0)
    GET  /admin/messages                          → every message with its delivery and attempt counts and
                                                    its place in the order of deliveries
"""
from __future__ import annotations

import asyncio

from aiohttp import web


def make_app() -> web.Application:
    """The gateway as an aiohttp application."""
    state = {"fail": 0, "status": 503, "messages": {}, "delivered": 0}

    async def send(request: web.Request) -> web.Response:
        body = await request.json()
        msg = state["messages"].setdefault(body["message_id"], {"to": body["to"], "text": body["text"],
                                                                "attempts": 0, "deliveries": 0})
        msg["attempts"] += 1
        if state["fail"] > 0:
            state["fail"] -= 1
            if state["status"] == 0:
                await asyncio.sleep(30)  # a gateway that hangs: the client times out
            return web.json_response({"error": "injected"}, status=state["status"] or 504)
        if msg["deliveries"]:
            return web.json_response({"duplicate": True}, status=409)
        msg["deliveries"] += 1
        state["delivered"] += 1
        msg["order"] = state["delivered"]  # the position of this message among all deliveries
        return web.json_response({"delivered": True})

    async def fail(request: web.Request) -> web.Response:
        body = await request.json()
        state["fail"], state["status"] = int(body["count"]), int(body.get("status", 503))
        return web.json_response({"ok": True})

    async def messages(_: web.Request) -> web.Response:
        return web.json_response(state["messages"])

    app = web.Application()
    app.add_routes([web.post("/send", send), web.post("/admin/fail", fail), web.get("/admin/messages", messages)])
    return app


def serve(port: int) -> None:
    """Run the gateway on 127.0.0.1:`port`."""
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None)
