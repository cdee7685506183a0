"""The worker's long-lived objects kept out of the garbage collector's full passes, which stop its event loop.

CPython's cyclic collector scans every tracked object in a full pass, and a worker holds its person states,
value heads and their lists for hours: each full pass held the loop longer as the state grew (docs/scaling.md).
What survives a checkpoint is mostly that state, so each checkpoint freezes it (`gc.freeze`: later passes skip
it; reference counting still frees what dies). The hot path makes almost no cyclic garbage, and passes over the
oldest generation, even of a second's survivors, cost a seventh of a worker's CPU flat out (docs/scaling.md,
eleventh step of issue 15): a checkpoint collects the two young generations only, the collector's own passes
over the oldest become rare, and a cycle that died old waits for a full pass over everything, once every
`full_every_s`.
"""
from __future__ import annotations

import gc
import logging
import sys
import time
from typing import Callable

log = logging.getLogger(__name__)

# Passes of the middle generation between two of the collector's own over the oldest: about one a minute flat out
# (80 in a 50 s run before). Kept finite so that what grows old while checkpoints fail (a broker away) is still
# collected.
BACKSTOP = 1_000


class HeapKeeper:
    """Freezes the heap at each checkpoint after a pass over the young; every `full_every_s`, a full pass first."""

    def __init__(self, full_every_s: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 observe_full: Callable[[float], None] = lambda seconds: None) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self.observe_full = observe_full  # the duration of each full pass (the metrics)
        self._last_full = clock()
        self.full_passes = 0
        self.reclaimed = 0  # objects the full passes found unreachable (cycles that died old, mostly)

    def keep_full_passes_rare(self) -> None:
        """Let the collector pass over the oldest generation only once every `BACKSTOP` passes of the middle."""
        if sys.version_info >= (3, 14):
            return  # an incremental collector there: it takes the old generation in small slices already
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, BACKSTOP)

    def checkpointed(self) -> None:
        """A checkpoint was written: collect the young (everything, when a full pass is due), then freeze."""
        now = self.clock()
        if now - self._last_full < self.full_every_s:
            gc.collect(1)
        else:
            gc.unfreeze()
            began = time.perf_counter()
            found = gc.collect()
            took = time.perf_counter() - began
            self.full_passes += 1
            self.reclaimed += found
            self._last_full = now
            self.observe_full(took)
            log.info("full garbage collection over the worker's heap: %d unreachable, %.0f ms", found, took * 1000)
        gc.freeze()
