"""The flush before a commit waits for every table write, also one on its way from the buffer to the producer."""
from __future__ import annotations

import asyncio

from deploy.app.faust_commit import _flush, _send_pending


class FakeBuffer:
    """faust's producer buffer as the flush sees it: a queue, and a sender that takes a while per message."""

    def __init__(self, queued: int) -> None:
        self.queue = list(range(queued))
        self.produced: list[int] = []

    @property
    def size(self) -> int:
        return len(self.queue)

    async def flush_atmost(self, max_messages: int | None) -> int:  # faust's gives up after 0.1 s per message
        await asyncio.sleep(0)
        return 0

    async def pump(self) -> None:
        """faust's `_handle_pending`: take one off the queue, then hand it to the producer."""
        while self.queue:
            message = self.queue.pop(0)
            await _send_pending(self, message)


async def _fake_faust_send(self: FakeBuffer, message: int) -> None:
    await asyncio.sleep(0.01)  # a slow send: the message is neither queued nor produced meanwhile
    self.produced.append(message)


def test_the_flush_returns_only_when_every_message_reached_the_producer(monkeypatch) -> None:
    monkeypatch.setattr("deploy.app.faust_commit._faust_send_pending", _fake_faust_send)

    async def run() -> list[int]:
        buffer = FakeBuffer(queued=3)
        pump = asyncio.ensure_future(buffer.pump())
        await asyncio.sleep(0.015)  # the second message has left the queue and is on its way
        await _flush(buffer)
        produced = list(buffer.produced)
        await pump
        return produced

    assert asyncio.run(run()) == [0, 1, 2]
