"""What each stage does with one record: decode it, call the pure stage (streams/, dispatch/), return the outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import msgspec

from dispatch.stage import Dispatcher
from ops.board import OpsBoard
from ops.metrics import PipelineMetrics
from schemas.decode import InvalidRecord, decode_input, decode_progress, tombstone_subject
from schemas.internal import Decision, Output, PersonEvent
from schemas.records import FraudWarning, is_progress, progress_key
from streams.envelope import EventBatch
from streams.identity import decode_profile, subject_key
from streams.ingest import RawMessage, ingest, refuse_far_ahead
from streams.processor import Processor, person_output
from streams.watermarks import SourceProgress, Topology

_decision_decoder = msgspec.json.Decoder(Decision)


def _kafka_ms(msg: Any) -> int | None:
    """A message's Kafka timestamp in ms (the handlers' events carry seconds), None when it has none."""
    return int(msg.timestamp * 1000) if msg.timestamp else None


@dataclass
class Handlers:
    """The per-record handlers of the worker's stages, over the parts they share."""

    processor: Processor
    channels: Topology
    progress: SourceProgress
    metrics: PipelineMetrics
    dispatcher: Dispatcher | None = None
    board: OpsBoard | None = None  # the console's: banks' answers settle the stop-payments on it
    # the latest event time accepted from outside: the wall clock plus the allowed skew (None: no bound, in tests)
    latest_ms: Callable[[], int | None] = lambda: None

    def ingest(self, logical: str) -> Callable[[Any], list[Output]]:
        """A signal topic's handler: validate and normalise, resolve the person, forward (or dead-letter)."""
        def handle(event: Any) -> list[Output]:
            msg = event.message
            kafka_ts = _kafka_ms(msg)
            result = ingest(RawMessage(logical, msg.partition, msg.offset, event.key, event.value, kafka_ts),
                            self.processor.lookup, self.latest_ms())
            if result.dead is not None:
                return [Output("deadletter", event.key or b"", result.dead)]
            return [person_output(pe) for pe in result.events]
        return handle

    def provider_progress(self, logical: str) -> Callable[[Any], list[Output]]:
        """A provider's progress record (`schemas.records.Progress`): how far its partition has got; sends nothing."""
        def handle(event: Any) -> list[Output]:
            progress = decode_progress(event.value)
            if event.key != progress_key(progress.producer):
                raise InvalidRecord(f"a progress record keyed {event.key!r} names another producer", "producer")
            msg = event.message
            refuse_far_ahead(progress.progress_ts, _kafka_ms(msg), "progress_ts", self.latest_ms())
            counts = self.progress.progressed(f"{logical}/{msg.partition}", progress.producer, progress.progress_ts)
            self.metrics.progress_records.labels(logical, "yes" if counts else "no").inc()
            return []
        return handle

    async def registry(self, event: Any) -> list[Output]:
        """A registry record: the identity table. A tombstone erases the person: Redis first (a step that can be
        run again), then the identity table, then their partition and every value partition hear of it."""
        if event.value is None:
            subject_id = tombstone_subject(event.key)
            if self.dispatcher is not None:
                await self.dispatcher.erase(subject_id)
            return [Output(o.topic, o.key, EventBatch([o.value], [None])) if isinstance(o.value, PersonEvent) else o
                    for o in self.processor.subject_erased(subject_id)]
        subject = decode_input("registry.subjects", event.value)
        refuse_far_ahead(subject.ts, _kafka_ms(event.message), latest_ms=self.latest_ms())
        if self.dispatcher is not None:
            await self.dispatcher.registered(subject.subject_id)
        return self.processor.subject(subject)

    def indicator(self, event: Any) -> list[Output]:
        """An indicator change: to its value's partition, with the blocks and controls it asks for."""
        indicator = decode_input("intel.indicators", event.value)
        refuse_far_ahead(indicator.ts, _kafka_ms(event.message), latest_ms=self.latest_ms())
        return self.processor.indicator(indicator)

    async def decision(self, event: Any) -> list[Output]:
        """A decision to dispatch (stop-payment, route, cooldown, warning and tasks), or the decider's progress on
        its partition (the decisions held for review that it passed go out)."""
        assert self.dispatcher is not None
        if is_progress(event.key):
            progress = decode_progress(event.value)
            return await self.dispatcher.progressed(event.message.partition, progress.progress_ts)
        return await self.dispatcher.handle(_decision_decoder.decode(event.value), event.message.partition)

    async def bank_reply(self, event: Any) -> list[Output]:
        """A bank's answer to a stop-payment: shown on the request in the console, and counted once (a repeated or
        older answer is not; the amount held once per request)."""
        reply = decode_input("interception.replies", event.value)
        refuse_far_ahead(reply.ts, _kafka_ms(event.message), latest_ms=self.latest_ms())  # the latest answer wins
        state, before = (await self.board.settle_stop_payment(reply)) if self.board is not None else (0, "")
        if state == 1:
            return []
        self.metrics.bank_replies.labels(reply.reply).inc()
        if reply.reply == "held" and reply.held_fen and before != "held":  # (not on the board: counted as told)
            self.metrics.held_fen.inc(reply.held_fen)
        return []

    async def assessment(self, event: Any) -> list[Output]:
        """An analyst's word on a held decision: dispatched, dismissed or raised (once, whoever comes first)."""
        assert self.dispatcher is not None
        return await self.dispatcher.handle_assessment(decode_input("yujing.assessments", event.value))

    async def outcome(self, event: Any) -> list[Output]:
        """An outcome reported back: counted, and answered in escalation (done, or escalate now)."""
        assert self.dispatcher is not None
        outcome = decode_input("outcomes", event.value)
        refuse_far_ahead(outcome.ts, _kafka_ms(event.message), latest_ms=self.latest_ms())  # the escalation clock
        self.metrics.outcomes.labels(outcome.channel, outcome.outcome).inc()
        if outcome.amount_saved_fen:
            self.metrics.saved_fen.inc(outcome.amount_saved_fen)
        return await self.dispatcher.handle_outcome(outcome)


async def show_on_board(board: OpsBoard, lookup: Callable[[str], str | None], outputs: list[Output]) -> None:
    """Put warnings (with the person's profile) and interceptions on the console's board."""
    for out in outputs:
        if isinstance(out.value, FraudWarning):
            await board.record_warning(out.value, decode_profile(lookup(subject_key(out.value.subject_id))))
        elif out.topic.startswith("interception."):
            await board.record_interception(out.topic, out.value)
