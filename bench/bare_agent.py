"""The bare Faust reference for bench.throughput: one agent on the signal topics that decodes and forwards.

Run by the benchmark as `python -m bench.bare_agent worker`, with the same settings (env) as the pipeline.
"""
from __future__ import annotations

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


@app.agent(source)
async def forward(stream: faust.StreamT) -> None:
    """Decode each record (as any JSON) and send it on, keyed as it came."""
    async for event in stream.events():
        decoder.decode(event.value)
        await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--web-port", str(settings.web_port),
                "--web-bind", "127.0.0.1"]
    app.main()
