"""The hook's load against each database's read floor, in the same run: the host's
live volumes (100,000, the hook bench's seeded database) read by the database
driver alone (floors.py, "read floors"). The report adds the best read floor and
the best write floor of each database and compares the whole hook with their sum
(issue 15: within 1.25x).
"""

from __future__ import annotations

import floors
import pytest
import rig
from test_hook import GROUPS, VOLUMES

ROUNDS = 5
CASES = [pytest.param(d, m, id=f"{rig.LABELS[d]}-{m}") for d in rig.DIALECTS for m in floors.READ_METHODS[d]]


@pytest.mark.parametrize(("dialect", "method"), CASES)
def test_read(benchmark, seeded, dialect, method):
    database = seeded(dialect, rig.scaled(VOLUMES), GROUPS)
    read = []

    def setup():
        database.settle()
        return (floors.prepare_read(dialect, database.url, method, rig.HOST),), {}

    benchmark.group = f"read {rig.LABELS[dialect]}"
    benchmark.extra_info.update({"kind": "read", "dialect": dialect, "method": method, "rows": database.volumes})
    benchmark.pedantic(lambda runner: read.append(runner()), setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert read and all(n == database.volumes for n in read), read
