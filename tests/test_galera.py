"""Active-active on a real MariaDB Galera cluster (3 nodes, scripts/galera).

On Galera a compare-and-swap is decided at COMMIT across nodes: the loser's
UPDATE usually matches its row and fails only at COMMIT (or at the next
statement) with a certification failure, error 1213. These tests race members
through different nodes at the same instant, run the hook from several
processes through different nodes, and kill the node a hook writes through.
The reset scenarios run on Galera in test_reset.py and test_race.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from scenario import cluster, journal, row, stopped_service
from support import galera
from support.hook_processes import SCRIPT, cluster_with_volumes, env, start_members, volume_statuses

from cinder_promote.db import seed
from cinder_promote.db.connect import open_engine
from cinder_promote.errors import ConcurrentChange
from cinder_promote.fence import Busy, Lease, acquire
from cinder_promote.reset import build_request, reset_active_backend
from cinder_promote.target import resolve

NODES = (1, 2, 3)
FENCE_ROUNDS = 300
RESET_ROUNDS = 100


@pytest.fixture
def dialect() -> str:
    return "galera"


@pytest.fixture
def nodes(galera_url):
    """One engine per node, opened the way the tool opens them (causal reads on Galera)."""
    engines = {n: open_engine(galera.on_node(galera_url, n)) for n in NODES}
    yield engines
    for engine in engines.values():
        engine.dispose()


def _race(rounds: int, attempt) -> list[list[object]]:
    """Each node's member calls `attempt(node, round)` at the same instant, round after round."""
    barrier = threading.Barrier(len(NODES))
    results: list[list[object]] = [[None] * len(NODES) for _ in range(rounds)]

    def member(index: int, node: int) -> None:
        for r in range(rounds):
            barrier.wait(timeout=60)
            try:
                results[r][index] = attempt(node, r)
            except Exception as exc:  # noqa: BLE001 - recorded; the test asserts on it
                results[r][index] = exc

    threads = [threading.Thread(target=member, args=(i, n)) for i, n in enumerate(NODES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _lost_races(caplog: pytest.LogCaptureFixture) -> int:
    return sum("lost a race" in r.getMessage() for r in caplog.records)


def test_fence_race_across_nodes(nodes, caplog):
    """Members on three nodes take the same fence at the same instant: never two holders."""
    caplog.set_level(logging.INFO, logger="cinder_promote")
    setup = nodes[1]
    names = [f"race-{r}@be" for r in range(FENCE_ROUNDS)]
    for name in names:
        cluster(setup, name, [f"m{n}-{name}" for n in NODES], replication_status="enabled", active_backend_id=None)
    targets = {}
    for n in NODES:
        with nodes[n].connect() as conn:
            targets[n] = [resolve(conn, backend_host=None, cluster=name) for name in names]

    results = _race(FENCE_ROUNDS, lambda node, r: acquire(
        nodes[node], targets[node][r], holder=f"member-{node}:{r}", lease_seconds=600))

    for r, outcome in enumerate(results):
        errors = [o for o in outcome if isinstance(o, BaseException)]
        assert not errors, f"round {r}: {errors!r}"
        leases = [o for o in outcome if isinstance(o, Lease)]
        assert len(leases) == 1, f"round {r}: {len(leases)} holders: {outcome!r}"
        busy = [o for o in outcome if isinstance(o, Busy)]
        assert len(busy) == len(NODES) - 1
        assert all(b.fence.live and b.fence.holder == leases[0].holder for b in busy), f"round {r}: {outcome!r}"
    with nodes[3].connect() as conn:
        fenced = conn.execute(sa.text(
            "SELECT count(*) FROM clusters WHERE name LIKE 'race-%' AND replication_status = 'updating'")).scalar_one()
        running = conn.execute(sa.text(
            "SELECT target, holder FROM cinder_promote_journal WHERE state = 'running'")).all()
    assert fenced == FENCE_ROUNDS
    holders = {name: holder for name, holder in running}
    assert len(running) == len(holders) == FENCE_ROUNDS, "one running journal entry per fence"
    assert holders == {names[r]: next(o.holder for o in results[r] if isinstance(o, Lease))
                       for r in range(FENCE_ROUNDS)}
    contested = _lost_races(caplog)
    print(f"\nfence races: {FENCE_ROUNDS} rounds x {len(NODES)} nodes, {contested} lost at COMMIT or later")
    assert contested > 0, "no round was decided by a certification failure: the race was not real"


def test_reset_race_across_nodes(nodes, caplog):
    """Three resets of one cluster through three nodes at once: one writes, the others are refused."""
    caplog.set_level(logging.INFO, logger="cinder_promote")
    setup = nodes[1]
    names = [f"reset-{r}@be" for r in range(RESET_ROUNDS)]
    for name in names:
        cluster(setup, name, [f"m{n}-{name}" for n in NODES])

    def attempt(node: int, r: int):
        request = build_request(backend_host=None, cluster=names[r], replication_status=None, enable_replication=True,
                                active_backend_id=None, enable_service=False, dry_run=False)
        return reset_active_backend(nodes[node], request, service_down_time=60)

    results = _race(RESET_ROUNDS, attempt)

    for r, outcome in enumerate(results):
        unexpected = [o for o in outcome if isinstance(o, BaseException) and not isinstance(o, ConcurrentChange)]
        assert not unexpected, f"round {r}: {unexpected!r}"
        written = [o for o in outcome if not isinstance(o, BaseException) and o.changed]
        assert len(written) == 1, f"round {r}: {outcome!r}"
        for o in outcome:
            if isinstance(o, ConcurrentChange):
                assert "nothing was written" in o.message
    with nodes[2].connect() as conn:
        statuses = conn.execute(sa.text(
            "SELECT replication_status, count(*) FROM services WHERE cluster_name LIKE 'reset-%' "
            "GROUP BY replication_status")).all()
        entries = conn.execute(sa.text(
            "SELECT target, count(*) FROM cinder_promote_journal GROUP BY target")).all()
    assert statuses == [("enabled", RESET_ROUNDS * len(NODES))]
    assert sorted(entries) == sorted((name, 1) for name in names), "one journal entry per reset"
    refused = sum(isinstance(o, ConcurrentChange) for outcome in results for o in outcome)
    print(f"\nreset races: {RESET_ROUNDS} rounds x {len(NODES)} nodes, {refused} refused as concurrent changes,"
          f" {_lost_races(caplog)} lost at COMMIT or later and retried")


def test_hook_from_members_on_different_nodes(galera_url, tmp_path):
    """Three members of a cluster start at once, each through its own node: the driver runs once."""
    db = galera.engine_on(galera_url, 1)
    members = [f"node-{n}@be" for n in NODES]
    cid = cluster_with_volumes(db, members, 3000)
    markers = tmp_path / "markers"
    markers.mkdir()
    procs = start_members([(galera.on_node(galera_url, n), host) for n, host in zip(NODES, members)], markers)
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 3, results
    assert sorted(json.loads(out)["outcome"] for _, out, _ in results) == ["done", "fenced", "fenced"]
    assert len(list(markers.iterdir())) == 1, "the driver ran exactly once"
    for n in NODES:
        engine = galera.engine_on(galera_url, n)
        assert volume_statuses(engine) == {"enabled": 3000}, f"node {n}"
        assert row(engine, "clusters", cid)["replication_status"] == "enabled", "no fence left"
        engine.dispose()
    assert [e["state"] for e in journal(db)] == ["done"]
    db.dispose()


# The victim: the hook through node 2, as a volume service on another machine
# would run it (so only its lease, not a dead process on this host, frees the fence).
VICTIM = """
import sys
from cinder_promote.db.connect import open_engine
from cinder_promote.errors import CinderPromoteError
from cinder_promote.hook import update_host_replication
from hook_drivers import DistinctDriver

engine = open_engine(sys.argv[1])
try:
    update_host_replication(engine, DistinctDriver(), host="node-b@be", holder="volume-b.example:4242",
                            lease_seconds=float(sys.argv[2]),
                            progress=lambda phase, message: print(phase, message, file=sys.stderr, flush=True))
except CinderPromoteError as exc:
    print(f"error: {exc.message}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def test_node_killed_while_the_hook_writes(galera_url):
    lease = 4.0
    db = galera.engine_on(galera_url, 1)
    sid = stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(f"node-b@be#p{i % 3}", replication_status="failed-over")
                                for i in range(30000)))
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, galera.on_node(galera_url, 2), str(lease)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    killed = False
    try:
        seen = []
        for line in victim.stderr:
            seen.append(line)
            if "with distinct values" in line:  # the set-based UPDATE is done; the distinct rows are on their way
                os.kill(galera.node_pid(2), signal.SIGKILL)
                killed = True
                break
        assert killed, "".join(seen)
        victim.wait(timeout=120)
        stderr = "".join(seen) + victim.stderr.read()
        victim.stdout.close()
        victim.stderr.close()
        assert victim.returncode == 3, stderr
        assert "database error" in stderr and "nothing of the driver's answer was written" in stderr
        assert "Traceback" not in stderr

        survivors = {n: galera.engine_on(galera_url, n) for n in (1, 3)}
        for n, engine in survivors.items():
            assert volume_statuses(engine) == {"failed-over": 30000}, f"node {n}: the write must be all or nothing"
        [first] = journal(db)
        assert first["state"] == "running" and first["holder"] == "volume-b.example:4242"
        assert row(db, "services", sid)["replication_status"] == "updating", "the fence stays until its lease expires"

        command = [SCRIPT, "--db-url", galera.on_node(galera_url, 3), "update-host-replication",
                   "--backend-host", "node-b@be", "--driver", "hook_drivers:DistinctDriver", "--format", "json",
                   "--quiet"]
        early = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=300)
        assert early.returncode == 0, early.stderr
        if json.loads(early.stdout)["outcome"] == "fenced":  # the lease may run out while this process starts
            time.sleep(lease + 1)
            again = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=300)
        else:
            again = early
        assert again.returncode == 0, again.stderr
        out = json.loads(again.stdout)
        assert out["outcome"] == "done" and out["taken_over_from"] == first["id"]
        assert out["status_before"] == "enabled"
        for n, engine in survivors.items():
            assert volume_statuses(engine) == {"enabled": 30000}, f"node {n}"
            engine.dispose()
        assert row(db, "services", sid)["replication_status"] == "enabled"
        assert [e["state"] for e in journal(db)] == ["taken-over", "done"]
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        if killed:
            galera.start_node(2)
    rejoined = galera.engine_on(galera_url, 2)
    assert volume_statuses(rejoined) == {"enabled": 30000}, "the killed node rejoined with the cluster's state"
    rejoined.dispose()
    db.dispose()


def _conflict_at_commit(galera_url: str, volume_id: str, times: int):
    """A progress callback that, just before the hook's COMMIT on node 2, commits a change of one of its
    volumes through node 1 (`times` times at most): Galera then refuses the hook's COMMIT (error 1213)."""
    other = galera.engine_on(galera_url, 1)
    done = []

    def progress(phase: str, message: str) -> None:
        if message == "committing" and len(done) < times:
            with other.begin() as conn:
                conn.execute(sa.text("UPDATE volumes SET replication_extended_status = :v WHERE id = :id"),
                             {"v": f"conflict-{len(done)}", "id": volume_id})
            done.append(volume_id)

    return progress, done, other


def _service_with_volumes(galera_url: str, count: int) -> tuple[sa.Engine, int, list[str]]:
    db = galera.engine_on(galera_url, 1)
    sid = stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(f"node-b@be#p{i % 3}", replication_status="failed-over")
                                for i in range(count)))
        ids = conn.execute(sa.text("SELECT id FROM volumes ORDER BY id")).scalars().all()
    return db, sid, list(ids)


