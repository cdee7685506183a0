"""The bare Faust reference for bench.throughput: one agent on the signal topics that decodes and forwards.

Run by the benchmark as `python -m bench.bare_agent`, with the same settings (env) as the pipeline. With
`BENCH_TAKE=N` the agent takes up to N records at a time (`stream.take`, within 50 ms) and forwards each batch as
one message: what is left then is faust's per-message consume path alone, the ceiling of any Faust agent.
"""
from __future__ import annotations

import os
import sys

import faust
import msgspec

from deploy.app.options import faust_overrides
from deploy.config import load_settings
from schemas.topics import SIGNAL_TOPICS

settings = load_settings()
settings.data_dir.mkdir(parents=True, exist_ok=True)
app = faust.App(f"{settings.app_id}-bare", **({
    "broker": settings.kafka_url, "web_bind": "127.0.0.1", "web_port": settings.web_port, "producer_acks": -1,
    "consumer_auto_offset_reset": "earliest", "topic_partitions": settings.partitions,
    "datadir": str(settings.data_dir / "faust-bare")} | faust_overrides()))  # the pipeline's tuning, if any
source = app.topic(*(settings.topic(t) for t in SIGNAL_TOPICS), key_serializer="raw", value_serializer="raw")
sink = app.topic(settings.topic("bench.forwarded"), key_serializer="raw", value_serializer="raw")
decoder = msgspec.json.Decoder()
TAKE = int(os.environ.get("BENCH_TAKE", "0"))


async def forward(stream: faust.StreamT) -> None:
    """Decode each record (as any JSON) and send it on, keyed as it came."""
    async for event in stream.events():
        decoder.decode(event.value)
        await sink.send(key=event.key, value=event.value)


async def forward_batches(stream: faust.StreamT) -> None:
    """Decode each record and send each batch on as one message (a JSON array of the records)."""
    async for values in stream.take(TAKE, within=0.05):
        for value in values:
            decoder.decode(value)
        await sink.send(key=None, value=b"[" + b",".join(values) + b"]")


app.agent(source, name="forward")(forward_batches if TAKE else forward)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--web-port", str(settings.web_port),
                "--web-bind", "127.0.0.1"]
    app.main()
