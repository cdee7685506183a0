"""The watermark: channel marks, the low watermark, decisions waiting in order, and a marks message read again."""
from __future__ import annotations

from pathlib import Path

import pytest

from schemas.internal import DECIDER, Decision, Output, PersonEvent, RetractionNote, ValueMessage
from schemas.records import Indicator, Progress, TelecomSignal
from schemas.units import HOUR_MS
from streams.person_state import (
    PersonState,
    StatePolicy,
    Update,
    event_key,
    event_time,
    hit_live,
)
from streams.processor import PROGRESS_EVERY_MS, Processor
from streams.value_index import IndexPolicy
from streams.watermarks import (
    Frontier,
    Mark,
    Marks,
    PendingDecisions,
    PendingEntry,
    SourceProgress,
    Topology,
    low_watermark,
    merge,
    pass_on,
)
from tests.integration.scenario import MIN, T
from tests.unit.scorers.test_decide import _pipeline, script_events

TOPOLOGY = Topology(signal_partitions={"signals.telecom": 1, "signals.payment": 1, "signals.domain": 1},
                    indicator_partitions=1, partitions=1)


def test_low_watermark_waits_for_the_slowest_busy_channel_and_for_channels_never_heard_of() -> None:
    f = Frontier()
    merge(f, [Mark("a/0", 100), Mark("b/0", 50)])
    assert low_watermark(f.seen, ["a/0", "b/0"]) == (50, False)
    assert low_watermark(f.seen, ["a/0", "b/0", "c/0"]) == (0, False)  # c has not spoken: it may be earliest
    merge(f, [Mark("b/0", 40)])  # a channel's time never goes back
    assert f.seen["b/0"][0] == 50
    merge(f, [Mark("b/0", 51, idle=True)])
    assert low_watermark(f.seen, ["a/0", "b/0"]) == (100, False)  # an idle channel holds nobody back
    merge(f, [Mark("a/0", 101, idle=True)])
    assert low_watermark(f.seen, ["a/0", "b/0"]) == (101, True)  # all idle: everything they had is in


def test_an_idle_mark_from_a_restarted_worker_still_lets_the_records_at_the_busy_time_through() -> None:
    f = Frontier()
    merge(f, [Mark("a/0", 500), Mark("b/0", 300, idle=True)])  # a's record at 500 is in; a is not quiet yet
    assert low_watermark(f.seen, ["a/0", "b/0"]) == (500, False)  # a decision at 500 waits
    merge(f, [Mark("a/0", 1, idle=True)])  # a's worker restarted: it read nothing more, knows no time
    assert low_watermark(f.seen, ["a/0", "b/0"]) == (501, True)  # so the decision at 500 may go
    merge(f, [Mark("a/0", 1, idle=True)])  # said again: nothing more is in
    assert f.seen["a/0"] == [501, True]
    merge(f, [Mark("a/0", 700), Mark("a/0", 701, idle=True)])  # a normal busy then idle: its own time
    assert f.seen["a/0"] == [701, True]


def test_a_derived_channel_passes_on_its_busy_inputs_and_never_an_idle_ones_time() -> None:
    seen = {"p/0": [500, True], "i/0": [9_000, True]}  # all idle: one input far ahead (the last indicator)
    assert pass_on(seen, ["p/0", "i/0"], previous=400) == (400, True)  # idle, and no claim beyond 400
    seen["p/0"] = [600, False]  # busy again, behind the idle one
    assert pass_on(seen, ["p/0", "i/0"], previous=400) == (600, False)
    assert pass_on(seen, ["p/0", "i/0"], previous=700) == (700, False)  # what was sent is never taken back


def test_source_progress_is_idle_only_when_caught_up_and_quiet() -> None:
    now = [0.0]
    progress = SourceProgress(idle_after_s=0.5, clock=lambda: now[0])
    progress.saw("signals.telecom/0", 1_000, offset=9)
    assert progress.mark("signals.telecom/0", highwater=20) == Mark("signals.telecom/0", 1_000)
    now[0] = 1.0
    assert progress.mark("signals.telecom/0", highwater=20).idle is False  # quiet, but 10 records still unread
    assert progress.mark("signals.telecom/0", highwater=10) == Mark("signals.telecom/0", 1_001, True)
    assert progress.mark("signals.payment/0", highwater=0) == Mark("signals.payment/0", 1, True)  # empty
    assert progress.mark("signals.domain/0", highwater=None).idle is False  # not fetched yet


