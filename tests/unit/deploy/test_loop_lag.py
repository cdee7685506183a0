"""The event loop's lag: a step that holds the loop shows as a late wake-up of the watcher."""
from __future__ import annotations

import asyncio
import time

from deploy.app.loop_lag import watch_loop


def test_a_step_holding_the_loop_is_observed_as_lag() -> None:
    observed: list[float] = []

    async def run() -> None:
        watcher = asyncio.create_task(watch_loop(observed.append, every_s=0.01))
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # a step that never awaits
        await asyncio.sleep(0.05)
        watcher.cancel()

    asyncio.run(run())
    assert len(observed) >= 3
    assert max(observed) >= 0.15
    assert sorted(observed)[len(observed) // 2] < 0.1, "the loop was free most of the time"
