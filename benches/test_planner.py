"""The update planner: the native module against its pure-Python twin, on the
same driver answer, at 10,000, 100,000 and 1,000,000 updates: time (here)
and peak memory against the size of the driver's input (in a process of its
own, benches/planner_memory.py).

Target (issue 4): native at least 20x faster than the twin at 100,000
updates, with a peak memory of at most twice the driver's input.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import rig
from planner_memory import MAX_PARAMS, MIN_GROUP, make_answer

from cinder_promote import engine as core

SIZES = [10_000, 100_000, 1_000_000]
ROUNDS = {10_000: 15, 100_000: 5, 1_000_000: 3}
CASES = [(n, "distinct") for n in SIZES] + [(100_000, "mixed")]

_answers: dict[tuple[int, str], tuple] = {}


def _answer(n: int, shape: str) -> tuple:
    if (n, shape) not in _answers:
        _answers.clear()  # one size in memory at a time
        _answers[(n, shape)] = make_answer(n, shape)
    return _answers[(n, shape)]


def _memory(n: int, engine: str, shape: str) -> dict:
    out = subprocess.run([sys.executable, str(rig.REPO / "benches" / "planner_memory.py"), str(n), engine, shape],
                         capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout)


@pytest.mark.parametrize("engine", ["native", "reference"])
@pytest.mark.parametrize(("size", "shape"), [pytest.param(n, s, id=f"{s}-{n}") for n, s in CASES])
def test_planner(benchmark, engine, size, shape):
    n = rig.scaled(size)
    service, volumes, groups, known, known_groups = _answer(n, shape)
    before = core.current()
    core.use(engine)
    benchmark.group = f"planner {shape} {size:,}"
    benchmark.extra_info.update({"kind": "planner", "engine": engine, "updates": n, "shape": shape, "size": size})
    try:
        plan = benchmark.pedantic(core.plan_updates, args=(service, volumes, groups, known, known_groups, MAX_PARAMS,
                                                           MIN_GROUP), rounds=ROUNDS[size], warmup_rounds=1)
    finally:
        core.use(before)
    assert plan["volumes"]["count"] == n
    memory = _memory(n, engine, shape)
    benchmark.extra_info.update({"input_bytes": memory["input_bytes"], "peak_bytes": memory["peak_bytes"],
                                 "peak_over_input": memory["peak_bytes"] / memory["input_bytes"]})
