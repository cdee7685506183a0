"""What the live console shows, kept in Redis by the dispatch stage (shared by every worker, capped, idempotent).

Only what an operator needs and nothing personal beyond masked names: a warning's tier, type, score, reasons,
masked name, grid and station; interceptions with accounts and numbers masked.
"""
from __future__ import annotations

from typing import Any

import msgspec

from dispatch.redis_keys import slot_group
from schemas.masking import mask
from schemas.records import (
    AccountInterception,
    BankReply,
    DomainInterception,
    FraudWarning,
    NumberInterception,
    PaymentInterception,
    Subject,
)

KEEP = 500
WHO = "_subject_id"  # in a warning's document: whom it is about, for an erasure; never shown

# An entry remembered once, the oldest beyond `KEEP` dropped, and (a warning) its tier counted, in one round trip.
# KEYS: the sorted set, its documents, the tier counts; ARGV: member, ts, document, keep, tier ('' for none).
REMEMBER_LUA = """
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local old = redis.call('ZRANGE', KEYS[1], 0, -tonumber(ARGV[4]) - 1)
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
end
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[5], 1) end
return 1
"""


# A bank's answer written into its stop-payment's entry, the latest answer by event time winning.
# KEYS: the interceptions' documents; ARGV: member, reply, reply ts, held fen ('' for none), bank, request id.
# Returns {state, the answer it replaced}: state 0 when the board holds no such request (or another request for
# the transfer), 1 when the answer is older than the one shown or repeats it, 2 when it is shown now.
SETTLE_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {0, ''} end
local doc = cjson.decode(raw)
if type(doc['request_id']) == 'string' and doc['request_id'] ~= ARGV[6] then return {0, ''} end
local ts = tonumber(ARGV[3])
local before = type(doc['reply']) == 'string' and doc['reply'] or ''
if doc['reply_ts'] and (doc['reply_ts'] > ts or (doc['reply_ts'] == ts and before == ARGV[2])) then
  return {1, before}
end
doc['reply'] = ARGV[2]
doc['reply_ts'] = ts
doc['bank'] = ARGV[5]
doc['held_fen'] = nil
if ARGV[4] ~= '' then doc['held_fen'] = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(doc))
return {2, before}
"""


def warning_entry(w: FraudWarning, profile: Subject | None) -> dict[str, Any]:
    """A warning as the console lists it."""
    return {"warning_id": w.warning_id, "tier": w.tier, "fraud_type": w.fraud_type, "score": round(w.score, 3),
            "reasons": [r.detail for r in w.reasons][:4], "channels": list(w.channels), "ts": w.ts,
            "respond_by_ts": w.respond_by_ts, "name": profile.name_masked if profile else "未登记",
            "grid": profile.grid_id if profile else "UNASSIGNED", "station": profile.station_id if profile else ""}


def interception_entry(topic: str, value: Any) -> tuple[str, dict[str, Any]] | None:
    """An interception as the console lists it, with its identity for de-duplication."""
    if isinstance(value, PaymentInterception):
        return f"payment|{value.transfer_id}", {"kind": "stop-payment", "ts": value.ts, "amount_fen": value.amount_fen,
                                                "target": mask(value.payee_account), "reason": value.reason[:120],
                                                "request_id": value.request_id, "expires_ts": value.expires_ts}
    if isinstance(value, AccountInterception):
        return f"account|{value.account}", {"kind": "account control", "ts": value.ts, "target": mask(value.account),
                                            "reason": value.reason[:120]}
    if isinstance(value, DomainInterception):
        return f"domain|{value.domain}|{value.ts}", {"kind": "domain block", "ts": value.ts, "target": value.domain,
                                                     "reason": value.reason[:120]}
    if isinstance(value, NumberInterception):
        return f"number|{value.number}|{value.ts}", {"kind": f"number {value.action}", "ts": value.ts,
                                                     "target": mask(value.number), "reason": value.reason[:120]}
    return None


def board_prefix(redis_prefix: str) -> str:
    """The board's key prefix: one slot, as an entry, its document and the tier counts change in one script."""
    return slot_group(redis_prefix, "ops")


class OpsBoard:
    """Recent warnings and interceptions in Redis (an asyncio client, handed in), newest by event time."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._r = client
        self._p = board_prefix(prefix)
        self._remember_lua = client.register_script(REMEMBER_LUA)
        self._settle_lua = client.register_script(SETTLE_LUA)

    async def _remember(self, kind: str, member: str, ts: int, doc: dict[str, Any], tier: str = "") -> bool:
        keys = [f"{self._p}{kind}", f"{self._p}{kind}:doc", f"{self._p}tiers"]
        return bool(await self._remember_lua(keys=keys, args=[member, ts, msgspec.json.encode(doc), KEEP, tier]))

    async def record_warning(self, warning: FraudWarning, profile: Subject | None) -> None:
        """Remember a warning (once per id) and count it by tier; whom it is about is kept for an erasure (not
        shown: `recent` leaves it out)."""
        doc = {**warning_entry(warning, profile), WHO: warning.subject_id}
        await self._remember("warnings", warning.warning_id, warning.ts, doc, warning.tier)

    async def forget(self, subject_id: str) -> int:
        """A person erased: their warnings leave the board (the tier counts stay: they name nobody); how many."""
        docs = await self._r.hgetall(f"{self._p}warnings:doc")
        theirs = [member for member, raw in docs.items() if msgspec.json.decode(raw).get(WHO) == subject_id]
        if theirs:
            await self._r.zrem(f"{self._p}warnings", *theirs)
            await self._r.hdel(f"{self._p}warnings:doc", *theirs)
        return len(theirs)

    async def record_interception(self, topic: str, value: Any) -> None:
        """Remember an interception (once per transfer, account, domain or number and time)."""
        entry = interception_entry(topic, value)
        if entry is not None:
            await self._remember("interceptions", entry[0], entry[1]["ts"], entry[1])

    async def settle_stop_payment(self, reply: BankReply) -> tuple[int, str]:
        """A bank's answer shown on its stop-payment (the latest by event time): the state (`SETTLE_LUA`: 0 not on
        the board, 1 older or repeated, 2 shown) and the answer it replaced ('' for none)."""
        held = "" if reply.reply != "held" or reply.held_fen is None else reply.held_fen
        args = [f"payment|{reply.transfer_id}", reply.reply, reply.ts, held, reply.bank, reply.request_id]
        state, before = await self._settle_lua(keys=[f"{self._p}interceptions:doc"], args=args)
        return int(state), before.decode() if isinstance(before, bytes) else str(before)

    async def recent(self, kind: str, count: int) -> list[dict[str, Any]]:
        """The newest entries of a kind (`warnings`, `interceptions`)."""
        members = await self._r.zrevrange(f"{self._p}{kind}", 0, count - 1)
        docs = await self._r.hmget(f"{self._p}{kind}:doc", members) if members else []
        return [{k: v for k, v in msgspec.json.decode(d).items() if k != WHO} for d in docs if d]

    async def tiers(self) -> dict[str, int]:
        """Warnings issued so far, by tier."""
        raw = await self._r.hgetall(f"{self._p}tiers")
        return {k.decode(): int(v) for k, v in raw.items()}
