"""Clocks for the adapters: the wall clock, or the pipeline's event time for simulated days."""
from __future__ import annotations

import time
from typing import Callable


class EventClock:
    """The pipeline's clock for simulated days: the latest task time seen, moving on with wall time after it."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._ts, self._at = 0, monotonic()

    def advance(self, ts: int) -> None:
        """A task with event time `ts` was read."""
        if ts > self.now_ms():
            self._ts, self._at = ts, self._monotonic()

    def now_ms(self) -> int:
        """Now, in event time."""
        return self._ts + int((self._monotonic() - self._at) * 1000)


def wall_ms() -> int:
    """Now, on the wall clock, in epoch milliseconds."""
    return int(time.time() * 1000)


def pick_clock(kind: str) -> tuple[EventClock, Callable[[], int]]:
    """The event clock (fed by the adapter) and the `now` the adapter judges with: `event` or `wall`."""
    events = EventClock()
    return events, (events.now_ms if kind == "event" else wall_ms)
