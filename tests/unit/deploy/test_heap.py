"""The heap keeper: what a checkpoint leaves alive is skipped by collections; a due full pass reclaims dead cycles."""
from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from deploy.app.heap import HeapKeeper


class Node:
    """One half of a reference cycle (only the cyclic collector frees it)."""

    other: Node | None = None


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_a_checkpoint_freezes_what_is_alive_and_a_due_full_pass_reclaims_its_dead_cycles() -> None:
    now = [0.0]
    keeper = HeapKeeper(full_every_s=600.0, clock=lambda: now[0])
    gc.collect()
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)

    keeper.checkpointed()
    assert gc.get_freeze_count() > 0
    del a, b
    gc.collect()
    assert ref() is not None, "a frozen cycle is skipped by collections"

    now[0] = 599.0
    keeper.checkpointed()
    gc.collect()
    assert ref() is not None and keeper.full_passes == 0, "no full pass before it is due"

    now[0] = 600.0
    keeper.checkpointed()
    assert ref() is None, "the due full pass reclaims it"
    assert keeper.full_passes == 1 and keeper.reclaimed >= 2
    assert gc.get_freeze_count() > 0, "and the heap is frozen again after it"


def test_objects_that_die_frozen_without_a_cycle_are_freed_at_once() -> None:
    keeper = HeapKeeper(clock=lambda: 0.0)
    kept = Node()
    ref = weakref.ref(kept)
    keeper.checkpointed()
    del kept
    assert ref() is None
