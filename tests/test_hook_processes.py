"""The hook across real processes: members of an active-active cluster
starting at once, and a process killed with SIGKILL in the middle of writing."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from scenario import journal, row, stopped_service
from support.hook_processes import SCRIPT, cluster_with_volumes, env, start_members, volume_statuses

from cinder_promote.db import seed

@pytest.mark.parametrize("dialect", ["postgresql", "mysql"], indirect=True)
def test_members_starting_at_once_run_the_driver_once(db, cinder_url, tmp_path):
    members = [f"node-{i}@be" for i in range(1, 5)]
    cid = cluster_with_volumes(db, members, 3000)
    markers = tmp_path / "markers"
    markers.mkdir()
    procs = start_members([(cinder_url, host) for host in members], markers)
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 4, results
    outcomes = sorted(json.loads(out)["outcome"] for _, out, _ in results)
    assert outcomes == ["done", "fenced", "fenced", "fenced"]
    assert len(list(markers.iterdir())) == 1, "the driver ran exactly once"
    assert volume_statuses(db) == {"enabled": 3000}
    assert row(db, "clusters", cid)["replication_status"] == "enabled", "no fence left"
    assert [e["state"] for e in journal(db)] == ["done"]


def test_sigkill_while_writing_then_takeover(db, cinder_url):
    sid = stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(f"node-b@be#p{i % 3}", replication_status="failed-over")
                                for i in range(30000)))
    command = [SCRIPT, "--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be",
               "--driver", "hook_drivers:DistinctDriver", "--lease-seconds", "2", "--format", "json"]
    victim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
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
    assert volume_statuses(db) == {"failed-over": 30000}, "killed before COMMIT: every volume is as it was"
    [first] = journal(db)
    assert first["state"] == "running" and row(db, "services", sid)["replication_status"] == "updating"

    time.sleep(3)  # the lease (2 s) expires: the fence is stale
    again = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=300)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["outcome"] == "done" and out["taken_over_from"] == first["id"]
    assert out["status_before"] == "enabled"
    assert volume_statuses(db) == {"enabled": 30000}
    assert row(db, "services", sid)["replication_status"] == "enabled"
    assert [e["state"] for e in journal(db)] == ["taken-over", "done"]
