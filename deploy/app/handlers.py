"""What each agent does with one record: decode it, call the pure stage (streams/, dispatch/), return the outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import msgspec

from dispatch.stage import Dispatcher
from ops.board import OpsBoard
from ops.metrics import PipelineMetrics
from schemas.decode import decode_input
from schemas.internal import Decision, Output, PersonEvent, ValueMessage
from schemas.records import FraudWarning
from streams.identity import decode_profile, subject_key
from streams.ingest import RawMessage, ingest
from streams.processor import Processor, person_output, progress_ts
from streams.watermarks import MARKS_KEY, Marks, SourceProgress, Topology

_person_decoder = msgspec.json.Decoder(PersonEvent)
_value_msg_decoder = msgspec.json.Decoder(ValueMessage)
_decision_decoder = msgspec.json.Decoder(Decision)
_marks_decoder = msgspec.json.Decoder(Marks)


@dataclass
class Handlers:
    """The per-record handlers of the worker's agents, over the parts they share."""

    processor: Processor
    channels: Topology
    progress: SourceProgress
    metrics: PipelineMetrics
    highwater: Callable[[Any], int | None]  # a partition's end offset now (None: not fetched yet)
    committed: Callable[[Any], int | None]  # its committed offset (None before the first commit)
    dispatcher: Dispatcher | None = None

    def ingest(self, logical: str) -> Callable[[Any], list[Output]]:
        """A signal topic's handler: validate and normalise, resolve the person, forward (or dead-letter)."""
        def handle(event: Any) -> list[Output]:
            msg = event.message
            kafka_ts = int(msg.timestamp * 1000) if msg.timestamp else None
            result = ingest(RawMessage(logical, msg.partition, msg.offset, event.key, event.value, kafka_ts),
                            self.processor.lookup)
            if result.dead is not None:
                return [Output("deadletter", event.key or b"", result.dead)]
            return [person_output(pe) for pe in result.events]
        return handle

    def registry(self, event: Any) -> list[Output]:
        """A registry record: the identity table."""
        return self.processor.subject(decode_input("registry.subjects", event.value))

    def indicator(self, event: Any) -> list[Output]:
        """An indicator change: to its value's partition, with the blocks and controls it asks for."""
        return self.processor.indicator(decode_input("intel.indicators", event.value))

    def person(self, event: Any) -> list[Output]:
        """A person event (fold, index, trigger) or a marks message (decide what the watermark lets through)."""
        msg = event.message
        if event.key == MARKS_KEY:
            out = self.processor.person_marks(msg.partition, _marks_decoder.decode(event.value), self.channels,
                                              msg.offset, self.committed(msg.tp))
            self.metrics.decisions_waiting.labels(str(msg.partition)).set(self.processor.waiting.waiting(msg.partition))
            return out
        return self.processor.person_event(_person_decoder.decode(event.value), msg.partition, msg.timestamp or None)

    def value(self, event: Any) -> list[Output]:
        """A contact or indicator for one value (index, match, mine back), or a marks message (remembered)."""
        if event.key == MARKS_KEY:
            msg = event.message
            self.processor.value_marks(msg.partition, _marks_decoder.decode(event.value), msg.offset)
            return []
        return self.processor.value_message(_value_msg_decoder.decode(event.value))

    async def decision(self, event: Any) -> list[Output]:
        """A decision to dispatch: stop-payment, route, cooldown, warning and tasks."""
        assert self.dispatcher is not None
        return await self.dispatcher.handle(_decision_decoder.decode(event.value))

    async def outcome(self, event: Any) -> list[Output]:
        """An outcome reported back: counted, and answered in escalation (done, or escalate now)."""
        assert self.dispatcher is not None
        outcome = decode_input("outcomes", event.value)
        self.metrics.outcomes.labels(outcome.channel, outcome.outcome).inc()
        if outcome.amount_saved_fen:
            self.metrics.saved_fen.inc(outcome.amount_saved_fen)
        return await self.dispatcher.handle_outcome(outcome)

    def source_read(self, logical: str) -> Callable[[Any, list[Output]], None]:
        """After a source record's outputs are sent: its channel has got this far."""
        return lambda msg, outputs: self.progress.saw(f"{logical}/{msg.partition}", progress_ts(outputs), msg.offset)

    def derived_read(self, logical: str) -> Callable[[Any, list[Output]], None]:
        """After a person or value record's outputs are sent: maybe its partition has caught up."""
        # the end offset is looked up only while the partition catches up, not on every record
        return lambda msg, _: self.processor.read_past(logical, msg.partition, msg.offset,
                                                       lambda: self.highwater(msg.tp))


async def show_on_board(board: OpsBoard, lookup: Callable[[str], str | None], outputs: list[Output]) -> None:
    """Put warnings (with the person's profile) and interceptions on the console's board."""
    for out in outputs:
        if isinstance(out.value, FraudWarning):
            await board.record_warning(out.value, decode_profile(lookup(subject_key(out.value.subject_id))))
        elif out.topic.startswith("interception."):
            await board.record_interception(out.topic, out.value)
