"""`yujing demo`: the main job; starts the stack and the pipeline and streams a sample through them."""
from __future__ import annotations

import json
import random
import time

from deploy import stack
from deploy.config import Settings
from deploy.kafka_io import consume, end_offsets, produce
from deploy.topics import create_topics
from deploy.workers import WorkerProcess

BASE_TS = 1_764_547_200_000  # 2025-12-01 00:00 +08:00 in UTC ms; the sample's event time starts here


def sample_signals(seed: int, n: int) -> dict[str, list[tuple[bytes, bytes]]]:
    """A seeded sample of ordinary calls, visits and transfers, with a few malformed records among them."""
    rng = random.Random(seed)
    lines = [f"+86138{rng.randrange(10**8):08d}" for _ in range(max(2, n // 10))]
    out: dict[str, list[tuple[bytes, bytes]]] = {"signals.telecom": [], "signals.domain": [], "signals.payment": []}
    for i in range(n):
        line = rng.choice(lines)
        ts = BASE_TS + i * 1000
        kind = rng.random()
        if kind < 0.6:
            doc = {"event_id": f"demo-t{seed}-{i}", "ts": ts, "kind": "call", "direction": rng.choice(["in", "out"]),
                   "subscriber": line, "counterpart": rng.choice(lines + ["95588", "+44 20 7946 0000"]),
                   "duration_s": rng.randrange(0, 900)}
            out["signals.telecom"].append((line.encode(), json.dumps(doc).encode()))
        elif kind < 0.9:
            doc = {"event_id": f"demo-d{seed}-{i}", "ts": ts, "subscriber": line, "kind": "dns",
                   "domain": rng.choice(["www.baidu.com", "Taobao.com.", "refund-taobao.xyz"])}
            out["signals.domain"].append((line.encode(), json.dumps(doc).encode()))
        else:
            acct = f"6222{rng.randrange(10**8):08d}"
            doc = {"event_id": f"demo-p{seed}-{i}", "ts": ts, "transfer_id": f"tr{seed}-{i}", "status": "initiated",
                   "payer_account": acct, "payee_account": f"6217{rng.randrange(10**8):08d}", "payee_bank": "ICBC",
                   "amount_fen": rng.randrange(100, 5_000_000), "channel": "mobile"}
            out["signals.payment"].append((acct.encode(), json.dumps(doc).encode()))
    bad = [b"not json", b"\xff\xfe broken bytes", json.dumps({"event_id": "x", "ts": "yesterday"}).encode()]
    for i, raw in enumerate(bad):
        out[list(out)[i % 3]].append((b"bad", raw))
    return out


def run_demo(settings: Settings, events: int, seed: int, keep: bool) -> int:
    """Start everything, stream the sample, print what came out of Kafka, and stop what was started."""
    print("== starting the local stack (Apache Kafka + Redis) ==")
    for st in stack.up(settings):
        print("  " + st.line())
    create_topics(settings)
    worker = WorkerProcess(settings, settings.data_dir / "logs" / "worker-0.log")
    print("== starting a pipeline worker ==")
    worker.start()
    try:
        starts = {t: end_offsets(settings, t) for t in ("yujing.events", "deadletter")}
        sample = sample_signals(seed, events)
        sent = sum(len(v) for v in sample.values())
        t0 = time.monotonic()
        for topic, messages in sample.items():
            produce(settings, topic, messages)
        print(f"== streamed {sent} signals (seed {seed}) ==")
        payments = sum(1 for k, _ in sample["signals.payment"] if k != b"bad")
        expected = sent - 3 + payments  # each valid transfer concerns the payer and the payee
        out = consume(settings, "yujing.events", expected, timeout=120, start=starts["yujing.events"])
        dead = consume(settings, "deadletter", 3, timeout=30, start=starts["deadletter"])
        elapsed = time.monotonic() - t0
        print(f"{'person events out (yujing.events)':<40}{len(out):>8}")
        print(f"{'dead-lettered, with reasons':<40}{len(dead):>8}")
        for msg in dead:
            print(f"    {json.loads(msg.value)['reason'][:70]}")
        print(f"{'seconds from first send to last read':<40}{elapsed:>8.1f}")
        print(f"worker log: {worker.log_path}")
        if keep:
            print(f"--keep: worker pid {worker.proc.pid if worker.proc else '?'} and the stack keep running; "
                  f"stop them with `yujing stack down` and kill {worker.proc.pid if worker.proc else ''}")
        return 0 if len(out) == expected and len(dead) == 3 else 1
    finally:
        if not keep:
            worker.stop()
            stack.down(settings)
