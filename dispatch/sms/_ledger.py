"""The SMS adapter's ledger in Redis: a mark per message id (sending, accepted, settled, erased) that refuses a
second send whatever the provider does with repeats, and the messages waiting for their receipts."""
from __future__ import annotations

from typing import Any

import msgspec

from dispatch.sms._deliver import Receipt, Sent
from schemas.internal import SmsSent

DONE_TTL_S = 30 * 86_400  # how long a message's mark stays: as long as dispatch.sms keeps it


def adapter_prefix(redis_prefix: str) -> str:
    """The SMS adapter's Redis keys start with this."""
    return f"{redis_prefix}sms:"


def done_key(redis_prefix: str, message_id: str) -> str:
    """The mark of a message the SMS adapter must not send (again): being sent, accepted, settled, or erased."""
    return f"{adapter_prefix(redis_prefix)}done:{message_id}"


def waiting_keys(redis_prefix: str) -> tuple[str, str]:
    """The SMS adapter's sorted sets of messages waiting in Redis: warnings not due yet, and reminders."""
    return adapter_prefix(redis_prefix) + "parked", adapter_prefix(redis_prefix) + "reminders"


class Ledger:
    """Marks and receipts-to-come of the SMS adapter, shared by its replicas."""

    def __init__(self, redis: Any, redis_prefix: str) -> None:
        self._redis, self._redis_prefix = redis, redis_prefix
        p = adapter_prefix(redis_prefix)
        self._sent, self._ref = p + "sent:", p + "ref:"
        self._next_look, self._accepted = p + "awaiting", p + "accepted"  # by next pull, by acceptance (wall ms)

    async def mark(self, message_id: str) -> str | None:
        """The message's mark (None: never sent)."""
        mark = await self._redis.get(done_key(self._redis_prefix, message_id))
        return mark.decode() if isinstance(mark, bytes) else mark

    async def claim(self, message_id: str) -> bool:
        """Mark the message as being sent, before the provider is asked; False when it already has a mark."""
        return bool(await self._redis.set(done_key(self._redis_prefix, message_id), "sending", nx=True,
                                          ex=DONE_TTL_S))

    async def settle_mark(self, message_id: str, mark: str) -> None:
        """The message's final mark (its outcome, or erased)."""
        await self._redis.set(done_key(self._redis_prefix, message_id), mark, ex=DONE_TTL_S)

    async def await_receipt(self, sent: SmsSent, first_look_ms: int) -> None:
        """The provider took the message (or may have: `ref` empty); its receipt is to come."""
        mid = sent.message_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._sent + mid, mapping={"warning_id": sent.warning_id, "to": sent.to, "ref": sent.ref,
                                                 "kind": sent.kind, "at": sent.at})
            pipe.expire(self._sent + mid, DONE_TTL_S)
            if sent.ref:
                pipe.set(self._ref + sent.ref, mid, ex=DONE_TTL_S)
            pipe.zadd(self._next_look, {mid: sent.at + first_look_ms})
            pipe.zadd(self._accepted, {mid: sent.at})
            pipe.set(done_key(self._redis_prefix, mid), "accepted", ex=DONE_TTL_S)
            await pipe.execute()

    async def due(self, now_ms: int, every_ms: int, limit: int = 100) -> list[Sent]:
        """Messages whose receipt is due a look (each then looked at again `every_ms` later)."""
        ids = [m.decode() for m in await self._redis.zrangebyscore(self._next_look, "-inf", now_ms, start=0,
                                                                    num=limit)]
        if not ids:
            return []
        await self._redis.zadd(self._next_look, {m: now_ms + every_ms for m in ids}, xx=True)
        return [s for s in [await self._sent_of(m) for m in ids] if s is not None]

    async def waiting_count(self) -> int:
        """How many messages wait for a receipt."""
        return int(await self._redis.zcard(self._accepted))

    async def overdue(self, before_ms: int, limit: int = 100) -> list[Sent]:
        """Messages accepted before `before_ms` still without a receipt."""
        ids = await self._redis.zrangebyscore(self._accepted, "-inf", before_ms, start=0, num=limit)
        return [s for s in [await self._sent_of(m.decode()) for m in ids] if s is not None]

    async def find(self, receipt: Receipt) -> tuple[str, dict[str, str]] | None:
        """The waiting message a receipt is about, with what was kept of it; None when none waits (settled
        already, another app's, or its send not recorded yet)."""
        message_id = receipt.message_id
        if not message_id and receipt.ref:
            found = await self._redis.get(self._ref + receipt.ref)
            message_id = found.decode() if found else ""
        if not message_id or await self._redis.zscore(self._accepted, message_id) is None:
            return None
        kept = await self._redis.hgetall(self._sent + message_id)
        return message_id, {k.decode(): v.decode() for k, v in kept.items()}

    async def knows(self, ref: str) -> bool:
        """Whether a provider's reference was ever recorded (its message settled since, if it waits no more)."""
        return bool(await self._redis.exists(self._ref + ref))

    async def finish(self, message_id: str, mark: str) -> None:
        """The message is settled: it waits no more; its mark is its outcome."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._next_look, message_id)
            pipe.zrem(self._accepted, message_id)
            pipe.delete(self._sent + message_id)
            pipe.set(done_key(self._redis_prefix, message_id), mark, ex=DONE_TTL_S)
            await pipe.execute()

    async def _sent_of(self, message_id: str) -> Sent | None:
        kept = {k.decode(): v.decode() for k, v in (await self._redis.hgetall(self._sent + message_id)).items()}
        if not kept:
            return None
        return Sent(message_id, kept["to"], kept["ref"], int(kept["at"]))

    async def forget(self, phones: set[str]) -> int:
        """A person erased: the messages to their lines waiting for a receipt are marked erased and kept no more."""
        count = 0
        for raw in await self._redis.zrange(self._accepted, 0, -1):
            sent = await self._sent_of(raw.decode())
            if sent is not None and sent.to in phones:
                await self.finish(sent.message_id, "erased")
                count += 1
        return count


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