def test_source_quiet_is_judged_by_a_fetch_sent_the_idle_time_after_the_last_read() -> None:
    mono, wall = [10.0], [1_000.0]  # the wall clock is 990 s ahead here
    progress = SourceProgress(idle_after_s=0.25, clock=lambda: mono[0], wall=lambda: wall[0])
    progress.saw("signals.telecom/0", 1_000, offset=9)  # read at 10.0

    def answered(at: float, highwater: int = 10) -> Mark:  # an answer handled at `at` (this clock), marked at 11
        mono[0], wall[0] = 11.0, 1_001.0
        return progress.mark("signals.telecom/0", highwater=highwater, polled_at=at + 990.0)

    assert answered(9.875).idle is False  # handled before the read
    # a long batch since, but this fetch went out after the answer at 9.875: maybe before the read
    assert answered(10.5).idle is False
    assert answered(10.75, highwater=12).idle is False  # sent after 10.5, but the broker had more
    assert answered(11.0) == Mark("signals.telecom/0", 1_001, True)  # sent after 10.75, nothing new: quiet
    progress.saw("signals.telecom/0", 2_000, offset=10)  # read at 11.0
    assert answered(11.125, highwater=11).idle is False
    assert answered(11.25, highwater=11).idle is False  # sent after 11.125: too soon
    wall[0] = 0.0  # the wall clock steps back: only the answers' ages count
    mono[0] = 11.5
    assert progress.mark("signals.telecom/0", highwater=11, polled_at=-0.25) == Mark("signals.telecom/0", 2_001, True)


def test_source_quiet_without_a_fetch_time_is_judged_on_the_clock() -> None:
    now = [0.0]
    progress = SourceProgress(idle_after_s=0.5, clock=lambda: now[0])
    progress.saw("signals.telecom/0", 1_000, offset=9)
    now[0] = 0.25
    assert progress.mark("signals.telecom/0", highwater=10).idle is False
    now[0] = 0.5
    assert progress.mark("signals.telecom/0", highwater=10).idle is True


def test_a_partition_with_live_producers_stands_at_their_least_word_and_never_goes_idle() -> None:
    now = [0.0]
    progress = SourceProgress(idle_after_s=0.5, clock=lambda: now[0],
                              producers={"signals.telecom": ["gw1", "gw2"]})
    tel = "signals.telecom/0"
    assert progress.progressed(tel, "gw1", 5_000) and progress.progressed(tel, "gw2", 3_000)
    assert not progress.progressed(tel, "gw3", 9_000)  # not listed: its word counts for nothing
    assert progress.live() == {"signals.telecom": 2}
    progress.passed(tel, offset=2)
    assert progress.mark(tel, highwater=3) == Mark(tel, 3_000)  # the least of the producers' words, busy
    progress.saw(tel, 4_000, offset=3)
    # gw1's record says nothing of gw2, which may still write at 3,500
    assert progress.mark(tel, highwater=4) == Mark(tel, 3_000)
    alone = SourceProgress(idle_after_s=0.5, clock=lambda: now[0], producers={"signals.telecom": ["gw1"]})
    assert alone.progressed(tel, "gw1", 3_000)
    alone.saw(tel, 4_000, offset=3)
    assert alone.mark(tel, highwater=4) == Mark(tel, 4_000)  # a sole producer's record is its partition's order
    assert progress.progressed(tel, "gw2", 2_000)
    progress.passed(tel, offset=4)
    assert progress.mark(tel, highwater=5) == Mark(tel, 3_000)  # a producer's word does not go back
    now[0] = 0.4
    assert progress.progressed(tel, "gw1", 6_000)
    progress.passed(tel, offset=5)
    now[0] = 0.75  # gw2 silent for the idle time: a provider that died holds nothing back
    assert progress.mark(tel, highwater=6) == Mark(tel, 6_000) and progress.live() == {"signals.telecom": 1}
    assert progress.mark("signals.payment/0", highwater=0).idle  # a topic without producers: the idle rule
    now[0] = 2.0  # both silent: the partition is judged quiet or not as before
    assert progress.mark(tel, highwater=6) == Mark(tel, 4_001, True)


