"""Task queues for grid workers and callers over Redis Streams (an asyncio client handed in).

One stream per queue (`visit:G0012`, `phone:ST003`) with one consumer group. A task entering the queue is read
into the group at once under the consumer `open`, so every task sits in the pending-entries list and its owner
says who holds it: `open`, or the worker who claimed it. Claiming is XCLAIM from `open` (or from a worker who
went quiet for longer than the claim timeout); abandoned claims go back to `open` with XAUTOCLAIM. A report
acknowledges and deletes the entry, so a stream only ever holds the open and claimed tasks. Every transition
is one Lua script: two workers can never both hold a task.

A task's record (`t:{task_id}`) names its queue and entry and outlives the entry, so a task redelivered by
Kafka after a restart is not queued again, and a finished task cannot be claimed again.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from dispatch.redis_keys import slot_group
from dispatch.tasks import Scope


class FeedGrant(msgspec.Struct, frozen=True):
    """A feed token's record: whose, which queues, until when (epoch ms)."""

    worker: str
    kind: Literal["grid", "station"]
    unit: str
    expires_ms: int = 0  # a token issued before tokens expired: expired


GROUP = "feed"
OPEN = "open"  # the pseudo-consumer holding the tasks nobody has claimed
KEEP_S = 30 * 86_400

ADD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[2], 'feed', '$', 'MKSTREAM')
end
local sid = redis.call('XADD', KEYS[2], '*', 'task_id', ARGV[1], 'data', ARGV[2])
redis.call('XREADGROUP', 'GROUP', 'feed', 'open', 'COUNT', 1, 'STREAMS', KEYS[2], '>')
redis.call('HSET', KEYS[1], 'queue', ARGV[3], 'sid', sid, 'state', 'queued', 'claims', 0)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: task record, stream. ARGV: queue name, worker, claim timeout (ms).
CLAIM_LUA = """
local queue, sid, state = unpack(redis.call('HMGET', KEYS[1], 'queue', 'sid', 'state'))
if not queue or queue ~= ARGV[1] then return 'missing' end
if state ~= 'queued' then return 'done' end
local p = redis.call('XPENDING', KEYS[2], 'feed', sid, sid, 1)
if #p == 0 then return 'missing' end
local owner, idle = p[1][2], tonumber(p[1][3])
if owner ~= 'open' and owner ~= ARGV[2] and idle < tonumber(ARGV[3]) then return 'taken' end
redis.call('XCLAIM', KEYS[2], 'feed', ARGV[2], 0, sid, 'JUSTID')
if owner ~= ARGV[2] then redis.call('HINCRBY', KEYS[1], 'claims', 1) end
return 'ok'
"""

# KEYS: task record, stream. ARGV: queue name, worker, outcome record (JSON).
# 'reported': the outcome is kept on the task until the feed has written it to Kafka (see `sent`).
REPORT_LUA = """
local queue, sid, state, who = unpack(redis.call('HMGET', KEYS[1], 'queue', 'sid', 'state', 'worker'))
if not queue or queue ~= ARGV[1] then return {'missing'} end
if state == 'reported' and who == ARGV[2] then return {'resend', redis.call('HGET', KEYS[1], 'outcome')} end
if state ~= 'queued' then return {'done'} end
local p = redis.call('XPENDING', KEYS[2], 'feed', sid, sid, 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return {'not_claimed'} end
redis.call('XACK', KEYS[2], 'feed', sid)
redis.call('XDEL', KEYS[2], sid)
redis.call('HSET', KEYS[1], 'state', 'reported', 'worker', ARGV[2], 'outcome', ARGV[3])
return {'ok', ARGV[3]}
"""


