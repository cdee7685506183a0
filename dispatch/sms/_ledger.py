"""The SMS adapter's ledger in Redis: a mark per message id (sending, accepted, settled, erased) that refuses a
second send whatever the provider does with repeats, and the messages waiting for their receipts."""
from __future__ import annotations

from typing import Any

import msgspec

from dispatch.redis_keys import slot_group
from dispatch.sms._deliver import Receipt, Sent
from schemas.internal import SmsSent

DONE_TTL_S = 30 * 86_400  # how long a message's mark stays: as long as dispatch.sms keeps it


def adapter_prefix(redis_prefix: str) -> str:
    """The SMS adapter's Redis keys start with this: one slot, as a message's mark, record and the waiting sets
    change together (and the adapter's markers of what Redis holds, kept here too, are lost with what they mark)."""
    return slot_group(redis_prefix, "sms")


def done_key(redis_prefix: str, message_id: str) -> str:
    """The mark of a message the SMS adapter must not send (again): being sent, accepted, settled, or erased."""
    return f"{adapter_prefix(redis_prefix)}done:{message_id}"


def waiting_keys(redis_prefix: str) -> tuple[str, str]:
    """The SMS adapter's sorted sets of messages waiting in Redis: warnings not due yet, and reminders."""
    return adapter_prefix(redis_prefix) + "parked", adapter_prefix(redis_prefix) + "reminders"


class Ledger:
    """Marks and receipts-to-come of the SMS adapter, shared by its replicas.

    A message's mark goes `claimed` (before anything is written about it) → `sending` (its journal entry
    written, the provider about to be asked) → `accepted` (waiting for a receipt) → its outcome; `erased` at
    any time. A restart that finds `claimed` may send; one that finds `sending` never does."""

    def __init__(self, redis: Any, redis_prefix: str) -> None:
        self._redis, self._redis_prefix = redis, redis_prefix
        p = adapter_prefix(redis_prefix)
        self._sent, self._ref, self._unmatched = p + "sent:", p + "ref:", p + "unmatched:"
        self._next_look, self._accepted = p + "awaiting", p + "accepted"  # by next pull, by acceptance (wall ms)
        self._settling = p + "settling"  # taken to be settled, their outcome not written yet (by when taken)

    def _done(self, message_id: str) -> str:
        return done_key(self._redis_prefix, message_id)

    async def mark(self, message_id: str) -> str | None:
        """The message's mark (None: never sent)."""
        mark = await self._redis.get(self._done(message_id))
        return mark.decode() if isinstance(mark, bytes) else mark

    async def claim(self, message_id: str, again: bool = False) -> bool:
        """Mark the message claimed by this adapter; False when it already has a mark (with `again`: unless the
        mark is `claimed`, which a crash left before the provider was asked)."""
        if again:
            return bool(await self._redis.eval(_CLAIM_AGAIN, 1, self._done(message_id), DONE_TTL_S))
        return bool(await self._redis.set(self._done(message_id), "claimed", nx=True, ex=DONE_TTL_S))

    async def set_mark(self, message_id: str, mark: str) -> None:
        """The message's mark (`sending`, its outcome, or erased)."""
        await self._redis.set(self._done(message_id), mark, ex=DONE_TTL_S)

    async def release(self, message_id: str) -> bool:
        """The provider did not take it (throttled): the message may be sent again later, unless its person was
        erased meanwhile (False)."""
        return bool(await self._redis.eval(_RELEASE, 1, self._done(message_id)))

    async def await_receipt(self, sent: SmsSent, first_look_ms: int) -> None:
        """The provider took the message (or may have: `ref` empty); its receipt is to come. Nothing is kept of
        a message erased meanwhile."""
        mid = sent.message_id
        if await self.mark(mid) == "erased":
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._sent + mid, mapping={"warning_id": sent.warning_id, "to": sent.to, "ref": sent.ref,
                                                 "kind": sent.kind, "at": sent.at})
            pipe.expire(self._sent + mid, DONE_TTL_S)
            if sent.ref:
                pipe.set(self._ref + sent.ref, mid, ex=DONE_TTL_S)
            pipe.zadd(self._next_look, {mid: sent.at + first_look_ms})
            pipe.zadd(self._accepted, {mid: sent.at})
            pipe.set(self._done(mid), "accepted", ex=DONE_TTL_S)
            await pipe.execute()

    async def due(self, now_ms: int, every_ms: int, limit: int = 100) -> list[Sent]:
        """Messages whose receipt is due a look (each then looked at again `every_ms` later)."""
        ids = [m.decode() for m in await self._redis.zrangebyscore(self._next_look, "-inf", now_ms, start=0,
                                                                    num=limit)]
        if not ids:
            return []
        await self._redis.zadd(self._next_look, {m: now_ms + every_ms for m in ids}, xx=True)
        return await self._kept(ids)

    async def waiting_count(self) -> int:
        """How many messages wait for a receipt."""
        return int(await self._redis.zcard(self._accepted))

    async def overdue(self, before_ms: int, limit: int = 100) -> list[Sent]:
        """Messages accepted before `before_ms` still without a receipt."""
        ids = await self._redis.zrangebyscore(self._accepted, "-inf", before_ms, start=0, num=limit)
        return await self._kept([m.decode() for m in ids])

    async def message_of(self, receipt: Receipt) -> str:
        """Our message id of a receipt: its own, or the one its provider reference was recorded under."""
        if receipt.message_id or not receipt.ref:
            return receipt.message_id
        found = await self._redis.get(self._ref + receipt.ref)
        return found.decode() if found else ""

    async def take(self, message_id: str, now_ms: int) -> dict[str, str] | None:
        """Take a waiting message to settle it (one caller only, of any replica), with what was kept of it;
        None when none waits under that id. Until `finish`, it is in the settling set: `give_back` returns it
        to the waiting, and `give_back_stale` those a crash left there."""
        if not message_id:
            return None
        found = await self._redis.eval(_TAKE, 3, self._accepted, self._settling, self._sent + message_id,
                                       message_id, now_ms)
        if not found:
            return None
        kept = dict(zip(found[::2], found[1::2]))
        return {k.decode(): v.decode() for k, v in kept.items()}

    async def give_back(self, message_id: str, accepted_ms: int) -> None:
        """A message taken whose outcome could not be written waits again."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._settling, message_id)
            pipe.zadd(self._accepted, {message_id: accepted_ms})
            await pipe.execute()

    async def give_back_stale(self, before_ms: int) -> int:
        """Messages a crash left taken without an outcome wait again (a receipt, or the timeout, settles them)."""
        stale = await self._redis.zrangebyscore(self._settling, "-inf", before_ms)
        for raw in stale:
            kept = await self._redis.hget(self._sent + raw.decode(), "at")
            await self.give_back(raw.decode(), int(kept or before_ms))
        return len(stale)

    async def keep_unmatched(self, receipt: Receipt) -> None:
        """A receipt for a message not recorded yet (a receipt faster than the send's answer, or pulled by
        another replica): kept a day for its message to claim."""
        key = receipt.message_id or f"ref:{receipt.ref}"
        await self._redis.set(self._unmatched + key, msgspec.json.encode(receipt), ex=86_400)

    async def drop_unmatched(self, receipt: Receipt) -> None:
        """A kept receipt settled its message after all."""
        await self._redis.delete(self._unmatched + (receipt.message_id or f"ref:{receipt.ref}"))

    async def unmatched_for(self, sent: SmsSent) -> Receipt | None:
        """A receipt that came before the message was recorded, taken out."""
        for key in (sent.message_id, f"ref:{sent.ref}" if sent.ref else ""):
            if key and (raw := await self._redis.getdel(self._unmatched + key)) is not None:
                return msgspec.json.decode(raw, type=Receipt)
        return None

    async def finish(self, message_id: str, mark: str) -> None:
        """The message is settled: it waits no more; its mark is its outcome."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._next_look, message_id)
            pipe.zrem(self._accepted, message_id)
            pipe.zrem(self._settling, message_id)
            pipe.delete(self._sent + message_id)
            pipe.set(self._done(message_id), mark, ex=DONE_TTL_S)
            await pipe.execute()

    async def _kept(self, ids: list[str]) -> list[Sent]:
        """What was kept of these waiting messages; an id whose record is gone waits no more."""
        out = []
        for message_id in ids:
            kept = {k.decode(): v.decode() for k, v in (await self._redis.hgetall(self._sent + message_id)).items()}
            if kept:
                out.append(Sent(message_id, kept["to"], kept["ref"], int(kept["at"])))
            else:
                await self._redis.zrem(self._next_look, message_id)
                await self._redis.zrem(self._accepted, message_id)
        return out

    async def forget(self, phones: set[str]) -> int:
        """A person erased: the messages to their lines waiting for a receipt are marked erased and kept no more."""
        count = 0
        for sent in await self._kept([m.decode() for m in await self._redis.zrange(self._accepted, 0, -1)]):
            if sent.to in phones:
                await self.finish(sent.message_id, "erased")
                count += 1
        return count


