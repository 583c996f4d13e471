"""The startup hook update_host_replication on real Cinder databases."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import HOOK_DIALECTS, hook_dialect, snapshot
from hook_drivers import AnswerDriver, DistinctDriver, NoHookDriver
from scenario import cluster, journal, row, stopped_service

from cinder_promote.db import bulk
from cinder_promote.db import journal as journal_sql
from cinder_promote.db import seed
from cinder_promote.errors import HookFailed
from cinder_promote.hook import update_host_replication
from cinder_promote.models import utcnow

HOST = "node-b@be"


@pytest.fixture(params=HOOK_DIALECTS)
def dialect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return hook_dialect(request, monkeypatch)


def _backend(db, n_volumes=120, n_groups=6, status="enabled"):
    """The service (stopped, just reset to `status`) with volumes in two pools, plus noise that must not move."""
    sid = stopped_service(db, HOST, replication_status=status, active_backend_id=None)
    with db.begin() as conn:
        mine = [seed.volume_row(f"{HOST}#pool{i % 2}", replication_status="failed-over", status="available")
                for i in range(n_volumes)]
        seed.add_volumes(conn, mine)
        noise = [seed.volume_row(f"{HOST}#pool0", deleted=True, deleted_at=utcnow(), replication_status="failed-over"),
                 seed.volume_row("node-c@be#pool0", replication_status="failed-over"),
                 seed.volume_row("node-b@be2#pool0", replication_status="failed-over"),
                 seed.volume_row("node-b@bex#p", replication_status="failed-over"),
                 seed.volume_row("node-b@be_", replication_status="failed-over")]
        seed.add_volumes(conn, noise)
        seed.add_groups(conn, [seed.group_row(HOST, replication_status="failed-over") for _ in range(n_groups)])
        seed.add_groups(conn, [seed.group_row("node-c@be", replication_status="failed-over")])
    return sid, [v["id"] for v in mine], [v["id"] for v in noise]


def _volumes(db, ids):
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM volumes")).mappings().all()
    return {r["id"]: dict(r) for r in rows if r["id"] in set(ids)}


def test_good_path(db):
    sid, mine, noise = _backend(db)
    noise_before = _volumes(db, noise)
    heartbeat = row(db, "services", sid)["updated_at"]
    driver = DistinctDriver(service_status="enabled")

    result = update_host_replication(db, driver, host=HOST, context="ctx")

    assert result.outcome == "done", result.message
    assert driver.seen["status"] == "enabled" and driver.seen["backend"] is None and driver.seen["context"] == "ctx"
    assert driver.seen["volumes"] == sorted(mine), "the backend's live volumes, pools included, and no others"
    assert driver.seen["hosts"] == {f"{HOST}#pool0", f"{HOST}#pool1"}
    assert len(driver.seen["groups"]) == 6
    assert (result.volumes_updated, result.groups_updated) == (len(mine), 6)
    after = _volumes(db, mine)
    for i, vid in enumerate(sorted(mine)):
        v = after[vid]
        assert v["replication_status"] == "enabled"
        if i % 3 == 0:
            assert (v["replication_driver_data"], v["status"], v["previous_status"]) == (f"pair-{vid}", "in-use", "available")
        elif i % 3 == 1:
            assert (v["replication_driver_data"], v["status"], v["previous_status"]) == (f"pair-{vid}", "available", None)
        else:
            assert (v["replication_extended_status"], v["replication_driver_data"]) == ("shared", None)
    assert _volumes(db, noise) == noise_before
    with db.connect() as conn:
        groups = conn.execute(sa.text("SELECT host, replication_status FROM groups")).all()
    assert sorted(groups) == sorted([(HOST, "enabled")] * 6 + [("node-c@be", "failed-over")])
    service = row(db, "services", sid)
    assert service["replication_status"] == "enabled" and service["updated_at"] == heartbeat
    [entry] = journal(db)
    assert (entry["operation"], entry["state"], entry["status_before"]) == ("update-host-replication", "done", "enabled")
    assert json.loads(entry["counts_json"]) == {"volumes": len(mine), "groups": 6,
                                                "volumes_unchanged": 0, "groups_unchanged": 0}
    assert json.loads(entry["after_json"]) == {"replication_status": "enabled", "active_backend_id": None,
                                               "set_by_driver": ["replication_status"]}
    assert entry["lease_expires_at"] is None
    assert (result.changed, result.service_update) == (True, {"replication_status": "enabled"})


def test_restarts_with_the_same_answer_write_nothing(db, monkeypatch):
    """Every start runs the hook; an answer equal to what the rows hold writes no row and
    leaves one `unchanged` journal entry per target, however many restarts, on the
    engine's own connection (PostgreSQL: no asyncpg connection opened for no row)."""
    sid, mine, _ = _backend(db)
    driver = DistinctDriver(service_status="enabled")
    first = update_host_replication(db, driver, host=HOST)
    assert first.changed and first.volumes_updated == len(mine)
    written = _volumes(db, mine)

    def no_second_connection(engine):
        raise AssertionError("a write of no row opened the asyncpg connection")

    monkeypatch.setattr(bulk, "_asyncpg_transaction", no_second_connection)
    later = [update_host_replication(db, driver, host=HOST) for _ in range(3)]
    assert [(r.outcome, r.changed, r.volumes_updated, r.groups_updated) for r in later] == [("done", False, 0, 0)] * 3
    assert "nothing was written" in later[-1].message
    assert _volumes(db, mine) == written, "no volume row written: updated_at untouched"
    assert [(e["id"], e["state"]) for e in journal(db)] == [(first.journal_id, "done"), (later[-1].journal_id, "unchanged")]
    assert row(db, "services", sid)["replication_status"] == "enabled"