def test_progress_records_do_not_keep_a_partition_from_going_idle() -> None:
    """Only records make a partition busy: a provider's word, listed or not, moves its offset, not its last read."""
    now = [0.0]
    progress = SourceProgress(idle_after_s=0.5, clock=lambda: now[0], producers={"signals.payment": ["bank"]})
    ind, pay = "intel.indicators/0", "signals.payment/0"
    progress.saw(ind, 1_000, offset=0)
    for i in range(1, 50):  # an unlisted provider's word every 20 ms
        now[0] = i * 0.02
        assert not progress.progressed(ind, "cases", 1_000 + i)
        progress.passed(ind, offset=i)
    assert progress.mark(ind, highwater=50) == Mark(ind, 1_001, True)
    # listed on the payment topic only: its word on the payments says nothing of the telecom partitions
    assert progress.progressed(pay, "bank", 2_000)
    assert progress.mark("signals.telecom/0", highwater=0).idle


def test_a_producer_heard_on_one_partition_is_waited_for_on_the_others() -> None:
    """Every partition quiet and idle, then the provider resumes: its word on one partition reached the broker
    first. The others of the topic wait for theirs instead of passing for idle, so their first records are not
    late."""
    now = [0.0]
    progress = SourceProgress(idle_after_s=0.5, clock=lambda: now[0], producers={"signals.telecom": ["gw1"]})
    tel0, tel1 = "signals.telecom/0", "signals.telecom/1"
    now[0] = 10.0
    assert progress.mark(tel1, highwater=0) == Mark(tel1, 1, True)  # never heard from: idle as before
    assert progress.progressed(tel0, "gw1", 50_000)
    progress.passed(tel0, offset=0)
    assert progress.mark(tel1, highwater=0) == Mark(tel1, 0)  # busy: its word from gw1 is on its way
    assert progress.progressed(tel1, "gw1", 49_000)
    assert progress.mark(tel1, highwater=1) == Mark(tel1, 49_000)
    progress.forget([tel1])
    assert progress.mark(tel1, highwater=1) == Mark(tel1, 0)  # taken up again: waits for the word once more


def test_pending_decisions_come_due_in_event_time_order_and_survive_a_new_index() -> None:
    table: dict[bytes, bytes] = {}
    pending = PendingDecisions(table)
    for ts, person in [(300, "b"), (100, "a"), (200, "c"), (100, "b")]:
        pending.add(0, ts, PendingEntry(PersonEvent(person=person, source="hit")), f"e{ts}")
    pending.add(1, 50, PendingEntry(PersonEvent(person="z", source="hit")), "e50")
    assert [(e.event.person) for _, e in pending.due(0, 201)] == ["a", "b", "c"]
    pending.remove_first(0, len(pending.due(0, 150)))
    again = PendingDecisions(table)  # a restart: the index is read from the table
    assert [e.event.person for _, e in again.due(0, 10**6)] == ["c", "b"] and again.waiting(1) == 1
    # read back with entries taken after their chunk was written (deploy/app/partitioned.py): dropped
    assert again.drop_below(0, 250) == 1 and [e.event.person for _, e in again.due(0, 10**6)] == ["b"]
    assert list(table) == [b"0|%016d|b|e300" % 300, b"1|%016d|z|e50" % 50]


