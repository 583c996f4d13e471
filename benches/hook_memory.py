"""The startup hook on a seeded database, with its resident memory sampled
every 20 ms, in a process of its own (so that nothing else is in its memory).

    python hook_memory.py URL

Prints one JSON line: the phases' seconds, the memory curve (seconds, bytes,
phase) and the resident memory when each phase ended.
"""

from __future__ import annotations

import json
import sys
import time

from cinder_promote.bench import BENCH_HOST, MemoryCurve, rss_bytes
from cinder_promote.db.connect import open_engine
from cinder_promote.db.queries import LOAD_BATCH
from cinder_promote.drivers.reference import ReferenceDriver
from cinder_promote.hook import update_host_replication


def main() -> int:
    engine = open_engine(sys.argv[1])
    driver = ReferenceDriver(replication_target=sys.argv[2] if len(sys.argv) > 2 else "backend-c")
    driver.do_setup(None)
    ended: dict[str, int] = {}
    curve = MemoryCurve()
    last = ["start"]

    def progress(phase: str, message: str) -> None:
        if phase != last[0]:
            ended[last[0]] = rss_bytes()
            last[0] = phase
        curve.progress(phase, message)

    started = time.perf_counter()
    with curve:
        result = update_host_replication(engine, driver, host=BENCH_HOST, progress=progress)
    total = time.perf_counter() - started
    ended[last[0]] = rss_bytes()
    engine.dispose()
    print(json.dumps({"outcome": result.outcome, "volumes": result.volumes_updated, "groups": result.groups_updated,
                      "total_s": total, "phases_s": result.timings, "load_batch": LOAD_BATCH,
                      "rss_at_end_of": ended, "memory": curve.to_json()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
