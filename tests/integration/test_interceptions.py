"""Case elements on Kafka become domain and number interceptions, and `yujing rpz` a zone a resolver loads."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.records import DomainInterception, NumberInterception
from streams.kafka_io import consume, produce
from tests.integration.scenario import HOUR, T, indicator


def test_indicators_to_blocks_and_an_rpz_zone(isolated: Settings, worker: WorkerProcess, tmp_path: Path) -> None:
    produce(isolated, "intel.indicators", [
        indicator("domain", "Refund-7731.TOP.", "add", T),
        indicator("url", "http://police-check.vip/case?id=1", "add", T),
        indicator("domain", "wrongly.flagged.cn", "add", T),
        indicator("domain", "wrongly.flagged.cn", "retract", T + HOUR),
        indicator("phone", "+86 170 0000 1111", "add", T),
    ])
    domains = [msgspec.json.decode(m.value, type=DomainInterception)
               for m in consume(isolated, "interception.domain", expect=4, timeout=45)]
    numbers = [msgspec.json.decode(m.value, type=NumberInterception)
               for m in consume(isolated, "interception.number", expect=1, timeout=20)]
    assert sorted({d.domain for d in domains}) == ["police-check.vip", "refund-7731.top", "wrongly.flagged.cn"]
    assert [(n.number, n.action) for n in numbers] == [("+8617000001111", "block")]

    zone = tmp_path / "rpz.zone"
    env = {**os.environ, **isolated.to_env()}
    res = subprocess.run([sys.executable, "-m", "deploy.cli", "rpz", "--out", str(zone), "--at", str(T + 2 * HOUR)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    text = zone.read_text()
    assert "refund-7731.top IN CNAME ." in text and "police-check.vip IN CNAME ." in text
    assert "wrongly.flagged.cn" not in text  # retracted: no longer blocked
    check = subprocess.run(["named-checkzone", "rpz.yujing.local", str(zone)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
