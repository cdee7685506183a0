"""The pipeline in one process, over in-memory tables: replays a simulated city through the agents' own logic.

Used to build training data, to evaluate models and to benchmark, without a broker. Messages between stages
go through a FIFO queue instead of Kafka topics; per key, the order is the same as on a partition.
"""
from __future__ import annotations

from collections import defaultdict, deque

import msgspec

from schemas.decode import decode_input
from schemas.internal import Output, PersonEvent, ValueMessage
from schemas.records import (
    DomainSignal,
    Indicator,
    PaymentSignal,
    Subject,
    TelecomSignal,
    encode,
)
from streams.ingest import person_events
from streams.person_state import StatePolicy
from streams.processor import PersonHook, Processor, person_output
from streams.value_index import IndexPolicy


class LocalPipeline:
    """Feed contract records in; read what the pipeline sent to every non-internal topic."""

    def __init__(self, index_policy: IndexPolicy | None = None, state_policy: StatePolicy | None = None,
                 on_person: PersonHook | None = None) -> None:
        self.processor = Processor(identity={}, persons={}, values={}, index_policy=index_policy or IndexPolicy(),
                                   state_policy=state_policy or StatePolicy(), on_person=on_person)
        self.sent: dict[str, list[Output]] = defaultdict(list)

    def feed(self, topic: str, record: msgspec.Struct) -> None:
        """Process one input record (through the same decode and validation as a Kafka message) to the end.

        Records must come in event-time order, as the city gives them: each one is the watermark of all before
        it, so the decisions on earlier events are taken first (as a live worker takes them), then it is fed.
        """
        rec = decode_input(topic, encode(record))
        if not isinstance(rec, Subject):
            self._drain(self.processor.decide_until(0, rec.ts))
        queue: deque[Output] = deque()
        if isinstance(rec, (TelecomSignal, PaymentSignal, DomainSignal)):
            queue.extend(person_output(pe) for pe in person_events(rec, self.processor.lookup))
        elif isinstance(rec, Subject):
            queue.extend(self.processor.subject(rec))
        elif isinstance(rec, Indicator):
            queue.extend(self.processor.indicator(rec))
        self._drain(list(queue))

    def erase(self, subject_id: str) -> None:
        """A registry tombstone for the subject: the person erased everywhere the pipeline keeps them."""
        self._drain(self.processor.subject_erased(subject_id))

    def finish(self) -> None:
        """The input has ended: take every decision still waiting."""
        self._drain(self.processor.decide_until(0, 2**62))

    def _drain(self, outputs: list[Output]) -> None:
        queue: deque[Output] = deque(outputs)
        while queue:
            out = queue.popleft()
            if out.topic == "yujing.events":
                assert isinstance(out.value, PersonEvent)
                queue.extend(self.processor.person_event(out.value))
            elif out.topic == "yujing.contacts":
                assert isinstance(out.value, ValueMessage)
                queue.extend(self.processor.value_message(out.value))
            else:
                self.sent[out.topic].append(out)
