"""The hook across real processes: members of an active-active cluster
starting at once, and a process killed with SIGKILL in the middle of writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from scenario import cluster, journal, row, stopped_service

from cinder_promote.db import seed

TESTS = Path(__file__).parent
SCRIPT = str(Path(sys.executable).parent / "cinder-promote")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.pop("CINDER_PROMOTE_DB_URL", None)
    return env


def _statuses(db) -> dict[str, int]:
    with db.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT replication_status, count(*) FROM volumes WHERE deleted = :f GROUP BY replication_status"),
            {"f": False}).all())


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"], indirect=True)
def test_members_starting_at_once_run_the_driver_once(db, cinder_url, tmp_path):
    members = [f"node-{i}@be" for i in range(1, 5)]
    cid = cluster(db, "gold@be", members, replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(f"{members[i % 4]}#p", cluster_name="gold@be#p",
                                                replication_status="failed-over") for i in range(3000)))
    markers = tmp_path / "markers"
    markers.mkdir()
    procs = [
        subprocess.Popen(
            [SCRIPT, "--db-url", cinder_url, "update-host-replication", "--backend-host", host,
             "--driver", "hook_drivers:DistinctDriver", "--driver-option", f"marker_dir={markers}",
             "--driver-option", "delay=3", "--format", "json", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for host in members
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 4, results
    outcomes = sorted(json.loads(out)["outcome"] for _, out, _ in results)
    assert outcomes == ["done", "fenced", "fenced", "fenced"]
    assert len(list(markers.iterdir())) == 1, "the driver ran exactly once"
    assert _statuses(db) == {"enabled": 3000}
    assert row(db, "clusters", cid)["replication_status"] == "enabled", "no fence left"
    assert [e["state"] for e in journal(db)] == ["done"]


def test_sigkill_while_writing_then_takeover(db, cinder_url):
    sid = stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(f"node-b@be#p{i % 3}", replication_status="failed-over")
                                for i in range(30000)))
    command = [SCRIPT, "--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be",
               "--driver", "hook_drivers:DistinctDriver", "--lease-seconds", "2", "--format", "json"]
    victim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    seen = []
    for line in victim.stderr:  # progress lines
        seen.append(line)
        if "with distinct values" in line:  # the set-based UPDATE is done, the distinct rows are being written
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=60)
    victim.stdout.close()
    victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL, seen
    assert _statuses(db) == {"failed-over": 30000}, "killed before COMMIT: every volume is as it was"
    [first] = journal(db)
    assert first["state"] == "running" and row(db, "services", sid)["replication_status"] == "updating"

    time.sleep(3)  # the lease (2 s) expires: the fence is stale
    again = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["outcome"] == "done" and out["taken_over_from"] == first["id"]
    assert out["status_before"] == "enabled"
    assert _statuses(db) == {"enabled": 30000}
    assert row(db, "services", sid)["replication_status"] == "enabled"
    assert [e["state"] for e in journal(db)] == ["taken-over", "done"]
