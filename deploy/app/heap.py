"""The worker's long-lived objects kept out of the garbage collector's full passes, which stop its event loop.

CPython's cyclic collector scans every tracked object in a full pass, and a worker holds its person states,
value heads and their lists for hours: each full pass held the loop longer as the state grew (docs/scaling.md).
What survives a checkpoint is mostly that state, so each checkpoint collects what was made since the last one
and freezes what is left (`gc.freeze`: later passes skip it; reference counting still frees what dies). A cycle
that dies frozen is reclaimed only by a full pass over everything, taken once every `full_every_s`.
"""
from __future__ import annotations

import gc
import logging
import time
from typing import Callable

log = logging.getLogger(__name__)


class HeapKeeper:
    """Collects the young and freezes the heap at each checkpoint; every `full_every_s`, first a full pass."""

    def __init__(self, full_every_s: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 observe_full: Callable[[float], None] = lambda seconds: None) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self.observe_full = observe_full  # the duration of each full pass (the metrics)
        self._last_full = clock()
        self.full_passes = 0
        self.reclaimed = 0  # objects the full passes found unreachable (cycles that died frozen, mostly)

    def checkpointed(self) -> None:
        """A checkpoint was written: collect what is not frozen (all of it, when a full pass is due), then freeze."""
        now = self.clock()
        full = now - self._last_full >= self.full_every_s
        if full:
            gc.unfreeze()
        began = time.perf_counter()
        found = gc.collect()
        if full:
            took = time.perf_counter() - began
            self.full_passes += 1
            self.reclaimed += found
            self._last_full = now
            self.observe_full(took)
            log.info("full garbage collection over the worker's heap: %d unreachable, %.0f ms", found, took * 1000)
        gc.freeze()
