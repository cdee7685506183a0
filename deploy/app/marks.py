"""Which marks this worker sends where (streams/watermarks.py), from the partitions it holds; and only the new ones.

Source partitions (signals, indicators) report how far this worker has read them; person and value partitions
pass on their view once they have caught up (`Processor.out_mark`). Person events carry every channel's mark;
contacts carry the indicators' and the person partitions' (a value partition's hits wait for those).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, Protocol

from schemas.topics import SOURCE_TOPICS
from streams.watermarks import Mark, SourceProgress, Topology

DERIVED = ("yujing.events", "yujing.contacts")


class Partition(Protocol):
    """A topic partition as the consumer names it."""

    topic: str
    partition: int


class DerivedMarks(Protocol):
    """What gives a person or value partition's mark (the processor)."""

    def out_mark(self, topic: str, partition: int, topology: Topology) -> Mark: ...


def owned_marks(assignment: Iterable[Partition], logical_of: dict[str, str], progress: SourceProgress,
                derived: DerivedMarks, topology: Topology, highwater: Callable[[Partition], int | None],
                committed: Callable[[Partition], int | None],
                polled_at: Callable[[Partition], float | None] = lambda tp: None) -> dict[str, list[Mark]]:
    """The marks of the channels held now (`assignment`, real topic names mapped by `logical_of`), by destination."""
    out: dict[str, list[Mark]] = {"yujing.events": [], "yujing.contacts": []}
    for tp in assignment:
        logical = logical_of.get(tp.topic)
        if logical in SOURCE_TOPICS:
            # not fetched yet (highwater None): not caught up either
            mark = progress.mark(f"{logical}/{tp.partition}", highwater(tp), committed(tp), polled_at(tp))
            out["yujing.events"].append(mark)
            if logical == "intel.indicators":
                out["yujing.contacts"].append(mark)
        elif logical in DERIVED:
            m = derived.out_mark(logical, tp.partition, topology)
            out["yujing.events"].append(m)
            if logical == "yujing.events":
                out["yujing.contacts"].append(m)
    return out


class MarkDeduper:
    """Only changed marks go out, so an idle pipeline goes quiet; after a rebalance everything goes once again."""

    def __init__(self) -> None:
        self._last: dict[str, Mark] = {}

    def fresh(self, destination: str, marks: list[Mark]) -> list[Mark]:
        """The marks for `destination` that differ from the last sent there."""
        return [m for m in marks if self._last.get(f"{destination}|{m.channel}") != m]

    def sent(self, destination: str, marks: list[Mark]) -> None:
        """These marks went to every partition of `destination` (until then they stay fresh)."""
        for m in marks:
            self._last[f"{destination}|{m.channel}"] = m

    def forget(self) -> None:
        """Partitions moved: send everything again."""
        self._last.clear()
