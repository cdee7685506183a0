"""How late the worker's event loop runs what is due: the stalls every task of the worker shares."""
from __future__ import annotations

import asyncio
import time
from typing import Callable


async def watch_loop(observe: Callable[[float], None], every_s: float = 0.01,
                     clock: Callable[[], float] = time.perf_counter) -> None:
    """Sleep `every_s` again and again, observing how late each sleep woke (until cancelled)."""
    while True:
        began = clock()
        await asyncio.sleep(every_s)
        observe(max(0.0, clock() - began - every_s))
