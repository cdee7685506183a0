"""Escalation on deadlines, in event time: an unanswered or failed step moves on to the route's next step.

The pipeline's clock is the latest event time the dispatch stage has seen (shared in Redis, only moving
forward). Each dispatched step waits in a sorted set under its deadline. An outcome that completes a step
removes it; one that says it failed (SMS not delivered, unreachable, call refused) escalates at once. When the
clock passes a deadline the step is claimed (ZREM: exactly one worker wins), counted as an SLA breach, and on an
`escalate` route the next step is planned. A replayed day moves the clock through the same times, so it
escalates exactly as the live one did. What a record (a decision, an outcome) claimed is remembered under it, so
the same record read again after a crash claims it again and plans the same step under the same ids.
"""
from __future__ import annotations

from typing import Any

import msgspec

from dispatch.plan import Recipient
from dispatch.redis_keys import slot_group
from schemas.internal import Decision

DONE = {"sms_delivered", "call_answered", "visited", "dissuaded", "already_lost", "false_alarm"}
FAILED = {"sms_failed", "call_refused", "unreachable"}

# One round trip per decision or outcome (a Redis command costs the worker about 0.1 ms of CPU, docs/dispatch.md): move
# the clock forward only, then the steps whose deadline it passed, and those this record claimed before.
# KEYS: clock, pending, the record's breached steps; ARGV: ts.
TICK_LUA = """
local clock = tonumber(redis.call('GET', KEYS[1]) or '0')
local ts = tonumber(ARGV[1])
if ts > clock then redis.call('SET', KEYS[1], ts); clock = ts end
return {clock, redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', clock - 1), redis.call('SMEMBERS', KEYS[3])}
"""

# A breached step claimed by one record only (ZREM), counted once, with its context; the record that claimed it
# gets it again. KEYS: pending, breaches, context, the record's breached steps; ARGV: member, how long the record's
# set is kept (s). Returns false when another record took it, else {breaches, context or false}.
BREACH_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('EXPIRE', KEYS[4], ARGV[2])
  return {redis.call('INCR', KEYS[2]), redis.call('GET', KEYS[3])}
end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 then return false end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('GET', KEYS[3])}
"""

# A step answered by one record only (ZREM); the record that took it gets it again. KEYS: pending, the record's
# answered steps; ARGV: member, how long the record's set is kept (s). Returns 1 when this record has it.
RESOLVE_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return 1
end
return redis.call('SISMEMBER', KEYS[2], ARGV[1])
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


def escalation_prefix(redis_prefix: str) -> str:
    """The prefix of escalation's keys: the clock, the pending steps, their contexts and the breach count share a
    slot, as its scripts touch them together."""
    return slot_group(redis_prefix, "esc")


def clock_key(redis_prefix: str) -> str:
    """The pipeline clock's key (event time, ms), which the console and the campaign launcher read too."""
    return escalation_prefix(redis_prefix) + "clock"


def breaches_key(redis_prefix: str) -> str:
    """The key counting SLA breaches (steps whose deadline passed unanswered)."""
    return escalation_prefix(redis_prefix) + "sla:breaches"


class EscalationStore:
    """Pending steps, their context and the pipeline clock, in Redis (an asyncio client, handed in)."""

    def __init__(self, client: Any, prefix: str, keep_s: int = 8 * 86_400) -> None:
        self._r = client
        self._clock, self._breaches = clock_key(prefix), breaches_key(prefix)
        self._p = escalation_prefix(prefix)
        self._keep = keep_s
        self._tick_lua = client.register_script(TICK_LUA)
        self._breach_lua = client.register_script(BREACH_LUA)
        self._resolve_lua = client.register_script(RESOLVE_LUA)

    async def tick(self, ts: int, by: str) -> tuple[int, list[tuple[str, int]]]:
        """Move the pipeline clock to `ts` if later, for the record `by`: the clock, and the (warning id, step) whose
        deadline it passed, with those `by` claimed before (it is read again)."""
        clock, members, claimed = await self._tick_lua(
            keys=[self._clock, f"{self._p}pending", f"{self._p}breached:{by}"], args=[ts])
        return int(clock), sorted({_parse_member(m) for m in [*members, *claimed]})

    async def schedule(self, ctx: Context, deadlines: dict[int, int]) -> None:
        """Wait for these steps of this warning (step → deadline, event time)."""
        wid = ctx.decision.decision_id
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(f"{self._p}ctx:{wid}", msgspec.json.encode(ctx), ex=self._keep)
            pipe.zadd(f"{self._p}pending", {_member(wid, step): deadline for step, deadline in deadlines.items()})
            await pipe.execute()

    async def resolve(self, warning_id: str, step: int, by: str) -> bool:
        """Take a pending step off the list for the record `by`; True for the one record that did (also when it
        is read again), False for the others."""
        return bool(await self._resolve_lua(keys=[f"{self._p}pending", f"{self._p}answered:{by}"],
                                            args=[_member(warning_id, step), self._keep]))

    async def breach(self, warning_id: str, step: int, by: str) -> tuple[bool, Context | None]:
        """Claim a passed step for the record `by` and count it as a breach (once): whether `by` has it (also when
        it is read again), and the warning's context."""
        reply = await self._breach_lua(keys=[f"{self._p}pending", self._breaches, f"{self._p}ctx:{warning_id}",
                                             f"{self._p}breached:{by}"], args=[_member(warning_id, step), self._keep])
        if not reply:
            return False, None
        raw = reply[1]  # false (RESP2 None, RESP3 False) when the context has expired
        return True, msgspec.json.decode(raw, type=Context) if raw else None

    async def pending_steps(self, warning_id: str, count: int, by: str) -> list[int]:
        """Which of the warning's first `count` steps are still waiting, or were answered by the record `by` (it
        is read again); read by member, not the whole set."""
        members = [_member(warning_id, step) for step in range(count)]
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zmscore(f"{self._p}pending", members)
            pipe.smismember(f"{self._p}answered:{by}", members)
            scores, answered = await pipe.execute()
        return [step for step in range(count) if scores[step] is not None or answered[step]]

    async def forget(self, subject_id: str) -> int:
        """A person erased: their warnings' contexts and waiting steps go, so no later step is planned for them;
        how many warnings."""
        keys = [k async for k in self._r.scan_iter(match=f"{self._p}ctx:*", count=1000)]
        theirs: list[bytes | str] = []
        for start in range(0, len(keys), 500):
            batch = keys[start:start + 500]
            for key, raw in zip(batch, await self._r.mget(batch)):
                if raw and msgspec.json.decode(raw, type=Context).decision.subject_id == subject_id:
                    theirs.append(key)
        if not theirs:
            return 0
        wids = {(k.decode() if isinstance(k, bytes) else k).rpartition(":")[2] for k in theirs}
        steps = [m for m in await self._r.zrange(f"{self._p}pending", 0, -1) if _parse_member(m)[0] in wids]
        if steps:
            await self._r.zrem(f"{self._p}pending", *steps)
        await self._r.delete(*theirs)
        return len(wids)

    async def context(self, warning_id: str) -> Context | None:
        """The stored context of a warning."""
        raw = await self._r.get(f"{self._p}ctx:{warning_id}")
        return msgspec.json.decode(raw, type=Context) if raw else None


def _member(warning_id: str, step: int) -> str:
    return f"{warning_id}|{step}"


def _parse_member(member: bytes | str) -> tuple[str, int]:
    wid, _, step = (member.decode() if isinstance(member, bytes) else member).rpartition("|")
    return wid, int(step)
