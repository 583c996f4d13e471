"""The hook's handling of Python's cyclic garbage collector (db/queries.py,
`records_spared_by_collector`): what it changes while the hook runs, it gives back."""

from __future__ import annotations

import gc
import weakref

import pytest

from cinder_promote.db import queries


class _Node:
    self: _Node


@pytest.fixture
def collector():
    if gc.get_freeze_count():
        pytest.skip("the process froze objects of its own: the hook leaves the collector alone")
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)
    gc.unfreeze()


def test_no_full_collection_while_records_are_frozen_and_all_given_back(collector):
    with queries.records_spared_by_collector():
        with queries._collector_paused():  # what a load does around making its records
            records = [(str(i), i) for i in range(1000)]
        assert gc.get_freeze_count() > 0, "the loaded records are set aside"
        # A full collection now would take the oldest generation without the frozen
        # objects as its size, and run again far too often once they are given back;
        # a collection of the middle one would age the hook's objects into the oldest.
        assert gc.get_threshold() == (collector[0], queries._NEVER, queries._NEVER)
    assert gc.get_freeze_count() == 0, "everything frozen is given back"
    assert gc.get_threshold() == collector, "the thresholds are the process's again"
    assert gc.isenabled()
    del records


def test_given_back_when_the_work_fails(collector):
    with pytest.raises(RuntimeError), queries.records_spared_by_collector():
        with queries._collector_paused():
            pass
        raise RuntimeError("the driver failed")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == collector
    assert gc.isenabled()


def test_the_hooks_objects_never_reach_the_oldest_generation(collector):
    """What the driver makes while the hook runs is collected young or dies by reference
    count, never moved to the oldest generation, whose growth decides when the process
    (Cinder loading every volume next) runs its next full collection."""
    gc.collect()
    before = [generation["collections"] for generation in gc.get_stats()]
    with queries.records_spared_by_collector():
        answer = [{"id": str(i)} for i in range(collector[0] * (collector[1] + 2))]
        # A cycle the driver makes and drops between two young collections is freed by the next
        # one (one that lives through a young collection waits for the hook's end).
        gc.collect(0)
        young = gc.get_stats()[0]["collections"]
        dropped = _Node()
        dropped.self = dropped
        ref = weakref.ref(dropped)
        del dropped
        answer.extend({} for _ in range(collector[0] * 2))
        during = [generation["collections"] for generation in gc.get_stats()]
        assert ref() is None, "a dropped cycle is still collected while the hook runs"
    del answer
    assert during[0] > young, "the youngest generation was collected"
    assert during[1:] == before[1:], "no collection of the middle or oldest generation moved anything up"
