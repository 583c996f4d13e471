"""The planner's time and peak memory on one answer, in a process of its own.

    python planner_memory.py N native|reference distinct|mixed

Prints one JSON line: the size of the driver's input (the Python objects of
its answer, measured by tracemalloc while it is built) and the planner's
peak: the resident memory's high-water mark during `plan_updates` (reset
through /proc/self/clear_refs just before the call) minus the resident
memory just before it, so that it counts the native module's own
allocations, the plan it returns, and nothing that was there before.
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
import time
import tracemalloc
import uuid
from typing import Any

from cinder_promote import engine as core
from cinder_promote.drivers.bulk import UpdateList

MAX_PARAMS = 32767  # PostgreSQL's limit: chunks of 8,191 rows of 3 columns
MIN_GROUP = 32


def make_known(ids: Any) -> dict[str, tuple[str | None, ...]]:
    """The hook's map of live rows: each volume's current values (VOLUME_KEYS),
    as loaded from the database after a failover to B: failed over, with its
    pair on the lost backend A. Fresh str objects per row, as a database driver
    returns them (so that no equal value is found by identity alone); every
    answer of `make_answer` changes every volume."""
    return {
        i: ("failed-over", None, f"backend-a:pair-{i}", None, None, None, "".join(("avail", "able")))
        for i in ids
    }


def make_answer(n: int, shape: str) -> tuple[Any, list[dict], list, dict[str, tuple[str | None, ...]], dict]:
    """A driver's answer for n volumes, built as a driver builds it (with the bulk helper).

    distinct: the reference driver's answer after a promotion: every volume its own
    pair (three columns, one of them distinct per volume).
    mixed: a third change status, a third get their own pair, a third share one update.
    """
    ids = [str(uuid.uuid4()) for _ in range(n)]
    known = make_known(ids)
    answer = UpdateList("volume")
    if shape == "distinct":
        answer.add_each(ids, lambda i: {"replication_status": "enabled",
                                        "replication_driver_data": f"backend-c:pair-{i}",
                                        "replication_extended_status": "replicating to backend-c"})
    elif shape == "mixed":
        for k, i in enumerate(ids):
            if k % 3 == 0:
                answer.add(i, replication_status="enabled", replication_driver_data=f"pair-{i}", status="in-use")
            elif k % 3 == 1:
                answer.add(i, replication_status="enabled", replication_driver_data=f"pair-{i}")
            else:
                answer.add(i, replication_status="enabled", replication_extended_status="shared")
    else:
        raise ValueError(shape)
    return {"replication_status": "enabled"}, answer.entries, [], known, {}


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    n, engine_name, shape = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    core.use(engine_name)
    tracemalloc.start()
    service, volumes, groups, known, known_groups = make_answer(n, shape)
    del known  # the map of live rows is the hook's, not the driver's: measured apart
    input_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    known = make_known(e["volume_id"] for e in volumes)
    gc.collect()
    gc.disable()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the high-water mark to the current resident size
    started = time.perf_counter()
    plan = core.plan_updates(service, volumes, groups, known, known_groups, MAX_PARAMS, MIN_GROUP)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    assert plan["volumes"]["count"] == n
    print(json.dumps({"n": n, "engine": engine_name, "shape": shape, "seconds": seconds,
                      "input_bytes": input_bytes, "peak_bytes": max(0, peak - before), "rss_before": before}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
