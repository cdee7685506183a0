"""The README's main command on a small city: it completes, and its summary comes from the running system."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from jsonschema import Draft202012Validator

from deploy.config import Settings
from schemas.published import TOPICS, json_schema
from streams.kafka_io import read_to_end


def test_demo_runs_a_small_city_end_to_end(isolated: Settings) -> None:
    env = {**os.environ, **isolated.to_env(), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "deploy.cli", "demo", "--residents", "400", "--days", "1",
                           "--seed", "5", "--attempts", "500"], env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout.replace("\r", "\n")
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    for line in ("== what came out of the running system ==", "warnings (T1 / T2 / T3)",
                 "transfers stopped: requests to banks", "signal → warning latency p50 / p99",
                 "victims warned before their first loss", "SMS queued / delivered by receipt / failed", "ingested"):
        assert line in out, out[-3000:]
    assert "records/s" in done.stderr or " records" in done.stderr, done.stderr[-2000:]  # the streaming bar
    summary = json.loads((isolated.data_dir / "reports" / "demo-seed-5" / "summary.json").read_text())
    signals = int(summary["signals processed (telecom, payment, domain; worker metrics)"].replace(",", ""))
    city = json.loads((isolated.data_dir / "simulations" / "demo-seed-5" / "city.json").read_text())
    assert signals == sum(v for k, v in city["counts"].items() if k.startswith("signals."))  # metrics = what was fed
    assert summary["dead-lettered"] == "0"
    queued, by_receipt, _ = (int(v.replace(",", "")) for v in summary[
        "SMS queued / delivered by receipt / failed (night ones wait for 08:00)"].split(" / "))
    assert 0 < by_receipt <= queued, summary  # receipts came back through the provider's pull
    stopped = int(summary["transfers stopped: requests to banks (amount)"].split(":")[0])
    answers = summary["banks' answers: held / too late / refused / released (amount held)"].split(" (")[0]
    assert sum(int(n) for n in answers.split(" / ")) == stopped, summary  # the test bank answered each request
    seen, misfits = _against_the_published_schemas(isolated)
    assert not misfits, misfits[:5]
    assert {"warnings", "dispatch.sms", "outcomes", "yujing.decisions"} <= {t for t, n in seen.items() if n}, seen


def _against_the_published_schemas(settings: Settings) -> tuple[Counter[str], list[tuple[str, int, str]]]:
    """Every record on every published topic checked against `yujing schemas`' schema for it: how many per
    topic, and the ones that do not fit (topic, offset, why)."""
    seen: Counter[str] = Counter()
    misfits = []
    for topic in TOPICS:
        validator = Draft202012Validator(json_schema(topic))
        for msg in read_to_end(settings, settings.topic(topic)):
            if msg.value is None:
                continue  # a tombstone (an erasure, a retracted block)
            seen[topic] += 1
            misfits += [(topic, msg.offset, e.message) for e in validator.iter_errors(json.loads(msg.value))][:1]
    return seen, misfits
