"""reset-active-backend on real Cinder databases (SQLite, PostgreSQL, MariaDB,
and the 3-node Galera cluster: there the command writes through node 2 while
the test sets up and checks through node 1)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import WITH_GALERA, snapshot
from scenario import cluster, journal, row, running_service, stopped_service

from cinder_promote.db import seed
from cinder_promote.models import utcnow


@pytest.fixture(params=WITH_GALERA)
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


def reset(cli, url, *args):
    return cli("--db-url", url, "reset-active-backend", *args)


def test_reset_standalone_service(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@replicated")
    other = stopped_service(db, "node-c@replicated")
    heartbeat = row(db, "services", sid)["updated_at"]

    result = reset(cli, cinder_url, "--backend-host", "node-b@replicated", "--enable-replication", "--format", "json")

    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["operation"] == "reset-active-backend" and out["dry_run"] is False and out["changed"] is True
    assert out["rows"] == [{
        "table": "services", "id": sid, "host": "node-b@replicated",
        "before": {"replication_status": "failed-over", "active_backend_id": "backend-b"},
        "after": {"replication_status": "enabled", "active_backend_id": None},
    }]
    after = row(db, "services", sid)
    assert (after["replication_status"], after["active_backend_id"]) == ("enabled", None)
    assert after["updated_at"] == heartbeat, "the heartbeat must never be written"
    assert bool(after["disabled"]) and bool(after["frozen"]), "services stay disabled and frozen by default"
    assert row(db, "services", other)["replication_status"] == "failed-over"
    [entry] = journal(db)
    assert entry["id"] == out["journal_id"] and entry["state"] == "done"
    assert entry["operation"] == "reset-active-backend" and entry["target"] == "node-b@replicated"
    assert json.loads(entry["before_json"])[0]["values"]["replication_status"] == "failed-over"
    assert json.loads(entry["after_json"])[0]["values"]["replication_status"] == "enabled"


def test_defaults_and_explicit_values(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--active-backend-id", "backend-c")
    assert result.exit_code == 0, result.stderr
    after = row(db, "services", sid)
    assert (after["replication_status"], after["active_backend_id"]) == ("disabled", "backend-c")
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--replication-status", "not-capable")
    assert result.exit_code == 0, result.stderr
    assert row(db, "services", sid)["replication_status"] == "not-capable"
    assert row(db, "services", sid)["active_backend_id"] is None


def test_enable_service_reenables(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-service", "--format", "json")
    assert result.exit_code == 0, result.stderr
    after = row(db, "services", sid)
    assert not after["disabled"] and after["disabled_reason"] is None and after["frozen"]
    assert json.loads(result.stdout)["rows"][0]["after"]["disabled"] is False


def test_rerun_is_idempotent(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    assert reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-service").exit_code == 0
    before = snapshot(db)
    # Now enabled: a precondition would fail, but there is nothing to do.
    again = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-service", "--format", "json")
    assert again.exit_code == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["changed"] is False and out["journal_id"] is None
    assert snapshot(db) == before
    table = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-service")
    assert "already in the requested state" in table.stdout


def test_dry_run_writes_nothing(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    before = snapshot(db)
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication", "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["dry_run"] is True and out["changed"] is False and out["journal_id"] is None
    assert out["rows"][0]["after"]["replication_status"] == "enabled"
    assert snapshot(db) == before
    assert "cinder_promote_journal" not in snapshot(db), "a dry run does not even create the journal"


@pytest.mark.parametrize(
    "values, reason",
    [
        ({"disabled": False}, "is not disabled"),
        ({"frozen": False}, "is not frozen"),
        ({"frozen": None}, "is not frozen"),
    ],
)
def test_refusals_write_nothing(cli, db, cinder_url, values, reason):
    stopped_service(db, "node-b@be", **values)
    before = snapshot(db)
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication")
    assert result.exit_code == 1
    assert "refused to reset service 'node-b@be'" in result.stderr and "nothing was written" in result.stderr
    assert reason in result.stderr and "'node-b@be'" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(db) == before


def test_running_service_refused_with_every_reason(cli, db, cinder_url):
    running_service(db, "node-b@be", disabled=False, frozen=False)
    before = snapshot(db)
    result = reset(cli, cinder_url, "--backend-host", "node-b@be")
    assert result.exit_code == 1
    assert "3 precondition(s) failed" in result.stderr
    for reason in ("is running: its last heartbeat was", "is not disabled", "is not frozen"):
        assert reason in result.stderr
    assert snapshot(db) == before


def test_heartbeat_rule_follows_service_down_time(cli, db, cinder_url, tmp_path):
    with db.begin() as conn:
        seed.add_service(conn, "node-b@be", now=utcnow() - timedelta(seconds=90), **{
            "replication_status": "failed-over", "disabled": True, "frozen": True})
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"[DEFAULT]\nservice_down_time = 120\n[database]\nconnection = {cinder_url}\n")
    refused = cli("--config-file", str(conf), "reset-active-backend", "--backend-host", "node-b@be")
    assert refused.exit_code == 1 and "service_down_time is 120s" in refused.stderr
    # With Cinder's default of 60 s, a heartbeat 90 s old means stopped.
    assert reset(cli, cinder_url, "--backend-host", "node-b@be").exit_code == 0


def test_never_reported_service_uses_created_at(cli, db, cinder_url):
    with db.begin() as conn:
        sid = seed.add_service(conn, "node-b@be", now=utcnow() - timedelta(hours=1), updated_at=None,
                               replication_status="failed-over", disabled=True, frozen=True)
    assert reset(cli, cinder_url, "--backend-host", "node-b@be").exit_code == 0
    assert row(db, "services", sid)["updated_at"] is None


def test_unknown_host(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    before = snapshot(db)
    result = reset(cli, cinder_url, "--backend-host", "node-x@be")
    assert result.exit_code == 1
    assert "no cinder-volume service with host 'node-x@be'" in result.stderr
    assert snapshot(db) == before


def test_other_binaries_are_not_targets(cli, db, cinder_url):
    with db.begin() as conn:
        seed.add_service(conn, "node-b@be", now=utcnow() - timedelta(hours=1), binary="cinder-backup",
                         disabled=True, frozen=True)
    assert reset(cli, cinder_url, "--backend-host", "node-b@be").exit_code == 1


def test_host_without_backend_is_ambiguous(cli, db, cinder_url):
    stopped_service(db, "node-b@lvm")
    stopped_service(db, "node-b@ceph")
    before = snapshot(db)
    result = reset(cli, cinder_url, "--backend-host", "node-b")
    assert result.exit_code == 1
    assert "'node-b' matches several backends: node-b@ceph, node-b@lvm" in result.stderr
    assert snapshot(db) == before


def test_host_without_backend_matching_one(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@lvm")
    result = reset(cli, cinder_url, "--backend-host", "node-b", "--enable-replication")
    assert result.exit_code == 0, result.stderr
    assert row(db, "services", sid)["replication_status"] == "enabled"


def test_deleted_twin_rows_are_ignored(cli, db, cinder_url):
    deleted = stopped_service(db, "node-b@be", deleted=True, deleted_at=utcnow(), replication_status="error")
    live = stopped_service(db, "node-b@be")
    only_deleted = stopped_service(db, "node-d@be", deleted=True, deleted_at=utcnow())
    deleted_row = row(db, "services", deleted)
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication")
    assert result.exit_code == 0, result.stderr
    assert row(db, "services", live)["replication_status"] == "enabled"
    assert row(db, "services", deleted) == deleted_row
    before = snapshot(db)
    gone = reset(cli, cinder_url, "--backend-host", "node-d@be")
    assert gone.exit_code == 1 and "no cinder-volume service" in gone.stderr
    assert row(db, "services", only_deleted)["replication_status"] == "failed-over"
    assert snapshot(db) == before


@pytest.mark.parametrize("selector", [("--cluster", "gold@be"), ("--backend-host", "node-2@be")])
def test_cluster_resets_row_and_live_members(cli, db, cinder_url, selector):
    cid = cluster(db, "gold@be", ["node-1@be", "node-2@be"])
    gone = stopped_service(db, "node-3@be", cluster_name="gold@be", deleted=True, deleted_at=utcnow())
    gone_row = row(db, "services", gone)
    result = reset(cli, cinder_url, *selector, "--enable-replication", "--active-backend-id", "backend-c",
                   "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(r["table"], r.get("host") or r.get("name")) for r in out["rows"]] == [
        ("clusters", "gold@be"), ("services", "node-1@be"), ("services", "node-2@be")]
    assert row(db, "clusters", cid)["replication_status"] == "enabled"
    assert row(db, "clusters", cid)["active_backend_id"] == "backend-c"
    with db.connect() as conn:
        members = conn.execute(sa.text(
            "SELECT replication_status, active_backend_id FROM services WHERE cluster_name = 'gold@be' AND deleted = :f"
        ), {"f": False}).all()
    assert sorted(members) == [("enabled", "backend-c")] * 2
    assert row(db, "services", gone) == gone_row
    [entry] = journal(db)
    assert (entry["target_kind"], entry["target"]) == ("cluster", "gold@be")


def test_cluster_with_one_member_up_is_refused(cli, db, cinder_url):
    cluster(db, "gold@be", ["node-1@be", "node-2@be"], running=("node-2@be",))
    before = snapshot(db)
    result = reset(cli, cinder_url, "--cluster", "gold@be", "--enable-replication")
    assert result.exit_code == 1
    assert "service 'node-2@be'" in result.stderr and "is running" in result.stderr
    assert "node-1@be" not in result.stderr
    assert snapshot(db) == before


def test_cluster_row_must_be_disabled_and_frozen(cli, db, cinder_url):
    cluster(db, "gold@be", ["node-1@be"], disabled=False, frozen=False)
    before = snapshot(db)
    result = reset(cli, cinder_url, "--cluster", "gold@be")
    assert result.exit_code == 1
    assert "cluster 'gold@be'" in result.stderr
    assert "is not disabled" in result.stderr and "is not frozen" in result.stderr
    assert snapshot(db) == before


def test_unknown_cluster(cli, db, cinder_url):
    result = reset(cli, cinder_url, "--cluster", "gold@be")
    assert result.exit_code == 1 and "no cinder-volume cluster named 'gold@be'" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend-host", "node-b@be", "--replication-status", "promoted"], "invalid replication status 'promoted'"),
        (["--backend-host", "node-b@be", "--replication-status", "updating"], "reserved for the startup hook's fence"),
        (["--backend-host", "node-b@be", "--cluster", "gold@be"], "exactly one of --backend-host HOST or --cluster NAME"),
        ([], "exactly one of --backend-host HOST or --cluster NAME"),
        (["--backend-host", "node-b@be", "--enable-replication", "--replication-status", "disabled"],
         "--enable-replication sets the status to 'enabled'"),
        (["--backend-host", "node-b@be#pool"], "'#pool' names a pool"),
        (["--backend-host", "node b@be"], "contains whitespace"),
        (["--backend-host", "node-b@be", "--active-backend-id", ""], "--active-backend-id must be 1 to 255"),
    ],
)
def test_usage_errors_exit_2(cli, db, cinder_url, args, message):
    stopped_service(db, "node-b@be")
    before = snapshot(db)
    result = reset(cli, cinder_url, *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot(db) == before


def test_enable_replication_agrees_with_explicit_enabled(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication", "--replication-status", "enabled")
    assert result.exit_code == 0, result.stderr
    assert row(db, "services", sid)["replication_status"] == "enabled"


def test_sql_and_like_wildcards_match_literally(cli, db, cinder_url):
    ids = {h: stopped_service(db, h) for h in ("a_b@x", "aXb@x", "a%b@x", "aYYb@x", "o'neil@x", "o'neil@y")}
    before = snapshot(db)
    assert reset(cli, cinder_url, "--backend-host", "a%").exit_code == 1
    assert reset(cli, cinder_url, "--backend-host", "a_b@%").exit_code == 1
    assert reset(cli, cinder_url, "--backend-host", "o'neil'OR'1'='1").exit_code == 1
    assert snapshot(db) == before
    assert reset(cli, cinder_url, "--backend-host", "a_b", "--enable-replication").exit_code == 0
    assert reset(cli, cinder_url, "--backend-host", "a%b@x", "--enable-replication").exit_code == 0
    assert reset(cli, cinder_url, "--backend-host", "o'neil@y", "--enable-replication").exit_code == 0
    changed = {h for h, i in ids.items() if row(db, "services", i)["replication_status"] == "enabled"}
    assert changed == {"a_b@x", "a%b@x", "o'neil@y"}


def _fence(db, host, *, lease_seconds):
    """A fence as the startup hook leaves it: status `updating` and a running journal entry."""
    from cinder_promote.db import journal as journal_sql

    journal_sql.ensure_table(db)
    now = utcnow()
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE services SET replication_status = 'updating' WHERE host = :h"), {"h": host})
        return journal_sql.insert(conn, now=now, operation="update-host-replication", target_kind="service",
                                  target=host, state="running", holder="node-b:4242",
                                  lease_expires_at=now + timedelta(seconds=lease_seconds), status_before="failed-over")


def test_live_fence_is_refused(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    _fence(db, "node-b@be", lease_seconds=300)
    before = snapshot(db)
    result = reset(cli, cinder_url, "--backend-host", "node-b@be")
    assert result.exit_code == 1
    assert "fenced by the startup hook: held by node-b:4242" in result.stderr
    assert snapshot(db) == before


def test_stale_fence_is_cleared(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    fence_id = _fence(db, "node-b@be", lease_seconds=-5)
    result = reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert row(db, "services", sid)["replication_status"] == "enabled"
    entries = {e["id"]: e for e in journal(db)}
    assert entries[fence_id]["state"] == "taken-over"
    assert json.loads(result.stdout)["rows"][0]["before"]["replication_status"] == "updating"


def test_reference_engine_gives_the_same_reset(cli, db, cinder_url, both_engines):
    stopped_service(db, "node-b@be")
    bad = reset(cli, cinder_url, "--backend-host", "node-b@be", "--replication-status", "bogus")
    assert bad.exit_code == 2 and "invalid replication status 'bogus'" in bad.stderr
    assert reset(cli, cinder_url, "--backend-host", "node-b@be", "--enable-replication").exit_code == 0
