"""The hook's handling of Python's cyclic garbage collector (db/queries.py,
`records_spared_by_collector`): what it changes while the hook runs, it gives back."""

from __future__ import annotations

import gc

import pytest

from cinder_promote.db import queries


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
        # objects as its size, and run again far too often once they are given back.
        assert gc.get_threshold()[2] == queries._NEVER
        assert gc.get_threshold()[:2] == collector[:2]
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
