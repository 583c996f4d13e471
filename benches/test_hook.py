"""The whole startup hook (fence, load, driver, plan, write, release) against
Cinder 29.0.0's own per-object loop, on the same kind of database in the
same run.

- hook: `update_host_replication` with the reference driver on 100,000
  volumes and 100 groups, a fresh copy of the seeded database each round (on
  MariaDB the same database, reset, with a new replication target so that
  every value changes). The engine is opened before the clock starts, as in
  Cinder, where it exists when the hook runs.
- cinder: `VolumeList.get_all` then `volume.update(...)`/`volume.save()` per
  volume and per group, with real Cinder objects in Cinder's venv
  (benches/cinder_loop.py), on 2,000 volumes and 20 groups: at Cinder's pace
  100,000 would take minutes per round. The two are compared in rows per
  second.

Target (issue 4): the hook at 100,000 volumes at least 100x Cinder's rows/s,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import statistics

import pytest
import rig

from cinder_promote.db.connect import open_engine
from cinder_promote.drivers.reference import ReferenceDriver
from cinder_promote.hook import PHASES, update_host_replication

VOLUMES, GROUPS = 100_000, 100
CINDER_VOLUMES, CINDER_GROUPS = 2_000, 20
ROUNDS = 3


@pytest.mark.parametrize("dialect", rig.DIALECTS, ids=[rig.LABELS[d] for d in rig.DIALECTS])
def test_hook(benchmark, seeded, dialect):
    database = seeded(dialect, rig.scaled(VOLUMES), GROUPS)
    results = []
    engines = []

    def setup():
        for engine in engines:
            engine.dispose()
        engine = open_engine(database.fresh())
        engines.append(engine)
        driver = ReferenceDriver(replication_target=f"backend-{rig.new_tag()}")
        driver.do_setup(None)
        return (engine, driver), {}

    def run(engine, driver):
        results.append(update_host_replication(engine, driver, host=rig.HOST))

    benchmark.group = f"hook {rig.LABELS[dialect]}"
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS)
    for engine in engines:
        engine.dispose()
    database.drop_copies()
    assert all(r.outcome == "done" and r.volumes_updated == database.volumes for r in results)
    benchmark.extra_info.update({
        "kind": "hook", "who": "cinder-promote", "dialect": dialect, "volumes": database.volumes,
        "groups": database.groups, "rows": database.volumes + database.groups,
        "phases_s": {p: statistics.median(r.timings.get(p, 0.0) for r in results) for p in PHASES},
    })


@pytest.mark.parametrize("dialect", rig.DIALECTS, ids=[rig.LABELS[d] for d in rig.DIALECTS])
def test_cinder_loop(benchmark, seeded, dialect, tmp_path):
    database = seeded(dialect, rig.scaled(CINDER_VOLUMES), CINDER_GROUPS)
    loop = rig.CinderLoop(database.url, tmp_path / "cinder")
    results = []
    try:
        benchmark.group = f"hook {rig.LABELS[dialect]}"
        benchmark.pedantic(lambda tag: results.append(loop.run(tag)), setup=lambda: ((rig.new_tag(),), {}),
                           rounds=ROUNDS)
    finally:
        loop.close()
    assert all(r["volumes"] == database.volumes and r["groups"] == database.groups for r in results), results
    benchmark.extra_info.update({
        "kind": "hook", "who": "cinder", "dialect": dialect, "volumes": database.volumes, "groups": database.groups,
        "rows": database.volumes + database.groups,
        "phases_s": {"load": statistics.median(r["load_s"] for r in results),
                     "loop": statistics.median(r["loop_s"] for r in results)},
    })
