"""Hash tags: each store's keys that a script or a transaction touches together fall in one Redis Cluster slot; the
per-person keys stay untagged, spread over the shards."""
from __future__ import annotations

import pytest
from redis.crc import key_slot

from dispatch.escalation import breaches_key, clock_key, escalation_prefix
from dispatch.redis_keys import slot_group
from dispatch.review import review_prefix
from dispatch.sms import adapter_prefix, done_key, waiting_keys
from dispatch.task_queue import feed_prefix
from ops.board import board_prefix

PREFIXES = ("yujing:", "t-3f9c.yujing:")  # the default one and a test's own


def test_a_slot_group_is_the_prefix_and_group_in_braces() -> None:
    assert slot_group("yujing:", "esc") == "{yujing:esc}:"
    assert slot_group("t-abc.yujing:", "sms") == "{t-abc.yujing:sms}:"
    with pytest.raises(ValueError, match="no braces"):
        slot_group("te}nant:", "esc")  # the tag would end early and the store's keys scatter


def _slots(keys: list[str]) -> set[int]:
    return {key_slot(k.encode()) for k in keys}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_stores_keys_share_one_slot(prefix: str) -> None:
    esc = escalation_prefix(prefix)
    sms = adapter_prefix(prefix)
    stores = {
        "escalation": [clock_key(prefix), breaches_key(prefix), esc + "pending", esc + "ctx:w-1", esc + "ctx:w-2"],
        "review": [review_prefix(prefix) + k for k in ("pending", "since", "held:w-1", "held:w-2")],
        "sms": [*waiting_keys(prefix), done_key(prefix, "m-1"), done_key(prefix, "m-2"), sms + "sent:m-1",
                sms + "ref:r-1", sms + "awaiting", sms + "accepted", sms + "settling", sms + "loaded:dispatch.sms:3"],
        "feed": [feed_prefix(prefix) + k for k in ("q:visit:G0012", "q:phone:ST003", "t:task-1", "tokens",
                                                   "loaded:dispatch.visit:0")],
        "board": [board_prefix(prefix) + k for k in ("warnings", "warnings:doc", "interceptions",
                                                     "interceptions:doc", "tiers")],
    }
    for store, keys in stores.items():
        assert len(_slots(keys)) == 1, store
    assert len({next(iter(_slots(keys))) for keys in stores.values()}) > 1  # the stores themselves spread


def test_per_person_keys_carry_no_tag_and_spread() -> None:
    assert len(_slots([f"yujing:cooldown:S{i}" for i in range(50)])) > 40
