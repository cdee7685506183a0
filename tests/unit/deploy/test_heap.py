"""The heap keeper: a checkpoint collects the young and freezes the rest; a due full pass reclaims what died frozen."""
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
    gc.unfreeze()
    yield
    gc.unfreeze()


def _cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


def test_a_cycle_that_died_before_a_checkpoint_is_collected_there_not_frozen() -> None:
    keeper = HeapKeeper(clock=lambda: 0.0)
    node, ref = _cycle()
    del node
    keeper.checkpointed()
    assert ref() is None
    assert gc.get_freeze_count() > 0 and keeper.full_passes == 0


def test_a_cycle_that_dies_frozen_waits_for_the_due_full_pass() -> None:
    now = [0.0]
    passes: list[float] = []
    keeper = HeapKeeper(full_every_s=600.0, clock=lambda: now[0], observe_full=passes.append)
    node, ref = _cycle()
    keeper.checkpointed()
    del node
    gc.collect()
    assert ref() is not None, "a frozen cycle is skipped by collections"

    now[0] = 599.0
    keeper.checkpointed()
    assert ref() is not None and keeper.full_passes == 0, "no full pass before it is due"

    now[0] = 600.0
    keeper.checkpointed()
    assert ref() is None, "the due full pass reclaims it"
    assert keeper.full_passes == 1 and keeper.reclaimed >= 2 and len(passes) == 1
    assert gc.get_freeze_count() > 0, "and the heap is frozen again after it"

    now[0] = 601.0
    keeper.checkpointed()
    assert keeper.full_passes == 1, "the next full pass is 600 s after this one"
