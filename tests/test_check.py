"""check: each finding code comes from a seeded real Cinder database and is absent on a clean one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa
from scenario import cluster, running_service, stopped_service

from cinder_promote import check
from cinder_promote.db import journal as journal_sql
from cinder_promote.db import seed
from cinder_promote.models import utcnow

CLEAN = {"replication_status": "enabled", "active_backend_id": None}


def _fence(db, host, *, holder, seconds, state="running", status="updating", error=None):
    journal_sql.ensure_table(db)
    now = utcnow()
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE services SET replication_status = :s WHERE host = :h"), {"h": host, "s": status})
        journal_sql.insert(conn, now=now, operation="update-host-replication", target_kind="service", target=host,
                           state=state, holder=holder, lease_expires_at=now + timedelta(seconds=seconds),
                           status_before="enabled", before={"replication_status": "enabled", "active_backend_id": None},
                           error=error)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _clean(db):
    stopped_service(db, "node-a@be", **CLEAN)
    cluster(db, "gold@be", ["node-1@be", "node-2@be"], **CLEAN)
    with db.begin() as conn:
        seed.add_volumes(conn, [seed.volume_row("node-a@be#p", replication_status="enabled") for _ in range(5)])
        seed.add_volumes(conn, [seed.volume_row("node-1@be#p", cluster_name="gold@be#p", replication_status="enabled")])
        seed.add_groups(conn, [seed.group_row("node-a@be", replication_status="enabled")])


SEEDS = {
    check.VOLUMES_CONTRADICT: lambda db: _add(db, seed.add_volumes, seed.volume_row("node-a@be#p", replication_status="failed-over")),
    check.GROUPS_CONTRADICT: lambda db: _add(db, seed.add_groups, seed.group_row("node-a@be", replication_status="failed-over")),
    check.STUCK_TRANSITIONAL: lambda db: stopped_service(db, "node-t@be", replication_status="failing-over"),
    check.STALE_FENCE: lambda db: _fence(db, "node-a@be", holder="gone:1", seconds=-10),
    check.UP_WHILE_PROMOTING: lambda db: (running_service(db, "node-u@be", **CLEAN),
                                          _fence(db, "node-u@be", holder="admin-box:77", seconds=300)),
    check.FENCED: lambda db: _fence(db, "node-a@be", holder="admin-box:77", seconds=300),
    check.HOOK_FAILED: lambda db: _fence(db, "node-a@be", holder="admin-box:77", seconds=300, state="failed",
                                         status="error", error="interrupted by SIGTERM"),
    check.LOST_BUT_REPLICATING: lambda db: _add(db, seed.add_volumes, seed.volume_row(
        "node-a@be#p", status="error", replication_status="enabled")),
}


def _add(db, adder, row):
    with db.begin() as conn:
        adder(conn, [row])


def _codes(cli, url):
    result = cli("--db-url", url, "check", "--format", "json")
    return result, [f["code"] for f in json.loads(result.stdout)["findings"]]


def test_clean_database_has_no_findings(cli, db, cinder_url):
    _clean(db)
    result, codes = _codes(cli, cinder_url)
    assert result.exit_code == 0 and codes == []
    assert "no findings" in cli("--db-url", cinder_url, "check").stdout


@pytest.mark.parametrize("code", check.CODES)
def test_each_finding(cli, db, cinder_url, code):
    _clean(db)
    if code == check.MEMBER_DISAGREES:
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE services SET replication_status = 'failed-over' WHERE host = 'node-2@be'"))
    else:
        SEEDS[code](db)
    result, codes = _codes(cli, cinder_url)
    assert result.exit_code == 1
    assert codes == [code]
    finding = json.loads(result.stdout)["findings"][0]
    assert finding["rows"] and finding["command"]
    if code == check.MEMBER_DISAGREES:
        assert {r.get("host") or r.get("name") for r in finding["rows"]} == {"gold@be", "node-2@be"}
        assert finding["command"] == "cinder-promote reset-active-backend --cluster gold@be --replication-status enabled"
    table = cli("--db-url", cinder_url, "check")
    assert table.exit_code == 1 and code in table.stdout


@pytest.mark.parametrize("holder, seconds, refused, code", [
    ("admin-box:77", 300, True, check.FENCED),  # another host's live lease
    ("here:self", 300, True, check.FENCED),  # a live process of this host
    ("here:dead", 300, False, check.STALE_FENCE),  # a dead process of this host: stale at once
    ("admin-box:77", -10, False, check.STALE_FENCE),  # an expired lease
])
def test_check_and_reset_agree_about_fences(cli, db, cinder_url, holder, seconds, refused, code):
    """Whenever reset refuses because of a fence, check names it; a stale fence's command clears it."""
    _clean(db)
    with db.begin() as conn:  # ready for a reset: stopped, disabled, frozen
        conn.execute(sa.text("UPDATE services SET disabled = :t, frozen = :t WHERE host = 'node-a@be'"), {"t": True})
    pid = {"self": os.getpid(), "dead": _dead_pid()}
    name, _, which = holder.rpartition(":")
    if name == "here":
        holder = f"{socket.gethostname()}:{pid[which]}"
    _fence(db, "node-a@be", holder=holder, seconds=seconds)
    result, codes = _codes(cli, cinder_url)
    assert codes == [code], result.stdout
    [finding] = json.loads(result.stdout)["findings"]
    assert "node-a@be" in finding["message"] and holder in finding["message"]
    if code == check.FENCED:
        alive = f"process {pid['self']} of this host, is running" if name == "here" else "runs on admin-box"
        assert alive in finding["message"]
    reset = cli("--db-url", cinder_url, "reset-active-backend", "--backend-host", "node-a@be",
                "--replication-status", "enabled")
    assert (reset.exit_code == 1) is refused, reset.stderr
    if refused:
        assert "fenced by the startup hook" in reset.stderr
    else:
        assert finding["command"].startswith(
            "cinder-promote reset-active-backend --backend-host node-a@be --replication-status enabled")
        assert _codes(cli, cinder_url)[1] == []


