"""The order in which the worker's consumer hands records on: a hole is fetched again, a real gap accepted once."""
from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from deploy.app.faust_offsets import (
    _next,
    _seek_back,
    fetch_again_from_committed,
    forget,
    in_order,
    never_committed,
    note_dropped,
)


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """What `in_order` uses of faust's consumer: its assignment, seek and gap bookkeeping."""

    def __init__(self, assigned: set[TP]) -> None:
        self.log = logging.getLogger("test")
        self.assigned = assigned
        self.seeks: list[tuple[TP, int]] = []
        self.gaps: list[tuple[TP, int, int]] = []

    def assignment(self) -> set[TP]:
        return self.assigned

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        _next(self)[tp] = offset

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))


def _hand_on(consumer: FakeConsumer, tp: TP, offsets: list[int]) -> list[int]:
    """Offsets of one fetch handed on, as faust's loop does (it records each one handed on)."""
    consumer.__dict__["_yujing_batch"] = consumer.__dict__.get("_yujing_batch", 0) + 1

    async def run() -> list[int]:
        out = []
        for offset in offsets:
            if await in_order(consumer, tp, offset):
                out.append(offset)
                _next(consumer)[tp] = offset + 1
        return out
    return asyncio.run(run())


EVENTS = TP("t.yujing.events", 2)


def test_records_in_order_pass_and_the_first_record_of_a_partition_is_taken_as_it_comes() -> None:
    c = FakeConsumer({EVENTS})
    assert _hand_on(c, EVENTS, [7, 8, 9]) == [7, 8, 9] and c.seeks == [] and c.gaps == []


def test_a_hole_left_by_the_fetcher_is_fetched_again_and_nothing_is_acked_over_it() -> None:
    c = FakeConsumer({EVENTS})
    _next(c)[EVENTS] = 853  # sought to the committed offset
    # the fetcher hands on 867 first (it dropped 853-866): refused with the rest of its fetch, fetched again
    assert _hand_on(c, EVENTS, [867, 868]) == []
    assert c.seeks == [(EVENTS, 853)] and c.gaps == []
    assert _hand_on(c, EVENTS, [853, 854, 855]) == [853, 854, 855]  # then in order


def test_a_gap_the_broker_skips_again_is_real_and_acked_once() -> None:
    c = FakeConsumer({EVENTS})
    _next(c)[EVENTS] = 10
    assert _hand_on(c, EVENTS, [12]) == [] and c.seeks == [(EVENTS, 10)]
    assert _hand_on(c, EVENTS, [12, 13]) == [12, 13]  # a transaction marker at 10-11: no record there
    assert c.gaps == [(EVENTS, 10, 11)]


def test_records_read_again_after_a_seek_back_are_not_handed_on_twice() -> None:
    c = FakeConsumer({EVENTS})
    assert _hand_on(c, EVENTS, [5, 6, 5, 6, 7]) == [5, 6, 7]


def test_changelogs_keep_fausts_own_handling_and_a_revoked_partition_is_not_sought() -> None:
    c = FakeConsumer({EVENTS})
    changelog = TP("yujing-t-persons-changelog", 0)
    _next(c)[changelog] = 3
    assert _hand_on(c, changelog, [9]) == [9]  # compaction leaves gaps there
    revoked = TP("t.yujing.events", 3)
    _next(c)[revoked] = 40
    assert _hand_on(c, revoked, [50]) == [] and c.seeks == []


def test_a_partition_held_at_a_record_never_acknowledged_is_fetched_again_from_its_committed_offset() -> None:
    c = FakeConsumer({EVENTS})
    c._committed_offset = {EVENTS: 2710}
    _hand_on(c, EVENTS, [2710, 2711, 2712])  # 2710 went missing on its way to the agent: the commit is held
    assert fetch_again_from_committed(c, EVENTS) == "never handed on"  # `_hand_on` does not record it as handed
    asyncio.run(_seek_back(c))
    assert c.seeks == [(EVENTS, 2710)]
    assert _hand_on(c, EVENTS, [2710, 2711, 2712]) == [2710, 2711, 2712]  # all again, in order
    asyncio.run(_seek_back(c))
    assert c.seeks == [(EVENTS, 2710)]  # once per request


def test_a_partition_that_comes_back_is_read_from_where_the_other_worker_left_it() -> None:
    """Held up to 500, revoked; the worker that took it committed only 320 before it died. Back here, the records
    from 320 are handed on in order, not taken for records handed on already (nor is 320 sought from 500)."""
    c = FakeConsumer({EVENTS})
    assert _hand_on(c, EVENTS, [498, 499]) == [498, 499]
    forget(c, {EVENTS})
    assert _hand_on(c, EVENTS, [320, 321, 322]) == [320, 321, 322] and c.seeks == []


def test_a_fetch_again_that_skips_to_another_record_does_not_confirm_a_gap() -> None:
    """A hole at 853 (867 came first); the fetch again from 853 brings 868-869: not the same record after the
    hole, so no gap is acked over 853-867; the partition is fetched again, and 853 on is handed on in order."""
    c = FakeConsumer({EVENTS})
    _next(c)[EVENTS] = 853
    assert _hand_on(c, EVENTS, [867]) == []
    assert _hand_on(c, EVENTS, [868, 869]) == []
    assert c.gaps == [] and c.seeks == [(EVENTS, 853), (EVENTS, 853)]
    assert _hand_on(c, EVENTS, [853, 854]) == [853, 854]


def test_a_hole_over_records_faust_dropped_is_never_taken_for_a_gap() -> None:
    """faust drops 853-866 of a paused partition twice in a row, each time handing on 867 first: the same record
    after the same hole, yet no gap, because faust dropped them itself; fetched again until 853 comes."""
    c = FakeConsumer({EVENTS})
    _next(c)[EVENTS] = 853
    for _ in range(2):
        note_dropped(c, {EVENTS: list(range(853, 868))}, {})
        assert _hand_on(c, EVENTS, [867]) == []
    assert c.gaps == [] and c.seeks == [(EVENTS, 853), (EVENTS, 853)]
    assert _hand_on(c, EVENTS, [853, 854]) == [853, 854]


def test_the_records_faust_dropped_are_counted_from_the_first_not_handed_on() -> None:
    c = FakeConsumer({EVENTS})
    note_dropped(c, {EVENTS: [10, 11, 12], TP("t.signals.domain", 0): [4, 5]}, {EVENTS: 11})
    assert c.__dict__["_yujing_dropped"] == {EVENTS: 12, TP("t.signals.domain", 0): 4}


def test_a_partition_fetched_again_and_again_from_one_offset_is_logged_as_stuck(caplog) -> None:
    """The broker never gives the record after the hole twice in a row (it moves on each time): no gap is ever
    acked, and from the fifth round on it is an error in the log, not a warning."""
    c = FakeConsumer({EVENTS})
    _next(c)[EVENTS] = 100
    with caplog.at_level(logging.WARNING, logger="test"):
        for first in range(110, 116):
            assert _hand_on(c, EVENTS, [first]) == []
    assert c.gaps == [] and len(c.seeks) == 6
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 4 + ["ERROR"] * 2


def test_partitions_without_a_committed_offset_to_seek_to_are_the_stream_partitions_at_none_or_zero() -> None:
    changelog = TP("yujing-t-persons-changelog", 0)
    committed = {EVENTS: None, TP("t.yujing.events", 3): 0, TP("t.outcomes", 1): 12, changelog: None}
    assert never_committed(committed) == [EVENTS, TP("t.yujing.events", 3)]
