"""history and undo: undo restores exactly what a reset changed, and refuses when rows changed since."""

from __future__ import annotations

import json

import sqlalchemy as sa
from conftest import snapshot
from scenario import cluster, journal, row, stopped_service


def _reset(cli, url, *args):
    result = cli("--db-url", url, "reset-active-backend", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["journal_id"]


def test_undo_restores_exactly(cli, db, cinder_url):
    cid = cluster(db, "gold@be", ["node-1@be", "node-2@be"])
    sid = stopped_service(db, "node-b@be")
    before = {("clusters", cid): row(db, "clusters", cid), ("services", sid): row(db, "services", sid)}
    members_before = snapshot(db)["services"]
    jid = _reset(cli, cinder_url, "--cluster", "gold@be", "--enable-replication", "--enable-service",
                 "--active-backend-id", "backend-c")
    assert row(db, "clusters", cid)["replication_status"] == "enabled"

    result = cli("--db-url", cinder_url, "undo", str(jid), "--format", "json")

    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["operation"] == "undo" and out["changed"] is True
    assert row(db, "clusters", cid) == before[("clusters", cid)]
    assert snapshot(db)["services"] == members_before
    entries = journal(db)
    assert [(e["operation"], e["undo_of"]) for e in entries] == [("reset-active-backend", None), ("undo", jid)]
    again = cli("--db-url", cinder_url, "undo", str(jid))
    assert again.exit_code == 1 and f"already undone by journal {out['journal_id']}" in again.stderr
    redo = cli("--db-url", cinder_url, "undo", str(out["journal_id"]))
    assert redo.exit_code == 0, redo.stderr
    assert row(db, "clusters", cid)["replication_status"] == "enabled"


def test_undo_after_concurrent_change_is_refused(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    jid = _reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication")
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE services SET replication_status = 'error' WHERE id = :i"), {"i": sid})
    before = snapshot(db)
    result = cli("--db-url", cinder_url, "undo", str(jid))
    assert result.exit_code == 1
    assert "1 row(s) changed since; nothing was written" in result.stderr and "replication_status=error" in result.stderr
    assert snapshot(db) == before


def test_undo_refusals(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    assert cli("--db-url", cinder_url, "undo", "99").exit_code == 1
    _reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication")
    dry = cli("--db-url", cinder_url, "undo", "1", "--dry-run", "--format", "json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["dry_run"] is True
    assert row(db, "services", 1)["replication_status"] == "enabled"
    missing = cli("--db-url", cinder_url, "undo", "99")
    assert missing.exit_code == 1 and "no journal entry 99" in missing.stderr
    assert cli("--db-url", cinder_url, "undo", "x").exit_code == 2


def test_history_lists_entries(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    empty = cli("--db-url", cinder_url, "history", "--format", "json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["entries"] == []
    _reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication")
    result = cli("--db-url", cinder_url, "history", "--format", "json")
    [entry] = json.loads(result.stdout)["entries"]
    assert (entry["operation"], entry["target"], entry["state"]) == ("reset-active-backend", "node-b@be", "done")
    assert entry["before"][0]["values"]["replication_status"] == "failed-over"
    table = cli("--db-url", cinder_url, "history")
    assert "reset-active-backend" in table.stdout and "node-b@be: enabled" in table.stdout
