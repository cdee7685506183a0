"""The heap keeper: a checkpoint collects the young and freezes the rest; a due full pass reclaims what died old."""
from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from deploy.app.heap import BACKSTOP, HeapKeeper


class Node:
    """One half of a reference cycle (only the cyclic collector frees it)."""

    other: Node | None = None


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    # the collector's own passes would move the test's cycles between generations at any allocation
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    gc.disable()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()


def _cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="an incremental collector: the keeper leaves it as it is")
def test_the_collectors_own_passes_over_the_oldest_generation_become_rare() -> None:
    young, middle, _ = gc.get_threshold()
    HeapKeeper().keep_full_passes_rare()
    assert gc.get_threshold() == (young, middle, BACKSTOP)


def test_a_young_cycle_that_died_before_a_checkpoint_is_collected_there_not_frozen() -> None:
    keeper = HeapKeeper(clock=lambda: 0.0)
    node, ref = _cycle()
    del node
    keeper.checkpointed()
    assert ref() is None
    assert gc.get_freeze_count() > 0 and keeper.full_passes == 0


def test_a_cycle_that_died_in_the_middle_generation_is_collected_at_a_checkpoint() -> None:
    keeper = HeapKeeper(clock=lambda: 0.0)
    node, ref = _cycle()
    gc.collect(0)  # it survives a pass of the young generation: it is in the middle one now
    del node
    keeper.checkpointed()
    assert ref() is None


def test_a_cycle_that_died_old_is_frozen_at_a_checkpoint_not_collected() -> None:
    keeper = HeapKeeper(full_every_s=600.0, clock=lambda: 0.0)
    node, ref = _cycle()
    gc.collect(1)  # it survives a pass of the middle generation: it is in the oldest now
    del node
    keeper.checkpointed()
    assert ref() is not None, "a checkpoint's pass does not reach the oldest generation"


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
