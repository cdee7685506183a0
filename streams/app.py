"""The Faust app: thin agents that decode, call the pure stages, and send."""
from __future__ import annotations

import logging
from typing import Any, Callable

import faust

from deploy.config import SIGNAL_TOPICS, Settings
from schemas.deadletter import dead_letter
from schemas.records import encode
from streams.ingest import IngestResult, RawMessage, ingest

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to the settings' broker, data folder and topics, with every agent registered."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        store="rocksdb://",
        datadir=str(settings.data_dir / "faust"),
        web_bind="127.0.0.1",
        web_port=settings.web_port,
        web_host="127.0.0.1",
        topic_partitions=settings.partitions,
        producer_acks=-1,  # acks=all: an effect is not sent until the broker has it
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    deadletter = app.topic(settings.topic("deadletter"), **raw)
    events = app.topic(settings.topic("yujing.events"), **raw)
    for logical in SIGNAL_TOPICS:
        source = app.topic(settings.topic(logical), **raw)
        app.agent(source, name=f"ingest-{logical}")(_ingest_agent(logical, deadletter, events))
    return app


def _ingest_agent(logical: str, deadletter: faust.TopicT, events: faust.TopicT) -> Callable[[Any], Any]:
    async def ingest_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            kafka_ts = int(msg.timestamp * 1000) if msg.timestamp else None
            raw = RawMessage(logical, msg.partition, msg.offset, event.key, event.value, kafka_ts)
            try:
                result = ingest(raw)
            except Exception as exc:  # a bug on one record must not stop the stream: dead-letter it
                log.exception("ingest failed on %s[%s]@%s", logical, msg.partition, msg.offset)
                result = IngestResult(dead=dead_letter(logical, msg.partition, msg.offset, event.key,
                                                       event.value, f"internal error: {type(exc).__name__}",
                                                       kafka_ts=kafka_ts))
            if result.dead is not None:
                await deadletter.send(key=event.key, value=encode(result.dead))
            for person_event in result.events:
                await events.send(key=person_event.person.encode(), value=encode(person_event))

    ingest_agent.__name__ = f"ingest_{logical.replace('.', '_')}"
    return ingest_agent


def run_worker(settings: Settings, faust_args: list[str]) -> None:
    """Run a Faust worker of the app; extra arguments pass through to faust's `worker` command."""
    import sys

    app = create_app(settings)
    args = list(faust_args)
    if not any(a.startswith(("-l", "--loglevel")) for a in args):
        args = ["--loglevel", "info", *args]
    sys.argv = ["yujing", "worker", "--web-port", str(settings.web_port), "--web-bind", "127.0.0.1", *args]
    app.main()