def test_decisions_wait_for_the_marks_and_a_marks_message_read_again_sends_its_decisions_again(
        small_model: Path) -> None:
    p = _pipeline(small_model).processor
    outs = [o for pe in script_events() for o in p.person_event(pe)]
    assert not [o for o in outs if o.topic == "yujing.decisions"] and p.waiting.waiting(0) == 3
    everyone = [Mark(c, T + 40 * MIN) for c in TOPOLOGY.person_inputs]
    first = p.person_marks(0, Marks(marks=everyone), TOPOLOGY, offset=7)  # past the call and app, not the payment
    assert p.waiting.waiting(0) == 1
    done = [Mark(c, T + 2 * 60 * MIN, idle=True) for c in TOPOLOGY.person_inputs]
    second = p.person_marks(0, Marks(marks=done), TOPOLOGY, offset=8)
    decisions = [o.value for o in first + second if isinstance(o.value, Decision)]
    assert decisions and decisions[-1].tier == "T1" and p.waiting.waiting(0) == 0  # type: ignore[attr-defined]
    assert any(isinstance(o.value, Decision) for o in second)  # the payment waited for offset 8's marks
    # the crash case: the table kept what offset 8 decided, the sends were lost; offset 8 comes again
    again = p.person_marks(0, Marks(marks=done), TOPOLOGY, offset=8)
    assert [o.value for o in again] == [o.value for o in second if isinstance(o.value, Decision)]


def test_a_person_partition_tells_dispatch_how_far_its_decisions_are_written_after_them(small_model: Path) -> None:
    # dispatch releases the decisions held for review by it: after every decision below it, on the same partition
    p = _pipeline(small_model).processor
    early = p.person_marks(0, Marks(marks=[Mark(c, 1, idle=True) for c in TOPOLOGY.person_inputs]), TOPOLOGY)
    assert early == []  # idle at no time yet (a worker just started): nothing a progress record could say
    for pe in script_events():
        p.person_event(pe)
    done = [Mark(c, T + 2 * 60 * MIN, idle=True) for c in TOPOLOGY.person_inputs]
    out = p.person_marks(0, Marks(marks=done), TOPOLOGY, offset=8)
    told = Output("yujing.decisions", b"progress:" + DECIDER.encode(),
                  Progress(producer=DECIDER, progress_ts=T + 2 * 60 * MIN), partition=0)
    assert out[-1] == told and all(isinstance(o.value, Decision) for o in out[:-1]) and len(out) > 1
    def at(ts: int, idle: bool = False) -> list[Output]:
        return p.person_marks(0, Marks(marks=[Mark(c, ts, idle) for c in TOPOLOGY.person_inputs]), TOPOLOGY)

    def progress(ts: int) -> list[Output]:
        return [told._replace(value=Progress(producer=DECIDER, progress_ts=ts))]

    busy = T + 2 * 60 * MIN
    assert at(busy + PROGRESS_EVERY_MS - 1) == []  # busy inputs, not a minute on: nothing to tell yet
    assert at(busy + PROGRESS_EVERY_MS) == progress(busy + PROGRESS_EVERY_MS)
    assert at(busy + PROGRESS_EVERY_MS + 5, idle=True) == progress(busy + PROGRESS_EVERY_MS + 5)  # idle: at once
    assert at(busy + PROGRESS_EVERY_MS + 5, idle=True) == []  # nothing new


def test_a_partition_taken_up_passes_its_view_on_once_it_has_read_again_to_where_it_ended(
        small_model: Path) -> None:
    p = _pipeline(small_model).processor
    p.person_marks(0, Marks(marks=[Mark(c, T, idle=True) for c in TOPOLOGY.person_inputs]), TOPOLOGY, offset=3)
    p.frontiers.clear()  # a restart: the frontier is read from the `marks` table again
    busy = Mark("yujing.events/0", 0, False)
    assert p.out_mark("yujing.events", 0, TOPOLOGY) == busy
    p.read_past("yujing.events", 0, offset=4, highwater=lambda: 10)  # the partition ended at offset 9 when taken up
    assert p.out_mark("yujing.events", 0, TOPOLOGY) == busy  # outputs of offsets 5..9 may not be sent yet
    # offset 9 is a data record and no marks come after it (marks go only on change): it is enough
    p.read_past("yujing.events", 0, offset=9, highwater=lambda: 12)
    assert p.out_mark("yujing.events", 0, TOPOLOGY) == Mark("yujing.events/0", 0, True)