def test_after_an_undo_check_suggests_a_command_that_changes_something(cli, db, cinder_url):
    """The hook ran after the reset; the reset was undone: a new hook run would change nothing, undoing the undo does."""
    stopped_service(db, "node-a@be")
    with db.begin() as conn:
        seed.add_volumes(conn, [seed.volume_row("node-a@be#p", replication_status="failed-over") for _ in range(3)])
    url = ("--db-url", cinder_url)
    assert cli(*url, "reset-active-backend", "--backend-host", "node-a@be", "--enable-replication").exit_code == 0
    hook = cli(*url, "update-host-replication", "--backend-host", "node-a@be",
               "--driver", "cinder_promote.drivers.reference:ReferenceDriver", "--quiet")
    assert hook.exit_code == 0, hook.stderr
    assert cli(*url, "undo", "1").exit_code == 0
    result, codes = _codes(cli, cinder_url)
    assert codes == [check.VOLUMES_CONTRADICT]
    command = json.loads(result.stdout)["findings"][0]["command"]
    assert command.startswith("cinder-promote undo 3 ")
    assert cli(*url, *command.split(" (")[0].split()[1:]).exit_code == 0
    assert _codes(cli, cinder_url)[1] == []


def test_lost_volumes_are_reported_per_cluster_and_named(cli, db, cinder_url):
    _clean(db)
    lost = [seed.volume_row("node-1@be#p", cluster_name="gold@be#p", status="error", replication_status="enabled")
            for _ in range(12)]
    with db.begin() as conn:
        seed.add_volumes(conn, lost)
    result, codes = _codes(cli, cinder_url)
    assert (result.exit_code, codes) == (1, [check.LOST_BUT_REPLICATING])
    finding = json.loads(result.stdout)["findings"][0]
    assert "12 volume(s) of cluster 'gold@be'" in finding["message"] and "and 2 more" in finding["message"]
    assert sorted(r["id"] for r in finding["rows"]) == sorted(v["id"] for v in lost)
    assert "force-delete" in finding["command"]
