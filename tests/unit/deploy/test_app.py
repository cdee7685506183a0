"""The worker app's parts without a broker: the agent loop (retry, dead letters, hooks) and the marks it sends."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec
import pytest
import redis.exceptions as redis_errors
from faust.exceptions import ProducerSendError

from deploy.app.agent_loop import AgentLoop, until_broker_takes, until_redis_answers
from deploy.app.marks import MarkDeduper, PassedOn, owned_marks
from deploy.app.options import faust_overrides
from schemas.decode import InvalidRecord
from schemas.internal import Output
from schemas.records import DeadLetter
from streams.watermarks import Mark, SourceProgress, Topology


@dataclass
class Msg:
    partition: int = 3
    offset: int = 41
    timestamp: float | None = 1_764_547_200.0
    topic: str = "signals.telecom"

    @property
    def tp(self) -> tuple[str, int]:
        return self.topic, self.partition


@dataclass
class Event:
    key: bytes | None = b"k"
    value: bytes | None = b"{}"
    message: Msg = field(default_factory=Msg)


def run_loop(handler: Any) -> tuple[list[Output], list[str]]:
    sent: list[Output] = []
    heard: list[str] = []

    async def send(outputs: list[Output], origin: float | None) -> None:
        sent.extend(outputs)

    loop = AgentLoop("signals.telecom", handler, send, counted=lambda e: heard.append("counted"),
                     sent=lambda msg, outs: heard.append(f"sent {len(outs)}"),
                     observed=lambda outs, origin: heard.append(f"observed {origin}"),
                     on_redis_retry=lambda: heard.append("retry"))
    asyncio.run(loop.one(Event()))
    return sent, heard


def test_a_refused_record_becomes_its_dead_letter_and_the_hooks_still_run() -> None:
    def refuse(event: Any) -> list[Output]:
        raise InvalidRecord("not a phone number", "subscriber")

    sent, heard = run_loop(refuse)
    (dead,) = sent
    assert dead.topic == "deadletter" and isinstance(dead.value, DeadLetter)
    assert (dead.value.partition, dead.value.offset, dead.value.field) == (3, 41, "subscriber")
    assert dead.value.kafka_ts == 1_764_547_200_000
    assert heard == ["counted", "sent 1", "observed 1764547200.0"]


def test_a_bug_on_one_record_dead_letters_it_with_the_error() -> None:
    sent, _ = run_loop(lambda event: 1 / 0)
    assert sent[0].value.reason.startswith("internal error: ZeroDivisionError")


def test_redis_away_is_waited_for_with_backoff_not_dead_lettered() -> None:
    calls: list[int] = []
    log: list[float] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise redis_errors.ConnectionError("away")
        return "answered"

    async def sleep(seconds: float) -> None:
        log.append(seconds)

    result = asyncio.run(until_redis_answers("test", flaky, lambda: log.append(-1), sleep, first_delay=0.1,
                                             max_delay=0.3))
    assert result == "answered" and len(calls) == 4
    assert log == [-1, 0.1, -1, 0.2, -1, 0.3]  # each retry counted, the wait doubling up to its bound


class FakeStream:
    """A faust stream as the agent loop uses it: manual acknowledgement, then events."""

    def __init__(self, events: list[Any]) -> None:
        self._events = events
        self.acks_enabled = True
        self.acked: list[int] = []

    def noack(self) -> "FakeStream":
        self.acks_enabled = False
        return self

    async def events(self) -> Any:
        for event in self._events:
            event.ack = lambda offset=event.message.offset: self.acked.append(offset)
            try:
                yield event
            finally:
                if self.acks_enabled:  # faust acknowledges when the body moves on, whatever made it
                    event.ack()


def test_a_record_is_acknowledged_once_its_outputs_are_sent_never_when_its_send_failed() -> None:
    async def send(outputs: list[Output], origin: float | None) -> None:
        if outputs[0].key == b"fails":
            raise RuntimeError("the producer is gone")

    events = [Event(key=b"a", message=Msg(offset=1)), Event(key=b"fails", message=Msg(offset=2)),
              Event(key=b"b", message=Msg(offset=3))]
    stream = FakeStream(events)
    loop = AgentLoop("signals.telecom", lambda event: [Output("yujing.events", event.key, b"")], send)
    try:
        asyncio.run(loop(stream))
    except RuntimeError:
        pass
    assert stream.acked == [1]  # not 2: faust would have acknowledged it, and the commit passed it


def test_a_send_the_producer_refuses_is_tried_again() -> None:
    tries: list[int] = []
    waits: list[float] = []

    async def send() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ProducerSendError("KafkaTimeoutError")
        return "taken"

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    assert asyncio.run(until_broker_takes("yujing.events", send, sleep)) == "taken"
    assert waits == [0.1, 0.2]


class Tp:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


class Derived:
    def out_mark(self, topic: str, partition: int, topology: Topology) -> Mark:
        return Mark(f"{topic}/{partition}", 500)


def test_each_channel_held_sends_its_mark_where_its_records_go() -> None:
    topology = Topology({"signals.telecom": 1, "signals.payment": 1, "signals.domain": 1}, 1, 2)
    progress = SourceProgress(clock=lambda: 100.0)
    progress.saw("signals.telecom/0", 700, 9)
    logical_of = {f"x-{t}": t for t in ("signals.telecom", "intel.indicators", "yujing.events", "yujing.contacts")}
    held = [Tp("x-signals.telecom", 0), Tp("x-intel.indicators", 0), Tp("x-yujing.events", 1),
            Tp("x-yujing.contacts", 0), Tp("x-outcomes", 0)]
    marks = owned_marks(held, logical_of, progress, Derived(), topology, highwater=lambda tp: 20,
                        committed=lambda tp: None)
    assert [m.channel for m in marks["yujing.events"]] == ["signals.telecom/0", "intel.indicators/0",
                                                          "yujing.events/1", "yujing.contacts/0"]
    assert [m.channel for m in marks["yujing.contacts"]] == ["intel.indicators/0", "yujing.events/1"]
    assert marks["yujing.events"][0] == Mark("signals.telecom/0", 700, False)  # read to 10 of 20: busy


def test_a_source_is_idle_by_the_fetch_times_the_reader_gives() -> None:
    clock = [100.0]
    progress = SourceProgress(idle_after_s=0.25, clock=lambda: clock[0], wall=lambda: clock[0])
    progress.saw("signals.telecom/0", 700, 9)  # read at 100
    clock[0] = 101.0

    def mark(polled: float) -> Mark:
        return owned_marks([Tp("x-signals.telecom", 0)], {"x-signals.telecom": "signals.telecom"}, progress,
                           Derived(), Topology({"signals.telecom": 1}, 1, 1), highwater=lambda tp: 10,
                           committed=lambda tp: None, polled_at=lambda tp: polled)["yujing.events"][0]

    assert mark(100.5).idle is False  # the first answer seen: when its fetch went out is not known
    assert mark(100.75) == Mark("signals.telecom/0", 701, True)  # sent after 100.5: a quarter second after the read


def test_a_derived_partition_is_asked_for_its_mark_again_only_once_its_records_are_read() -> None:
    class Moving:  # a processor whose views move under the cache
        ts, asked = 500, 0

        def out_mark(self, topic: str, partition: int, topology: Topology) -> Mark:
            self.asked += 1
            return Mark(f"{topic}/{partition}", self.ts)

    derived, topology = Moving(), Topology({"signals.telecom": 1}, 1, 2)
    passed_on = PassedOn(derived)
    assert passed_on.out_mark("yujing.events", 1, topology) == Mark("yujing.events/1", 500)
    derived.ts = 600
    passed_on.read("yujing.events", 0)  # another partition's records
    passed_on.read("yujing.contacts", 1)
    assert passed_on.out_mark("yujing.events", 1, topology) == Mark("yujing.events/1", 500)
    assert derived.asked == 1
    passed_on.read("yujing.events", 1)
    assert passed_on.out_mark("yujing.events", 1, topology) == Mark("yujing.events/1", 600)
    derived.ts = 700
    passed_on.forget()  # partitions moved
    assert passed_on.out_mark("yujing.events", 1, topology) == Mark("yujing.events/1", 700)
    assert derived.asked == 3


def test_only_changed_marks_go_again_and_all_after_a_move() -> None:
    dedupe = MarkDeduper()
    a, b = Mark("s/0", 1), Mark("s/1", 1)
    assert dedupe.fresh("yujing.events", [a, b]) == [a, b]
    assert dedupe.fresh("yujing.events", [a, b]) == [a, b]  # not sent yet (a failed send): still fresh
    dedupe.sent("yujing.events", [a, b])
    assert dedupe.fresh("yujing.events", [a, Mark("s/1", 2)]) == [Mark("s/1", 2)]
    assert dedupe.fresh("yujing.contacts", [a]) == [a]
    dedupe.forget()
    assert dedupe.fresh("yujing.events", [a]) == [a]
    assert msgspec.json.encode(a)  # marks go over the wire as they are


@dataclass
class Acked:
    key: bytes
    n: int
    value: bytes | None = b"{}"
    message: Msg = field(default_factory=Msg)
    acked: bool = False
    log: list[str] | None = None

    def ack(self) -> None:
        self.acked = True
        if self.log is not None:
            self.log.append(f"ack {self.key.decode()}{self.n}")


def run_by_key(events: list[Acked], parallel: int, stop_after: float | None = None,
               barrier: Callable[[Any], bool] = lambda event: False) -> list[str]:
    """Events through `AgentLoop.by_key` with a handler that waits (a Redis round trip); the order handled."""
    log: list[str] = []
    for event in events:
        event.log = log

    async def handler(event: Acked) -> list[Output]:
        log.append(f"start {event.key.decode()}{event.n}")
        await asyncio.sleep(0.01 * (3 - event.n % 3))  # later ones of a key finish sooner, unless kept in order
        log.append(f"end {event.key.decode()}{event.n}")
        return []

    async def send(outputs: list[Output], origin: float | None) -> None:
        pass

    async def source() -> Any:
        for event in events:
            yield event

    async def main() -> None:
        loop = AgentLoop("yujing.decisions", handler, send, parallel=parallel, barrier=barrier)
        run = asyncio.create_task(loop.by_key(source()))
        if stop_after is None:
            await run
        else:
            await asyncio.sleep(stop_after)
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await asyncio.sleep(0.05)  # long enough for the handlers to end, had they not been stopped

    asyncio.run(main())
    return log


def test_events_of_one_key_are_handled_in_order_and_other_keys_meanwhile() -> None:
    events = [Acked(k, n) for n in range(3) for k in (b"a", b"b")]
    log = run_by_key(events, parallel=8)
    for key in "ab":
        mine = [line for line in log if line.endswith(tuple(f"{key}{n}" for n in range(3)))
                and not line.startswith("ack")]
        assert mine == [f"{step} {key}{n}" for n in range(3) for step in ("start", "end")]
    assert log[:2] == ["start a0", "start b0"]  # b did not wait for a
    # acknowledged in the order they came, each once handled (faust commits the acknowledged run)
    assert [line for line in log if line.startswith("ack")] == [f"ack {k}{n}" for n in range(3) for k in "ab"]
    assert all(log.index(f"end {k}{n}") < log.index(f"ack {k}{n}") for n in range(3) for k in "ab")


def test_no_more_than_parallel_events_are_in_progress() -> None:
    log = run_by_key([Acked(bytes([97 + i]), 0) for i in range(6)], parallel=2)
    in_progress = peak = 0
    for line in log:
        if line.startswith("ack"):
            continue
        in_progress += 1 if line.startswith("start") else -1
        peak = max(peak, in_progress)
    assert peak == 2 and len(log) == 18


def test_an_event_in_progress_when_the_agent_stops_is_not_acknowledged() -> None:
    events = [Acked(b"a", 0), Acked(b"b", 0)]
    log = run_by_key(events, parallel=8, stop_after=0.005)
    assert log == ["start a0", "start b0"]
    assert not any(event.acked for event in events)


def test_an_event_handled_early_waits_for_those_before_it_to_be_acknowledged() -> None:
    events = [Acked(b"a", 0), Acked(b"b", 2)]  # b's handler is the quicker one
    log = run_by_key(events, parallel=8)
    assert log == ["start a0", "start b2", "end b2", "end a0", "ack a0", "ack b2"]


def test_a_barrier_waits_for_its_partition_before_it_and_its_partition_after_it_waits_for_it() -> None:
    # the decider's progress: the held decisions it releases go out after the decisions below it, before those after
    events = [Acked(b"a", 0), Acked(b"b", 1), Acked(b"z", 2), Acked(b"c", 2), Acked(b"d", 2, message=Msg(partition=1))]
    log = [line for line in run_by_key(events, parallel=8, barrier=lambda e: e.key == b"z") if line[0] != "a"]
    assert log.index("start z2") > max(log.index("end a0"), log.index("end b1"))  # all before it in partition 0
    assert log.index("start c2") > log.index("end z2")  # after it in partition 0, another key
    assert log.index("start d2") < log.index("end a0")  # partition 1 goes on


def test_an_event_handled_early_in_another_partition_is_acknowledged_at_once() -> None:
    events = [Acked(b"a", 0), Acked(b"b", 2, message=Msg(partition=1))]  # b's is quicker, in its own partition
    log = run_by_key(events, parallel=8)
    assert log == ["start a0", "start b2", "end b2", "ack b2", "end a0", "ack a0"]


def test_a_failure_to_send_fails_the_agent_also_when_it_waits_for_a_slot_or_an_event() -> None:
    async def handler(event: Acked) -> list[Output]:
        return [Output("warnings", event.key, b"")]

    async def send(outputs: list[Output], origin: float | None) -> None:
        raise RuntimeError("the producer is gone")

    async def quiet() -> Any:
        yield Acked(b"a", 0)
        await asyncio.Event().wait()  # no event comes after it

    async def full() -> Any:
        for i in range(5):
            yield Acked(bytes([97 + i]), 0)

    async def run(source: Any, parallel: int) -> BaseException | None:
        task = asyncio.create_task(AgentLoop("yujing.decisions", handler, send, parallel=parallel).by_key(source))
        await asyncio.sleep(0.5)
        if not task.done():  # hangs: what a stop would find
            task.cancel()
            return None
        return task.exception()

    for source, parallel in ((quiet(), 8), (full(), 1)):
        failure = asyncio.run(run(source, parallel))
        assert isinstance(failure, RuntimeError) and str(failure) == "the producer is gone"


def test_faust_options_may_not_open_faust_own_pages() -> None:
    assert faust_overrides({"YUJING_FAUST_OPTIONS": '{"producer_linger_ms": 5, "web_tables_enabled": false}'}) == {
        "producer_linger_ms": 5, "web_tables_enabled": False}
    with pytest.raises(SystemExit, match="web_router_enabled, web_tables_enabled"):
        faust_overrides({"YUJING_FAUST_OPTIONS": '{"web_tables_enabled": true, "web_router_enabled": true}'})