def test_a_partitions_mark_moves_only_with_what_it_reads(small_model: Path) -> None:
    p = _pipeline(small_model).processor
    p.read_past("yujing.events", 0, offset=0, highwater=lambda: 1)
    sources = TOPOLOGY.sources
    p.person_marks(0, Marks(marks=[Mark(c, T + i, idle=i == 0) for i, c in enumerate(sources)]), TOPOLOGY, offset=0)
    first = p.out_mark("yujing.events", 0, TOPOLOGY)
    assert first == Mark("yujing.events/0", T + 1, False)  # the least of the busy sources
    assert p.out_mark("yujing.events", 0, TOPOLOGY) == first  # asked again, nothing read: what PassedOn keeps
    p.person_marks(0, Marks(marks=[Mark(c, T + 100) for c in sources]), TOPOLOGY, offset=1)
    assert p.out_mark("yujing.events", 0, TOPOLOGY) == Mark("yujing.events/0", T + 100, False)


def test_the_outbox_keeps_the_decisions_of_marks_messages_not_yet_committed(small_model: Path) -> None:
    p = _pipeline(small_model).processor
    for pe in script_events():
        p.person_event(pe)
    done = [Mark(c, T + 2 * 60 * MIN, idle=True) for c in TOPOLOGY.person_inputs]
    sent = [o for o in p.person_marks(0, Marks(marks=done), TOPOLOGY, offset=8, committed=5)
            if isinstance(o.value, Decision)]
    assert sent and [e[0] for e in p.frontier("yujing.events", 0).outbox] == [8] * len(sent)
    p.person_marks(0, Marks(marks=done), TOPOLOGY, offset=12, committed=8)  # 8 may still be read again
    assert p.frontier("yujing.events", 0).outbox
    p.person_marks(0, Marks(marks=done), TOPOLOGY, offset=13, committed=9)  # committed past 8: it never will
    assert p.frontier("yujing.events", 0).outbox == []


FRAUD = "+8617000001111"


def _indicator(action: str, ts: int) -> Indicator:
    return Indicator(type="phone", value=FRAUD, action=action, fraud_type="impersonate_authority", confidence=0.9,
                     source="case-7", ts=ts)


def _call_from(person: str, event_id: str, ts: int, duration_s: int = 60) -> PersonEvent:
    rec = TelecomSignal(event_id=event_id, ts=ts, kind="call", direction="in", subscriber="+8613800000001",
                        counterpart=FRAUD, duration_s=duration_s)
    return PersonEvent(person=person, source="signals.telecom", telecom=rec)


