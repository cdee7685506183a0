"""Escalation on deadlines, in event time: an unanswered or failed step moves on to the route's next step.

The pipeline's clock is the latest event time the dispatch stage has seen (shared in Redis, only moving
forward). Each dispatched step waits in a sorted set under its deadline. An outcome that completes a step
removes it; one that says it failed (SMS not delivered, unreachable, call refused) escalates at once. When the
clock passes a deadline the step is claimed (ZREM: exactly one worker wins), counted as an SLA breach, and on an
`escalate` route the next step is planned. A replayed day moves the clock through the same times, so it
escalates exactly as the live one did.
"""
from __future__ import annotations

from typing import Any

import msgspec

from dispatch.plan import Recipient
from schemas.internal import Decision

DONE = {"sms_delivered", "call_answered", "visited", "dissuaded", "already_lost", "false_alarm"}
FAILED = {"sms_failed", "call_refused", "unreachable"}

CLOCK_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local ts = tonumber(ARGV[1])
if ts > cur then redis.call('SET', KEYS[1], ts); return ts end
return cur
"""


def outcome_effect(outcome: str) -> str | None:
    """What an outcome does to the step it answers: `done`, `failed` (escalate now), or nothing."""
    if outcome in DONE:
        return "done"
    return "failed" if outcome in FAILED else None


class Context(msgspec.Struct):
    """What escalation needs to plan a later step: the decision, its route's name, the recipient."""

    decision: Decision
    route: str
    who: dict[str, str]

    def recipient(self) -> Recipient:
        """The recipient, rebuilt."""
        return Recipient(**self.who)


class EscalationStore:
    """Pending steps, their context and the pipeline clock, in Redis (an asyncio client, handed in)."""

    def __init__(self, client: Any, prefix: str, keep_s: int = 8 * 86_400) -> None:
        self._r = client
        self._p = prefix
        self._keep = keep_s
        self._clock = client.register_script(CLOCK_LUA)

    async def advance(self, ts: int) -> int:
        """Move the pipeline clock to `ts` if that is later; returns the clock."""
        return int(await self._clock(keys=[f"{self._p}clock"], args=[ts]))

    async def schedule(self, ctx: Context, step: int, deadline: int) -> None:
        """Wait for step `step` of this warning until `deadline` (event time)."""
        wid = ctx.decision.decision_id
        await self._r.set(f"{self._p}esc:ctx:{wid}", msgspec.json.encode(ctx), ex=self._keep)
        await self._r.zadd(f"{self._p}esc:pending", {f"{wid}|{step}": deadline})

    async def resolve(self, warning_id: str, step: int) -> bool:
        """Take a pending step off the list; True for the one caller that did (the others lost the race)."""
        return bool(await self._r.zrem(f"{self._p}esc:pending", f"{warning_id}|{step}"))

    async def due(self, clock: int) -> list[tuple[str, int]]:
        """Pending (warning id, step) whose deadline the clock has passed."""
        members = await self._r.zrangebyscore(f"{self._p}esc:pending", "-inf", clock - 1)
        out = []
        for m in members:
            wid, _, step = (m.decode() if isinstance(m, bytes) else m).rpartition("|")
            out.append((wid, int(step)))
        return out

    async def pending_steps(self, warning_id: str) -> list[int]:
        """The steps of a warning still waiting."""
        members = await self._r.zrange(f"{self._p}esc:pending", 0, -1)
        prefix = f"{warning_id}|"
        return [int(m.decode()[len(prefix):]) for m in members if m.decode().startswith(prefix)]

    async def context(self, warning_id: str) -> Context | None:
        """The stored context of a warning."""
        raw = await self._r.get(f"{self._p}esc:ctx:{warning_id}")
        return msgspec.json.decode(raw, type=Context) if raw else None

    async def breach(self) -> int:
        """Count one SLA breach; returns the total."""
        return int(await self._r.incr(f"{self._p}sla:breaches"))
