"""Two resets racing on one target: one wins, the other is refused (exit 1), nothing half-written.

To make the race real rather than lucky, the test holds a write lock on the
cluster row while both processes start: both read the same state, both block
on their first compare-and-swap, and the lock is released only once both
wait on it (seen in the server's lock tables; on SQLite, after a pause).
On Galera a row lock holds only on its own node, so the lock is taken on the
node the two processes write through (the barrier races across nodes are in
test_galera.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import WITH_GALERA
from scenario import cluster, journal

SCRIPT = shutil.which("cinder-promote", path=str(Path(sys.executable).parent)) or "cinder-promote"


def _waiting_on_locks(admin: sa.Connection, dialect: str) -> int:
    if dialect == "postgresql":
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    else:
        # Both processes stuck in their UPDATE of the locked row.
        query = ("SELECT count(*) FROM information_schema.processlist "
                 "WHERE db = DATABASE() AND info LIKE 'UPDATE clusters%'")
    count = int(admin.execute(sa.text(query)).scalar_one())
    admin.rollback()  # PostgreSQL snapshots its statistics once per transaction
    return count


@pytest.fixture(params=WITH_GALERA)
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


def test_two_resets_race(db, cinder_url, dialect):
    cid = cluster(db, "gold@be", ["node-1@be", "node-2@be", "node-3@be"])
    locking = sa.create_engine(cinder_url) if dialect == "galera" else db
    lock_holder = locking.connect()
    observer = locking.connect()
    tx = lock_holder.begin()
    if dialect == "sqlite":
        lock_holder.exec_driver_sql("UPDATE clusters SET race_preventer = race_preventer WHERE id = ?", (cid,))
    else:
        lock_holder.execute(sa.text("SELECT id FROM clusters WHERE id = :id FOR UPDATE"), {"id": cid})
    command = [SCRIPT, "--db-url", cinder_url, "reset-active-backend", "--cluster", "gold@be",
               "--enable-replication", "--format", "json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        if dialect == "sqlite":
            time.sleep(6)  # both processes start, read, and wait on the lock (busy timeout 30 s)
        else:
            while _waiting_on_locks(observer, dialect) < 2:
                assert time.monotonic() < deadline, "the two resets never both waited on the lock"
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.05)
    except BaseException:
        for p in procs:
            p.kill()
            p.communicate()
        raise
    finally:
        tx.rollback()
        lock_holder.close()
        observer.close()
        if locking is not db:
            locking.dispose()
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    winner = next(out for code, out, _ in results if code == 0)
    loser_err = next(err for code, _, err in results if code == 1)
    assert json.loads(winner)["changed"] is True
    assert "changed" in loser_err and "nothing was written" in loser_err and "Traceback" not in loser_err
    with db.connect() as conn:
        statuses = conn.execute(sa.text(
            "SELECT replication_status FROM services WHERE cluster_name = 'gold@be' "
            "UNION ALL SELECT replication_status FROM clusters WHERE id = :id"), {"id": cid}).scalars().all()
    assert statuses == ["enabled"] * 4
    assert [e["state"] for e in journal(db)] == ["done"]