def test_a_hit_on_its_way_when_the_retraction_is_read_is_voided_before_it_is_decided() -> None:
    """The retraction invariant (streams/watermarks.py), message by message on one partition of each kind.

    Bob calls the number at 2 h; the value partition matches the call before it reads the retraction at 1 h.
    His hit goes first, the notice after it; the person partition decides at 2 h only once the value
    partition's mark has passed 2 h, which it cannot before it has read the retraction: the hit never counts.
    """
    t0, r = T, T + HOUR_MS
    counted: dict[str, list[str]] = {}  # decision (event key) -> the case elements it counted

    def hook(state: PersonState, pe: PersonEvent, update: Update) -> list[Output]:
        now = event_time(pe)
        counted[event_key(pe)] = [h.value_key for h in state.hits if hit_live(h, now)]
        return []

    p = Processor(identity={}, persons={}, values={}, index_policy=IndexPolicy(), state_policy=StatePolicy(),
                  on_person=hook)

    def deliver(outputs: list[Output]) -> list[PersonEvent]:
        """Index the contacts at once; return the person events, for the test to hand over when it says."""
        events = []
        for o in outputs:
            if isinstance(o.value, ValueMessage):
                events += deliver(p.value_message(o.value))
            elif isinstance(o.value, PersonEvent):
                events.append(o.value)
        return events

    def to_persons(events: list[PersonEvent]) -> None:
        for pe in events:
            assert deliver(p.person_event(pe)) == []

    to_persons(deliver(p.person_event(_call_from("alice", "a1", t0 - 5 * HOUR_MS))))
    to_persons(deliver(p.indicator(_indicator("add", t0))))  # Alice's reverse hit, at 0 h
    on_its_way = deliver(p.person_event(_call_from("bob", "b1", t0 + 2 * HOUR_MS)))  # matched: the span is open
    assert [pe.hit.mode for pe in on_its_way if pe.hit] == ["forward"]
    to_persons(on_its_way)

    # The value partition has read the indicator partition only up to 0.5 h: its mark stays there.
    p.read_past("yujing.contacts", 0, 0, lambda: 0)
    p.value_marks(0, Marks(marks=[Mark("yujing.events/0", t0 + 3 * HOUR_MS),
                                  Mark("intel.indicators/0", t0 + HOUR_MS // 2)]))
    value_mark = p.out_mark("yujing.contacts", 0, TOPOLOGY)
    assert value_mark.ts == t0 + HOUR_MS // 2
    others = [Mark(c, t0 + 3 * HOUR_MS) for c in TOPOLOGY.person_inputs if c != value_mark.channel]
    p.person_marks(0, Marks(marks=[*others, value_mark]), TOPOLOGY, offset=1)
    assert counted[f"hit|phone:{FRAUD}|a1|reverse"] == [f"phone:{FRAUD}"]  # before the retraction: it counts
    assert f"hit|phone:{FRAUD}|b1|forward" not in counted  # Bob's hit waits for the value partition

    # It reads the retraction (notices to everyone listed, after Bob's hit), then the marks that follow it.
    notices = deliver(p.value_message(ValueMessage(value_key=f"phone:{FRAUD}", indicator=_indicator("retract", r))))
    assert sorted(pe.person for pe in notices) == ["alice", "bob"]
    p.value_marks(0, Marks(marks=[Mark("intel.indicators/0", t0 + 3 * HOUR_MS)]))
    to_persons(notices)
    to_persons(deliver(p.person_event(_call_from("alice", "a2", t0 + 2 * HOUR_MS, 900))))  # a later, long call
    p.person_marks(0, Marks(marks=[p.out_mark("yujing.contacts", 0, TOPOLOGY)]), TOPOLOGY, offset=2)
    assert counted[f"hit|phone:{FRAUD}|b1|forward"] == []  # voided before it was decided
    assert counted["a2|self"] == [] and counted[f"retraction|phone:{FRAUD}|{t0}|{r}"] == []


def test_a_decision_that_fails_stays_and_its_partition_has_decided_only_up_to_it() -> None:
    """A read-back drops what is below the decided watermark as taken (`drop_taken`): a decision that failed, and
    those after it, must not be below it."""
    def hook(state: PersonState, pe: PersonEvent, update: Update) -> list[Output]:
        if pe.person == "b":
            raise RuntimeError("a bug in the scorer")
        return []

    p = Processor(identity={}, persons={}, values={}, index_policy=IndexPolicy(), state_policy=StatePolicy(),
                  on_person=hook)
    for ts, person in [(100, "a"), (200, "b"), (300, "c")]:
        p.persons[person.encode()] = PersonState(person=person)
        note = RetractionNote(value_key="phone:+861", add_ts=0, end_ts=ts, ts=ts, source="case")
        p.waiting.add(0, ts, PendingEntry(PersonEvent(person=person, source="retraction", retraction=note)),
                      f"e{ts}")
    with pytest.raises(RuntimeError):
        p.decide_until(0, 1_000)
    assert p.frontier("yujing.events", 0).decided == 200 and p.waiting.waiting(0) == 2
    assert p.drop_taken(0) == 0 and p.waiting.waiting(0) == 2  # a read-back keeps b and c


def test_an_erased_persons_waiting_decisions_go_whatever_their_id_holds() -> None:
    """Subject ids may hold `|`: `a` erased leaves `a|b`'s decisions, and `a|b` erased goes itself."""
    waiting = PendingDecisions({})
    for person, ts in (("a", 1), ("a|b", 2), ("a", 3), ("c", 4)):
        waiting.add(0, ts, PendingEntry(PersonEvent(person=person, source="hit")), f"e{ts}")
    assert waiting.remove_person(0, "a") == 2
    assert [e.event.person for _, e in waiting.due(0, 10)] == ["a|b", "c"]
    assert waiting.remove_person(0, "a|b") == 1 and waiting.waiting(0) == 1
