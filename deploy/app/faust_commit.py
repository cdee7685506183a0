"""faust's offset commit, only once the table writes of the records it commits are sent.

Table writes (every person, value, pending and marks update) go to their changelogs through faust's
`ProducerBuffer`. Before committing offsets faust flushes that buffer (`Consumer._commit_offsets` →
`Producer.flush`), but `ProducerBuffer.flush` gives up as soon as one message takes longer than 0.1 s to go out
(`flush_atmost`: a timeout returns), which a loaded worker often does. The offsets were then committed while
writes still waited in the buffer, and a worker killed then lost the state of records it would never read
again: the ten-kill fault test lost one person's incoming payments so. Here the flush waits until the buffer
is empty, as Kafka Streams flushes its producer before it commits.
"""
from __future__ import annotations

from typing import Any

from faust.transport.producer import ProducerBuffer


async def _flush(self: Any) -> None:
    """Flush all messages: until the buffer is empty (faust's own returns on the first slow message)."""
    while self.size:
        await self.flush_atmost(None)


def flush_before_commit() -> None:
    """Install the flush in faust's producer buffer (idempotent)."""
    ProducerBuffer.flush = _flush  # type: ignore[method-assign]