def test_without_a_service_update_the_status_is_not_the_drivers(db):
    """A driver that returns no service update leaves Cinder's own derivation in charge
    (cinder_integration.hook_set_replication_status): the result says it set nothing."""
    sid = stopped_service(db, HOST, replication_status="not-capable", active_backend_id=None)
    result = update_host_replication(db, AnswerDriver((None, [], None)), host=HOST)
    assert (result.outcome, result.changed, result.service_update) == ("done", False, {})
    assert result.status_after == "not-capable" and row(db, "services", sid)["replication_status"] == "not-capable"
    [entry] = journal(db)
    assert entry["state"] == "unchanged" and json.loads(entry["after_json"])["set_by_driver"] == []


def _count_volume_writes(db) -> None:
    """A trigger that counts every UPDATE of a volume row into `volume_writes`, whether or
    not it changes a value (test instrumentation on the test's own database)."""
    statements = {
        "sqlite": ["CREATE TRIGGER count_volume_writes AFTER UPDATE ON volumes"
                   " BEGIN UPDATE volume_writes SET n = n + 1; END"],
        "postgresql": ["CREATE FUNCTION count_volume_writes() RETURNS trigger LANGUAGE plpgsql AS"
                       " $$ BEGIN UPDATE volume_writes SET n = n + 1; RETURN NULL; END $$",
                       "CREATE TRIGGER count_volume_writes AFTER UPDATE ON volumes FOR EACH ROW"
                       " EXECUTE FUNCTION count_volume_writes()"],
        "mysql": ["CREATE TRIGGER count_volume_writes AFTER UPDATE ON volumes FOR EACH ROW"
                  " UPDATE volume_writes SET n = n + 1"],
    }[db.dialect.name]
    with db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE volume_writes (n INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO volume_writes (n) VALUES (0)"))
        for statement in statements:
            conn.execute(sa.text(statement))


def _volume_writes(db) -> int:
    with db.connect() as conn:
        return conn.execute(sa.text("SELECT n FROM volume_writes")).scalar_one()


def test_the_same_answer_again_writes_no_volume(db):
    """A restart with an unchanged answer: the planner drops every value the rows hold
    already, so no volume row is written (its updated_at untouched) and none is counted."""
    sid, mine, _ = _backend(db)
    _count_volume_writes(db)
    first = update_host_replication(db, DistinctDriver(), host=HOST)
    assert (first.outcome, first.volumes_updated, first.groups_updated) == ("done", len(mine), 6)
    assert _volume_writes(db) >= len(mine), "the trigger counts the first run's writes"
    stamp = datetime(2001, 2, 3, 4, 5, 6)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE volumes SET updated_at = :t"), {"t": stamp})
        conn.execute(sa.text("UPDATE volume_writes SET n = 0"))
    before = _volumes(db, mine)

    again = update_host_replication(db, DistinctDriver(), host=HOST)

    assert (again.outcome, again.volumes_updated, again.groups_updated) == ("done", 0, 0)
    assert _volume_writes(db) == 0
    after = _volumes(db, mine)
    assert after == before
    assert {str(v["updated_at"]) for v in after.values()} == {str(stamp)}  # SQLite reads text here
    assert row(db, "services", sid)["replication_status"] == "enabled"


def test_service_update_sets_status_and_backend(db):
    sid, mine, _ = _backend(db, n_volumes=3, n_groups=0)
    driver = AnswerDriver(lambda vols, groups: ({"replication_status": "failed-over", "active_backend_id": "backend-c"}, [], None))
    result = update_host_replication(db, driver, host=HOST)
    assert result.outcome == "done" and result.status_after == "failed-over"
    service = row(db, "services", sid)
    assert (service["replication_status"], service["active_backend_id"]) == ("failed-over", "backend-c")


def test_driver_sees_python_values_on_every_database(db):
    """Records are read straight from each database driver's cursor: every column must still
    read as Cinder's objects give it (bool, int, naive datetime), whatever the database stores."""
    _backend(db, n_volumes=3, n_groups=1)
    seen = {}

    def answer(vols, groups):
        seen["volume"], seen["group"] = vols[0], groups[0]
        return None, [], None

    assert update_host_replication(db, AnswerDriver(answer), host=HOST).outcome == "done"
    volume, group = seen["volume"], seen["group"]
    for record in (volume, group):
        assert record.deleted is False and record.deleted_at is None
        assert isinstance(record.created_at, datetime) and record.created_at.tzinfo is None
        assert record["host"] == record.host and record.host.startswith(HOST)
    assert volume.multiattach is False and volume.bootable is False and volume.use_quota is True
    assert type(volume.size) is int and volume.size == 1
    assert volume.name == f"volume-{volume.id}"


def test_no_hook_method_writes_nothing(db):
    _backend(db, n_volumes=5)
    before = snapshot(db)
    result = update_host_replication(db, NoHookDriver(), host=HOST)
    assert result.outcome == "no-hook"
    assert snapshot(db) == before



BAD_ANSWERS = {
    "foreign id": (lambda ids: lambda v, g: (None, [{"volume_id": ids["foreign"], "updates": {"status": "error"}}], None),
                   "volume_updates[0]: volume '{foreign}' is not a live volume of this backend (it belongs to host 'node-c@be#pool0')"),
    # The id runs to the last quote: a reason found for the part before its first quote would name another volume.
    "quote in id": (lambda ids: lambda v, g: (None, [{"volume_id": ids["foreign"] + "'x", "updates": {"status": "error"}}], None),
                    "volume_updates[0]: volume '{foreign}'x' is not a live volume of this backend (no such id)"),
    "deleted id": (lambda ids: lambda v, g: (None, [{"volume_id": ids["deleted"], "updates": {"status": "error"}}], None),
                   "volume_updates[0]: volume '{deleted}' is not a live volume of this backend (it is deleted)"),
    "unknown key": (lambda ids: lambda v, g: (None, [{"volume_id": v[1].id, "updates": {"size": "2"}}], None),
                    "volume_updates[0]: key 'size' may not be updated"),
    "oversize value": (lambda ids: lambda v, g: (None, [{"volume_id": v[0].id, "updates": {"provider_location": "x" * 257}}], None),
                       "volume_updates[0]: 'provider_location' is 257 characters; the column holds 256"),
    "duplicate": (lambda ids: lambda v, g: (None, [{"volume_id": v[0].id, "updates": {"status": "error"}},
                                                   {"volume_id": v[0].id, "updates": {"status": "available"}}], None),
                  "volume_updates[1]: volume '{first}' appears more than once (first at [0])"),
    "wrong shape": (lambda ids: lambda v, g: {"volume_updates": []},
                    "the answer: expected (service_update, volume_updates, group_updates), got dict"),
    "wrong entry": (lambda ids: lambda v, g: (None, [("id", {})], None),
                    "volume_updates[0]: expected a dict with 'volume_id' and 'updates', got tuple"),
    "bad status": (lambda ids: lambda v, g: ({"replication_status": "updating"}, [], None),
                   "service_update: invalid replication_status 'updating'"),
    "bad group": (lambda ids: lambda v, g: (None, [], [{"group_id": g[0].id, "updates": {"replication_status": "on"}}]),
                  "group_updates[0]: invalid replication_status 'on'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_bad_answers_write_nothing(db, case):
    sid, mine, noise = _backend(db, n_volumes=40, n_groups=2)
    ids = {"foreign": noise[1], "deleted": noise[0], "first": sorted(mine)[0]}
    make, expected = BAD_ANSWERS[case]
    before = snapshot(db)
    with pytest.raises(HookFailed) as err:
        update_host_replication(db, AnswerDriver(make(ids)), host=HOST)
    expected = expected.format(**ids)
    assert any(expected in line for line in err.value.details), err.value.details
    assert "the fence was released to 'error'" in err.value.message
    after = snapshot(db)
    assert after["volumes"] == before["volumes"] and after["groups"] == before["groups"]
    assert row(db, "services", sid)["replication_status"] == "error"
    [entry] = journal(db)
    assert entry["state"] == "failed" and expected in entry["error"]


def test_raising_driver(db):
    sid, _, _ = _backend(db, n_volumes=5)
    before = snapshot(db)
    with pytest.raises(HookFailed, match="raised RuntimeError: the array is on fire; nothing was written"):
        update_host_replication(db, AnswerDriver(raises=RuntimeError("the array is on fire")), host=HOST)
    assert snapshot(db)["volumes"] == before["volumes"]
    assert row(db, "services", sid)["replication_status"] == "error"
    assert "RuntimeError: the array is on fire" in journal(db)[0]["error"]


def _fence_by(db, target_kind, target, *, holder, lease_seconds, status_before):
    journal_sql.ensure_table(db)
    now = utcnow()
    table = "clusters" if target_kind == "cluster" else "services"
    column = "name" if target_kind == "cluster" else "host"
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET replication_status = 'updating' WHERE {column} = :t"), {"t": target})
        return journal_sql.insert(conn, now=now, operation="update-host-replication", target_kind=target_kind,
                                  target=target, state="running", holder=holder,
                                  lease_expires_at=now + timedelta(seconds=lease_seconds), status_before=status_before)


def test_live_fence_leaves_the_work_to_its_holder(db):
    _backend(db, n_volumes=5)
    _fence_by(db, "service", HOST, holder="other:1", lease_seconds=300, status_before="enabled")
    before = snapshot(db)
    driver = AnswerDriver(lambda v, g: (None, [], None))
    result = update_host_replication(db, driver, host=HOST)
    assert result.outcome == "fenced" and "held by other:1" in result.message
    assert driver.calls == 0
    assert snapshot(db) == before


def test_a_waiting_member_sees_the_holder_release_or_gives_up(db):
    """wait_for_fence (what a starting cluster member does): the holder's release ends the
    wait with the holder's journal entry; a fence still live after the wait is left alone."""
    _backend(db, n_volumes=5)
    entry = _fence_by(db, "service", HOST, holder="other:1", lease_seconds=300, status_before="enabled")
    driver = AnswerDriver(lambda v, g: (None, [], None))

    def release_soon() -> None:
        time.sleep(1.5)
        with db.begin() as conn:
            journal_sql.finish(conn, entry, "other:1", state=journal_sql.DONE, now=utcnow(),
                               after={"replication_status": "enabled", "active_backend_id": None,
                                      "set_by_driver": []})
            conn.execute(sa.text("UPDATE services SET replication_status = 'enabled' WHERE host = :h"), {"h": HOST})

    releaser = threading.Thread(target=release_soon)
    releaser.start()
    result = update_host_replication(db, driver, host=HOST, wait_for_fence=60)
    releaser.join()
    assert (result.outcome, result.journal_id, driver.calls) == ("fenced", entry, 0)
    assert "the fence has since been released" in result.message

    again = _fence_by(db, "service", HOST, holder="other:2", lease_seconds=300, status_before="enabled")
    before = snapshot(db)
    result = update_host_replication(db, driver, host=HOST, wait_for_fence=1.5)
    assert (result.outcome, result.journal_id, driver.calls) == ("fenced", again, 0)
    assert "still held after waiting 1.5 s" in result.message
    assert snapshot(db) == before


def test_a_fence_that_goes_stale_while_waiting_is_taken_over(db):
    _backend(db, n_volumes=5, status="disabled")
    old = _fence_by(db, "service", HOST, holder="dying:1", lease_seconds=2, status_before="enabled")
    driver = AnswerDriver(lambda v, g: (None, [], None))
    result = update_host_replication(db, driver, host=HOST, wait_for_fence=60)
    assert (result.outcome, result.taken_over_from, driver.calls) == ("done", old, 1)


def test_stale_fence_is_taken_over_with_the_status_before_it(db):
    sid, mine, _ = _backend(db, n_volumes=10, status="disabled")
    old = _fence_by(db, "service", HOST, holder="dead:1", lease_seconds=-1, status_before="enabled")
    driver = DistinctDriver()
    result = update_host_replication(db, driver, host=HOST)
    assert result.outcome == "done" and result.taken_over_from == old
    assert driver.seen["status"] == "enabled", "the driver hears the status recorded before the fence"
    entries = {e["id"]: e for e in journal(db)}
    assert entries[old]["state"] == "taken-over" and "taken over by" in entries[old]["error"]
    assert entries[result.journal_id]["state"] == "done"
    assert row(db, "services", sid)["replication_status"] == "enabled"


def test_cluster_hook_updates_cluster_row_and_members(db):
    cid = cluster(db, "gold@be", ["node-1@be", "node-2@be"], replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, [seed.volume_row(f"node-{1 + i % 2}@be#p", cluster_name="gold@be#p",
                                                replication_status="failed-over") for i in range(50)])
        seed.add_volumes(conn, [seed.volume_row("node-1@be#p", cluster_name=None, replication_status="failed-over")])
    driver = DistinctDriver(service_status="enabled")
    result = update_host_replication(db, driver, cluster="gold@be")
    assert result.outcome == "done" and result.target_kind == "cluster"
    assert len(driver.seen["volumes"]) == 50, "clustered: the cluster's volumes, by cluster_name"
    assert row(db, "clusters", cid)["replication_status"] == "enabled"
    with db.connect() as conn:
        statuses = conn.execute(sa.text(
            "SELECT replication_status, count(*) FROM volumes GROUP BY replication_status")).all()
    assert dict(statuses) == {"enabled": 50, "failed-over": 1}


def test_fence_of_a_dead_process_on_this_host_is_taken_over_at_once(db):
    """A service restarted right after a crash takes its own fence back without waiting for the lease."""
    import socket
    import subprocess

    _backend(db, n_volumes=5)
    gone = subprocess.Popen(["true"])
    gone.wait()
    old = _fence_by(db, "service", HOST, holder=f"{socket.gethostname()}:{gone.pid}", lease_seconds=300,
                    status_before="enabled")
    result = update_host_replication(db, DistinctDriver(), host=HOST)
    assert result.outcome == "done" and result.taken_over_from == old
    entries = {e["id"]: e for e in journal(db)}
    assert entries[old]["state"] == "taken-over" and "is dead" in entries[old]["error"]
