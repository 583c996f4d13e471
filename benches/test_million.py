"""A million volumes on PostgreSQL: the whole hook in a process of its own
with its resident memory sampled every 20 ms (benches/hook_memory.py), and
the same at 100,000 volumes to show how the memory scales.

What must stay bounded is what the hook adds beyond the driver's input (the
volume records) and the driver's answer, which the driver API makes O(n):
the load reads LOAD_BATCH rows at a time through a server-side cursor, the
write streams one COPY from the plan (asyncpg encodes records as it sends
them) and the plan holds references to the driver's strings, not copies.

Target (issue 4): 1,000,000 volumes complete without the memory growing past
what the batch size needs; the report shows the curve, how far the load rises
above the records it keeps (the database driver's buffer: a batch) and how
much the write adds (the COPY's buffer), at both sizes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import rig

SIZES = [100_000, 1_000_000]


def _downsample(samples: list, limit: int = 600) -> list:
    step = max(1, len(samples) // limit)
    return samples[::step] + ([samples[-1]] if len(samples) % step != 1 else [])


@pytest.mark.parametrize("size", SIZES, ids=[f"{n:,}" for n in SIZES])
def test_memory_postgresql(benchmark, seeded, size):
    database = seeded("postgresql", rig.scaled(size), 100)
    out: dict = {}

    def setup():
        return (database.fresh(),), {}

    def run(url):
        proc = subprocess.run([sys.executable, str(rig.REPO / "benches" / "hook_memory.py"), url,
                               f"backend-{rig.new_tag()}"], capture_output=True, text=True, timeout=3000)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out.update(json.loads(proc.stdout))

    benchmark.group = "memory PostgreSQL"
    benchmark.pedantic(run, setup=setup, rounds=1)
    database.drop_copies()
    assert out["outcome"] == "done" and out["volumes"] == database.volumes
    memory = out["memory"]
    ended = out["rss_at_end_of"]
    baseline = memory["baseline_bytes"]
    after_driver = ended.get("driver", 0)
    beyond = max(0, max(memory["peak_by_phase_bytes"].get(p, 0) for p in ("plan", "apply")) - after_driver)
    benchmark.extra_info.update({
        "kind": "memory", "dialect": "postgresql", "volumes": database.volumes, "groups": database.groups,
        "total_s": out["total_s"], "phases_s": out["phases_s"], "load_batch": out["load_batch"],
        "baseline_bytes": baseline, "peak_bytes": memory["peak_bytes"], "rss_at_end_of": ended,
        "records_bytes": ended.get("load", 0) - ended.get("fence", baseline),
        "answer_bytes": after_driver - ended.get("load", 0),
        "beyond_driver_bytes": beyond,
        "peak_by_phase_bytes": memory["peak_by_phase_bytes"],
        "samples": _downsample(memory["samples"]),
    })
