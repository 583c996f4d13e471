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

Before each round of the hook, its database's best read floor and best write
floor (floors.py, BEST_READ and BEST_WRITE) are timed on the same seeded rows
(the read on the seeded database, the write on a copy of its own): issue 15's
target compares the whole hook with their sum, and measured minutes apart in
the read and write benches the same code moved by up to a fifth between runs
on this shared machine.
"""

from __future__ import annotations

import statistics
import time

import floors
import pytest
import rig

from cinder_promote.db.connect import open_engine
from cinder_promote.drivers.reference import ReferenceDriver
from cinder_promote.hook import PHASES, update_host_replication

VOLUMES, GROUPS = 100_000, 100
CINDER_VOLUMES, CINDER_GROUPS = 2_000, 20
# Medians of five rounds, after one untimed round of each (first connections, caches of
# both Python processes); the hook and Cinder's loop of one database run one after the
# other, so that the machine's load moves as little as possible between the two.
ROUNDS, WARMUP_ROUNDS = 5, 1
WHO = ("cinder-promote", "cinder")


@pytest.mark.parametrize(("dialect", "who"), [pytest.param(d, w, id=f"{rig.LABELS[d]}-{w}")
                                              for d in rig.DIALECTS for w in WHO])
def test_startup(benchmark, seeded, dialect, who, tmp_path):
    benchmark.group = f"hook {rig.LABELS[dialect]}"
    if who == "cinder-promote":
        _hook(benchmark, seeded(dialect, rig.scaled(VOLUMES), GROUPS), dialect)
    else:
        _cinder_loop(benchmark, seeded(dialect, rig.scaled(CINDER_VOLUMES), CINDER_GROUPS), dialect,
                     tmp_path / "cinder")


def _hook(benchmark, database: rig.Seeded, dialect: str) -> None:
    results = []
    engines = []
    beside: dict[str, list[float]] = {"read": [], "write": []}

    def setup():
        for engine in engines:
            engine.dispose()
        _floors_beside(database, dialect, beside)
        engine = open_engine(database.fresh())
        engines.append(engine)
        driver = ReferenceDriver(replication_target=rig.new_target())
        driver.do_setup(None)
        return (engine, driver), {}

    def run(engine, driver):
        results.append(update_host_replication(engine, driver, host=rig.HOST))

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS)
    for engine in engines:
        engine.dispose()
    database.drop_copies()
    assert len(results) == ROUNDS + WARMUP_ROUNDS
    assert all(r.outcome == "done" and r.volumes_updated == database.volumes for r in results)
    timed = results[WARMUP_ROUNDS:]
    benchmark.extra_info.update({
        "kind": "hook", "who": "cinder-promote", "dialect": dialect, "volumes": database.volumes,
        "groups": database.groups, "rows": database.volumes + database.groups,
        "phases_s": {p: statistics.median(r.timings.get(p, 0.0) for r in timed) for p in PHASES},
        "floors_beside": {
            kind: {"method": method, "rounds_s": beside[kind][WARMUP_ROUNDS:],
                   "median_s": statistics.median(beside[kind][WARMUP_ROUNDS:])}
            for kind, method in (("read", floors.BEST_READ[dialect]), ("write", floors.BEST_WRITE[dialect]))},
    })


def _floors_beside(database: rig.Seeded, dialect: str, beside: dict[str, list[float]]) -> None:
    """The best read floor on the seeded database (a read changes nothing), then the best
    write floor of the distinct values on a fresh copy, each settled first as in their own
    benches; their times are appended to `beside`."""
    database.settle()
    read = floors.prepare_read(dialect, database.url, floors.BEST_READ[dialect], rig.HOST)
    beside["read"].append(_timed(read, database.volumes))
    rows, _ = rig.update_data(database.url, "distinct")
    write = floors.PREPARE[dialect](database.fresh(), floors.BEST_WRITE[dialect], rig.WRITE_COLUMNS, rows, rig.HOST)
    beside["write"].append(_timed(write, database.volumes))


def _timed(runner, rows: int) -> float:
    started = time.perf_counter()
    done = runner()
    elapsed = time.perf_counter() - started
    assert done == rows, (done, rows)
    return elapsed


def _cinder_loop(benchmark, database: rig.Seeded, dialect: str, workdir) -> None:
    loop = rig.CinderLoop(database.url, workdir)
    results = []
    try:
        def setup():
            database.settle()
            return (rig.new_tag(),), {}

        benchmark.pedantic(lambda tag: results.append(loop.run(tag)), setup=setup, rounds=ROUNDS,
                           warmup_rounds=WARMUP_ROUNDS)
    finally:
        loop.close()
    assert len(results) == ROUNDS + WARMUP_ROUNDS
    assert all(r["volumes"] == database.volumes and r["groups"] == database.groups for r in results), results
    timed = results[WARMUP_ROUNDS:]
    benchmark.extra_info.update({
        "kind": "hook", "who": "cinder", "dialect": dialect, "volumes": database.volumes, "groups": database.groups,
        "rows": database.volumes + database.groups,
        "phases_s": {"load": statistics.median(r["load_s"] for r in timed),
                     "loop": statistics.median(r["loop_s"] for r in timed)},
    })
