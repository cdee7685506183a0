"""The worker's long-lived objects kept out of the garbage collector's full passes, which otherwise stop it.

CPython's cyclic collector scans every tracked object in a full pass. A worker holds its person states, value
heads and their lists for hours, and a full pass over them held the event loop 0.1–0.5 s every 3–7 s in the
latency bench (docs/scaling.md), longer as the state grows. What survives a checkpoint is mostly that state,
so each checkpoint freezes what is alive (`gc.freeze`: later passes skip it; reference counting still frees
whatever dies). A cycle that dies frozen is reclaimed only by a full pass over everything, taken once every
`full_every_s` at a checkpoint: one known pause instead of many.
"""
from __future__ import annotations

import gc
import logging
import time
from typing import Callable

log = logging.getLogger(__name__)


class HeapKeeper:
    """Freezes the heap at each checkpoint; every `full_every_s` first collects over all of it."""

    def __init__(self, full_every_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self._last_full = clock()
        self.full_passes = 0
        self.reclaimed = 0  # objects the full passes found unreachable (cycles that died frozen, mostly)

    def checkpointed(self) -> None:
        """A checkpoint was written: freeze what is alive now (after a full pass, when one is due)."""
        now = self.clock()
        if now - self._last_full >= self.full_every_s:
            began = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            self.full_passes += 1
            self.reclaimed += found
            self._last_full = now
            log.info("full garbage collection over the worker's heap: %d unreachable, %.0f ms", found,
                     (time.perf_counter() - began) * 1000)
        gc.freeze()
