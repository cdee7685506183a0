"""`yujing campaign`: launch a reminder campaign from the registry and the pipeline's recent triggers.

Reads `registry.subjects` and `yujing.triggers` from Kafka, passes each person through the warnings' cooldown
in Redis (at the reminder rank), and queues the reminders on `dispatch.sms`. Launching the same campaign again
queues the same `message_id`s, which the cooldown lets through as the same message and the SMS adapter does
not send twice.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import msgspec

from deploy.config import Settings
from deploy.redis_client import connect
from dispatch.campaign import Campaign, Exposure, audience, plan_reminder, rising_types
from dispatch.cooldown import REMINDER_TIER, Cooldown
from dispatch.escalation import clock_key
from dispatch.routing import load_routes
from schemas.decode import InvalidRecord, decode_input
from schemas.internal import Trigger
from schemas.records import SmsTask, Subject, encode
from streams.kafka_io import produce, read_to_end


@dataclass
class LaunchReport:
    """What a launch did: the group's size, who the cooldown held back, who had no line, what was queued."""

    campaign_id: str
    audience: int
    suppressed: int
    no_phone: int
    queued: int


def registry(settings: Settings) -> list[Subject]:
    """The latest registry record of every person not erased since, checked as the worker checks it."""
    latest: dict[str, Subject] = {}
    for msg in read_to_end(settings, settings.topic("registry.subjects")):
        if msg.value is None:  # a tombstone: the person erased (the worker's own check of the key is not needed)
            latest.pop(msg.key.decode("utf-8", "replace") if msg.key else "", None)
            continue
        try:
            s = decode_input("registry.subjects", msg.value)
        except InvalidRecord:
            continue  # the pipeline dead-letters those
        assert isinstance(s, Subject)
        if s.subject_id not in latest or latest[s.subject_id].ts <= s.ts:
            latest[s.subject_id] = s
    return list(latest.values())


def exposures(settings: Settings) -> list[Exposure]:
    """Registered people's contacts with case elements, from the pipeline's triggers."""
    out = []
    for msg in read_to_end(settings, settings.topic("yujing.triggers")):
        t = msgspec.json.decode(msg.value, type=Trigger)
        if t.subject_id and t.cause == "indicator_hit":
            out.append(Exposure(t.subject_id, t.fraud_type, t.ts))
    return out


async def pipeline_clock(settings: Settings) -> int:
    """The pipeline's event-time clock (the dispatch stage's), or the wall clock before it has one."""
    client = connect(settings.redis_url, **settings.redis_options())
    try:
        raw = await client.get(clock_key(settings.redis_prefix))
    finally:
        await client.aclose()
    return int(raw) if raw else int(time.time() * 1000)


async def _pass_cooldown(settings: Settings, tasks: list[tuple[Subject, SmsTask]]) -> list[SmsTask]:
    client = connect(settings.redis_url, **settings.redis_options())
    try:
        cooldown = Cooldown(client, settings.redis_prefix, load_routes().cooldown_ms)
        return [task for subject, task in tasks
                if await cooldown.acquire(subject.subject_id, REMINDER_TIER, task.ts, task.message_id)]
    finally:
        await client.aclose()


def launch(settings: Settings, campaign: Campaign, dry_run: bool = False) -> LaunchReport:
    """Select the group, pass the cooldown, queue the reminders (or only count them, on a dry run)."""
    group = audience(campaign, registry(settings), exposures(settings) if campaign.exposed_to else [])
    planned = [(s, task) for s in group if (task := plan_reminder(campaign, s)) is not None]
    sendable = [t for _, t in planned] if dry_run else asyncio.run(_pass_cooldown(settings, planned))
    if not dry_run and sendable:
        produce(settings, "dispatch.sms", [(t.to.encode(), encode(t)) for t in sendable])
    return LaunchReport(campaign.campaign_id, len(group), len(planned) - len(sendable), len(group) - len(planned),
                        0 if dry_run else len(sendable))


def trends(settings: Settings, now: int) -> list[tuple[str, int, int]]:
    """Exposures by fraud type, last day against the day before: what is on the rise."""
    return rising_types(exposures(settings), now)