# KEYS: task record, stream. ARGV: the entry's id, how long the record stays (s). The task leaves its queue; its
# record stays (without the task) so that Kafka redelivering it, or a rebuild, does not queue it again.
ERASE_LUA = """
redis.call('XACK', KEYS[2], 'feed', ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], 'outcome')
redis.call('HSET', KEYS[1], 'state', 'erased')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def feed_prefix(redis_prefix: str) -> str:
    """The task feed's key prefix: one slot, as each script changes a task's record and its queue's stream together
    (and the feed's markers of what Redis holds are lost with what they mark)."""
    return slot_group(redis_prefix, "feed")


@dataclass(frozen=True)
class Listed:
    """A task as a feed user sees it: its record, whether it is theirs, how often it was claimed."""

    task: dict
    mine: bool
    claims: int


class TaskQueues:
    """The grid and station queues, their tokens and the seen request ids, under one key prefix (`feed_prefix`)."""

    def __init__(self, client: Any, prefix: str, claim_timeout_ms: int) -> None:
        self._r = self.client = client
        self._p = self.prefix = prefix
        self.claim_timeout_ms = claim_timeout_ms
        self._add = client.register_script(ADD_LUA)
        self._claim = client.register_script(CLAIM_LUA)
        self._report = client.register_script(REPORT_LUA)
        self._erase = client.register_script(ERASE_LUA)

    def _stream(self, queue: str) -> str:
        return f"{self._p}q:{queue}"

    def _task(self, task_id: str) -> str:
        return f"{self._p}t:{task_id}"

    async def add(self, queue: str, task_id: str, record: bytes) -> bool:
        """Queue a task once; False when it was queued before (a redelivery)."""
        return bool(await self._add(keys=[self._task(task_id), self._stream(queue)],
                                    args=[task_id, record, queue, KEEP_S]))

    async def release_abandoned(self, queue: str) -> int:
        """Return claims idle for longer than the claim timeout to the open tasks; how many."""
        stream, released, start = self._stream(queue), 0, "0-0"
        if not await self._r.exists(stream):
            return 0
        while True:
            # not JUSTID: redis-py then drops the cursor from the reply
            start, entries, *_ = await self._r.xautoclaim(stream, GROUP, OPEN, self.claim_timeout_ms, start,
                                                           count=100)
            released += len(entries)
            if start in (b"0-0", "0-0"):
                return released

    async def list(self, queue: str, worker: str) -> list[Listed]:
        """The open tasks of a queue and those the worker holds (priority order is the caller's)."""
        stream = self._stream(queue)
        if not await self._r.exists(stream):
            return []
        pending = await self._r.xpending_range(stream, GROUP, min="-", max="+", count=10_000)
        owner = {_s(p["message_id"]): _s(p["consumer"]) for p in pending}
        out = []
        for sid, fields in await self._r.xrange(stream, "-", "+"):
            who = owner.get(_s(sid))
            if who not in (OPEN, worker):
                continue
            claims = await self._r.hget(self._task(_s(fields[b"task_id"])), "claims")
            out.append(Listed(msgspec.json.decode(fields[b"data"]), who == worker, int(claims or 0)))
        return out

    async def forget(self, subject_id: str) -> int:
        """A person erased: their open and claimed tasks leave every queue; how many."""
        count = 0
        async for stream in self._r.scan_iter(match=f"{self._p}q:*", count=1000):
            for sid, fields in await self._r.xrange(stream):
                data = fields.get(b"data") or fields.get("data")
                task_id = fields.get(b"task_id") or fields.get("task_id")
                if data and task_id and msgspec.json.decode(data).get("subject_id") == subject_id:
                    task_id = task_id.decode() if isinstance(task_id, bytes) else task_id
                    await self._erase(keys=[self._task(task_id), stream], args=[sid, KEEP_S])
                    count += 1
        return count

    async def mark_finished(self, task_ids: set[str]) -> None:
        """Remember tasks as finished (their reports are on Kafka) so that adding them again queues nothing."""
        async with self._r.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hsetnx(self._task(task_id), "state", "done")
                pipe.expire(self._task(task_id), KEEP_S)
            await pipe.execute()

    async def locate(self, task_id: str) -> str | None:
        """The queue a task was put in (None for a task never seen or long gone)."""
        queue = await self._r.hget(self._task(task_id), "queue")
        return _s(queue) if queue is not None else None

    async def get(self, queue: str, task_id: str) -> dict | None:
        """One task of a queue (None when it is not in that queue)."""
        sid = await self._r.hget(self._task(task_id), "sid")
        if sid is None or _s(await self._r.hget(self._task(task_id), "queue")) != queue:
            return None
        entries = await self._r.xrange(self._stream(queue), sid, sid)
        return msgspec.json.decode(entries[0][1][b"data"]) if entries else None

    async def claim(self, queue: str, task_id: str, worker: str) -> str:
        """Claim (or keep holding) a task: `ok`, `taken` (someone else holds it), `done`, or `missing`."""
        return _s(await self._claim(keys=[self._task(task_id), self._stream(queue)],
                                    args=[queue, worker, self.claim_timeout_ms]))

    async def report(self, queue: str, task_id: str, worker: str, outcome: bytes) -> tuple[str, bytes | None]:
        """Finish a task the worker holds: (`ok` | `resend`, the outcome to write) or (`not_claimed` | `done` |
        `missing`, None). `resend`: reported before but not yet written to Kafka."""
        status, *rest = await self._report(keys=[self._task(task_id), self._stream(queue)],
                                           args=[queue, worker, outcome])
        return _s(status), (rest[0] if rest else None)

    async def sent(self, task_id: str) -> None:
        """The task's outcome is on Kafka: the task is done."""
        await self._r.hset(self._task(task_id), mapping={"state": "done"})
        await self._r.hdel(self._task(task_id), "outcome")

    async def depths(self) -> dict[str, tuple[int, int | None]]:
        """Every queue's open and claimed tasks, and the event time of its oldest one."""
        out: dict[str, tuple[int, int | None]] = {}
        async for key in self._r.scan_iter(match=f"{self._p}q:*", count=500):
            queue = _s(key)[len(self._p) + 2:]
            first = await self._r.xrange(key, "-", "+", count=1)
            oldest = int(msgspec.json.decode(first[0][1][b"data"])["ts"]) if first else None
            out[queue] = (int(await self._r.xlen(key)), oldest)
        return out

    # -- tokens and replay protection ------------------------------------------------------------------------

    async def issue_token(self, scope: Scope, ttl_s: int, now_ms: int) -> str:
        """A new bearer token for a feed user, valid for `ttl_s` seconds; only its hash is stored."""
        if ttl_s <= 0:
            raise ValueError("a feed token needs a positive lifetime")
        token = secrets.token_urlsafe(32)
        expired = [k for k, v in (await self._r.hgetall(f"{self._p}tokens")).items()
                   if (old := _grant(v)) is None or old.expires_ms <= now_ms]  # a token issued is rare: tidy up
        if expired:
            await self._r.hdel(f"{self._p}tokens", *expired)
        grant = FeedGrant(scope.worker, scope.kind, scope.unit, now_ms + ttl_s * 1000)
        await self._r.hset(f"{self._p}tokens", _hash(token), msgspec.json.encode(grant))
        return token

    async def revoke_tokens(self, worker: str) -> int:
        """Revoke every token of a worker; how many."""
        gone = [k for k, v in (await self._r.hgetall(f"{self._p}tokens")).items()
                if (grant := _grant(v)) is None or grant.worker == worker]  # unreadable ones go too
        return int(await self._r.hdel(f"{self._p}tokens", *gone)) if gone else 0

    async def scope_of(self, token: str, now_ms: int) -> Scope | None:
        """Who a token belongs to (None for an unknown or expired token)."""
        raw = await self._r.hget(f"{self._p}tokens", _hash(token)) if token else None
        grant = _grant(raw) if raw else None
        if grant is None or now_ms >= grant.expires_ms:
            return None
        return Scope(grant.worker, grant.kind, grant.unit)

    async def first_use(self, worker: str, request_id: str, window_s: int) -> bool:
        """True the first time a worker sends this request id within the window (False: a replay)."""
        return bool(await self._r.set(f"{self._p}req:{worker}:{request_id}", 1, nx=True, ex=window_s))


def _grant(raw: bytes) -> FeedGrant | None:
    try:
        return msgspec.json.decode(raw, type=FeedGrant)
    except (msgspec.DecodeError, ValueError):  # ValueError: a stored scope `Scope` would refuse now
        return None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
