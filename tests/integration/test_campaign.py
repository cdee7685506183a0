"""Reminder campaigns on the real broker, Redis and the test SMS gateway: the group from the registry and the
pipeline's triggers, the warnings' cooldown both ways, relaunches sending nothing twice, warnings first."""
from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from deploy.campaign_launch import launch, registry
from deploy.config import Settings
from deploy.redis_client import connect
from dispatch.campaign import Campaign
from dispatch.cooldown import Cooldown
from dispatch.routing import load_routes
from schemas.internal import Trigger
from schemas.records import Outcome, SmsTask, Subject, encode
from schemas.units import HOUR_MS
from streams.kafka_io import consume, produce
from tests.integration.harness import cli_process, free_port, http_json, wait_http

NOON = 1_764_561_600_000  # 2025-12-01 12:00 local time


def _subject(sid: str, born: int, phone: str | None) -> tuple[bytes, bytes]:
    s = Subject(subject_id=sid, phones=[phone] if phone else [], accounts=[], birth_year=born, grid_id="G1",
                station_id="ST1", name_masked="李*", ts=NOON - 30 * 86_400_000)
    return sid.encode(), encode(s)


def _exposure(sid: str, fraud_type: str, ts: int) -> tuple[bytes, bytes]:
    t = Trigger(trigger_id=f"tr-{sid}", person=sid, subject_id=sid, ts=ts, cause="indicator_hit", mode="reverse",
                value_key="phone:+8617000000000", fraud_type=fraud_type, event_id=f"e-{sid}")
    return sid.encode(), msgspec.json.encode(t)


def _cooldown(settings: Settings, person: str, tier: str, ts: int, wid: str) -> bool:
    async def run() -> bool:
        client = connect(settings.redis_url, **settings.redis_options())
        try:
            cd = Cooldown(client, settings.redis_prefix, load_routes().cooldown_ms)
            return await cd.acquire(person, tier, ts, wid)
        finally:
            await client.aclose()
    return asyncio.run(run())


def test_campaign_group_cooldown_relaunch_and_warnings_first(isolated: Settings, tmp_path: Path) -> None:
    produce(isolated, "registry.subjects", [
        _subject("P70", 1955, "+8613800000070"), _subject("P65", 1960, "+8613800000065"),
        _subject("P30", 1995, "+8613800000030"), _subject("P68", 1957, None), _subject("P80", 1945, "+8613800000080")])
    produce(isolated, "yujing.triggers", [_exposure("P65", "fake_customer_service", NOON - 2 * HOUR_MS),
                                          _exposure("P30", "fake_customer_service", NOON - 3 * HOUR_MS)])
    assert _cooldown(isolated, "P80", "T3", NOON - HOUR_MS, "warned-an-hour-ago")  # a warning went out already

    elderly = Campaign(fraud_type="fake_customer_service", ts=NOON, age_min=60, grids=frozenset({"G1"}))
    report = launch(isolated, elderly)
    assert (report.audience, report.no_phone, report.suppressed, report.queued) == (4, 1, 1, 2)  # P80 held back
    exposed = Campaign(fraud_type="fake_customer_service", ts=NOON + HOUR_MS, exposed_to="fake_customer_service")
    report = launch(isolated, exposed)
    assert (report.audience, report.suppressed, report.queued) == (2, 1, 1)  # P65 was just reminded
    assert launch(isolated, elderly).queued == 2  # relaunched: the same messages again, not sent twice below
    # a reminder never holds back a warning; a warning does hold back the next reminder
    assert _cooldown(isolated, "P70", "T3", NOON + 2 * HOUR_MS, "a-warning")

    warning = SmsTask(warning_id="w-1", tier="T3", fraud_type="romance", ts=NOON + 2 * HOUR_MS, message_id="warn-1",
                      to="+8613800000099", text="【反诈中心】测试 96110", not_before_ts=NOON + 2 * HOUR_MS,
                      expires_ts=NOON + 3 * HOUR_MS)
    produce(isolated, "dispatch.sms", [(warning.to.encode(), encode(warning))])

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)):
        wait_http(f"{base}/admin/messages")
        with cli_process(isolated, tmp_path, "adapter", "sms-gateway", "--url", base, "--receipt-every", "1",
                         "--rate", "5", "--clock", "event"):
            receipts = [msgspec.json.decode(m.value, type=Outcome)
                        for m in consume(isolated, "outcomes", expect=4, timeout=60, linger=3)]
            messages = http_json(f"{base}/admin/messages")
    log = (tmp_path / "adapter.log").read_text()
    assert sorted(m["to"] for m in messages.values()) == ["+8613800000030", "+8613800000065", "+8613800000070",
                                                          "+8613800000099"], log
    assert all(m["deliveries"] == 1 for m in messages.values()), messages
    assert messages["warn-1"]["order"] == 1, messages  # queued after three reminders, delivered before them
    assert len(receipts) == 4 and {r.outcome for r in receipts} == {"sms_delivered"}
    assert {r.warning_id for r in receipts} == {"w-1", elderly.campaign_id, exposed.campaign_id}


def test_the_audience_leaves_out_people_erased_since_and_records_the_worker_refuses(isolated: Settings) -> None:
    """P70 was erased after registering (a tombstone), P66's record shows the whole name: neither is reminded."""
    unmasked = Subject(subject_id="P66", phones=["+8613800000066"], accounts=[], birth_year=1958, grid_id="G1",
                       station_id="ST1", name_masked="李大明*", ts=NOON - 30 * 86_400_000)
    produce(isolated, "registry.subjects", [_subject("P70", 1955, "+8613800000070"), (b"P70", None),
                                            _subject("P65", 1960, "+8613800000065"), (b"P66", encode(unmasked))])
    assert [s.subject_id for s in registry(isolated)] == ["P65"]