def test_hook_write_refused_at_commit_is_written_again(galera_url, caplog):
    from hook_drivers import DistinctDriver

    from cinder_promote.hook import update_host_replication

    caplog.set_level(logging.INFO, logger="cinder_promote")
    db, sid, ids = _service_with_volumes(galera_url, 3000)
    progress, conflicts, other = _conflict_at_commit(galera_url, ids[0], times=1)
    engine = open_engine(galera.on_node(galera_url, 2))
    try:
        result = update_host_replication(engine, DistinctDriver(), host="node-b@be", progress=progress)
    finally:
        engine.dispose()
        other.dispose()
    assert conflicts == [ids[0]], "the conflicting commit happened"
    assert any("the write of service 'node-b@be' lost a race" in r.getMessage() for r in caplog.records)
    assert result.outcome == "done" and result.volumes_updated == 3000
    assert volume_statuses(db) == {"enabled": 3000}, "the second attempt wrote everything"
    assert row(db, "services", sid)["replication_status"] == "enabled"
    assert [e["state"] for e in journal(db)] == ["done"]
    db.dispose()


def test_hook_write_refused_at_every_commit_writes_nothing(galera_url):
    from hook_drivers import DistinctDriver

    from cinder_promote.db.connect import RACE_ATTEMPTS
    from cinder_promote.hook import update_host_replication

    db, sid, ids = _service_with_volumes(galera_url, 300)
    progress, conflicts, other = _conflict_at_commit(galera_url, ids[0], times=RACE_ATTEMPTS)
    engine = open_engine(galera.on_node(galera_url, 2))
    try:
        with pytest.raises(ConcurrentChange, match="while committing; rolled back"):
            update_host_replication(engine, DistinctDriver(), host="node-b@be", progress=progress)
    finally:
        engine.dispose()
        other.dispose()
    assert len(conflicts) == RACE_ATTEMPTS, "every attempt was refused at COMMIT"
    assert volume_statuses(db) == {"failed-over": 300}, "nothing of the driver's answer was written"
    assert row(db, "services", sid)["replication_status"] == "error", "the fence was released to 'error'"
    [entry] = journal(db)
    assert entry["state"] == "failed" and "while committing" in entry["error"]
    db.dispose()