# a waiting message taken to be settled: out of the waiting set into the settling one, with its record.
# KEYS: accepted, settling, its record; ARGV: message id, now (ms)
_TAKE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return redis.call('HGETALL', KEYS[3])
"""
# a throttled message's mark dropped so it may go later, unless it was erased meanwhile
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= 'sending' then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""
# claimed again only if the mark is still `claimed` (left by a crash before the provider was asked) or absent
_CLAIM_AGAIN = """
local mark = redis.call('GET', KEYS[1])
if mark and mark ~= 'claimed' then return 0 end
redis.call('SET', KEYS[1], 'claimed', 'EX', ARGV[1])
return 1
"""


async def forget_waiting(client: Any, redis_prefix: str, phones: set[str]) -> int:
    """A person erased: the messages to their lines waiting at the SMS adapter (to be sent, or for a receipt) go,
    each marked erased so that Kafka redelivering it does not send it; how many."""
    count = 0
    for key in waiting_keys(redis_prefix):
        waiting = {raw: msgspec.json.decode(raw) for raw in await client.zrange(key, 0, -1)}
        theirs = {raw: message["message_id"] for raw, message in waiting.items() if message.get("to") in phones}
        for message_id in theirs.values():
            await client.set(done_key(redis_prefix, message_id), "erased", ex=DONE_TTL_S)
        if theirs:
            count += await client.zrem(key, *theirs)
    return count + await Ledger(client, redis_prefix).forget(phones)
