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


class PassedOn:
    """The marks person and value partitions pass on, kept until the partition's records are read again.

    A derived partition's view (its frontier and whether it has caught up) moves only as its own records are read,
    or when partitions move; so between those its mark is the same, and an idle batch need not compute it again
    (`pass_on` over every input channel, for every partition held). The topology is the worker's for its life,
    so it is no part of the key."""

    def __init__(self, derived: DerivedMarks) -> None:
        self._derived = derived
        self._marks: dict[tuple[str, int], Mark] = {}

    def out_mark(self, topic: str, partition: int, topology: Topology) -> Mark:
        """The partition's mark, computed again only if its records were read since it was last asked for."""
        mark = self._marks.get((topic, partition))
        if mark is None:
            mark = self._marks[(topic, partition)] = self._derived.out_mark(topic, partition, topology)
        return mark

    def read(self, topic: str, partition: int) -> None:
        """Records of the partition are being read: its view may move."""
        self._marks.pop((topic, partition), None)

    def forget(self) -> None:
        """Partitions moved or were read back: every view is asked for again."""
        self._marks.clear()


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
