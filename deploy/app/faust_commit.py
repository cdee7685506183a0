"""faust's offset commit, only once the table writes of the records it commits are sent.

Table writes (every person, value, pending and marks update) go to their changelogs through faust's
`ProducerBuffer`. Before committing offsets faust flushes that buffer (`Consumer._commit_offsets` →
`Producer.flush`), but `ProducerBuffer.flush` gives up as soon as one message takes longer than 0.1 s to go out
(`flush_atmost`: a timeout returns), which a loaded worker often does, and it counts as flushed a message taken
off the buffer but not yet handed to the Kafka producer. The offsets were then committed while writes still
waited, and a worker killed then lost the state of records it would never read again: the ten-kill fault test
lost one person's incoming payments so. Here the flush waits until the buffer is empty and nothing is between
the buffer and the producer, as Kafka Streams flushes its producer before it commits.
"""
from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.producer import ProducerBuffer

_faust_send_pending = ProducerBuffer._send_pending


def _sending(buffer: Any) -> int:
    return int(buffer.__dict__.get("_yujing_sending", 0))


async def _send_pending(self: Any, fut: Any) -> None:
    """faust's, counted while under way (from when it leaves the buffer to when the producer has it)."""
    self.__dict__["_yujing_sending"] = _sending(self) + 1
    try:
        await _faust_send_pending(self, fut)
    finally:
        self.__dict__["_yujing_sending"] = _sending(self) - 1


async def _flush(self: Any) -> None:
    """Flush all messages: until the buffer is empty and none is on its way to the producer."""
    while self.size or _sending(self):
        if self.size:
            await self.flush_atmost(None)
        else:
            await asyncio.sleep(0.001)


def flush_before_commit() -> None:
    """Install the flush in faust's producer buffer (idempotent)."""
    ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush  # type: ignore[method-assign]
