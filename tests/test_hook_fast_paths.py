"""The hook's fast paths on MariaDB/MySQL and Galera (docs/decisions.md):

- the load and the write through mysqlclient for a `mysql+pymysql://` URL: the
  driver must see the same records, types included, as through PyMySQL and on
  the other databases;
- an identical update written by one UPDATE of the target's rows after the
  exact-rows proof (SPEC section 5, amended), which must fall back to id chunks
  whenever the rows of the host are not exactly the named ones.

`CINDER_PROMOTE_FAST_PATHS=off` turns both off; test_hook.py runs every hook test
on MariaDB and Galera with them on and off.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import _factory, snapshot
from hook_drivers import AnswerDriver
from scenario import cluster, row, stopped_service
from support import galera

from cinder_promote.db import bulk, queries, seed
from cinder_promote.db.connect import FAST_PATHS_ENV, open_engine
from cinder_promote.drivers.bulk import same_for_all
from cinder_promote.errors import HookFailed
from cinder_promote.hook import update_host_replication
from cinder_promote.models import utcnow

HOST = "node-b@be"
SHARED = {"replication_status": "enabled", "replication_extended_status": "shared"}


@pytest.fixture(params=["mysql", "galera"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def engine(cinder_url: str):
    """The engine the hook gets, opened as the tool opens it (causal reads on Galera);
    on Galera through node 2 while `db` (the test's own reads and writes) uses node 1."""
    opened = open_engine(cinder_url)
    yield opened
    opened.dispose()


def _backend(db: sa.Engine, n_volumes: int = 150, n_groups: int = 4) -> tuple[int, list[str], list[str]]:
    """The stopped service's volumes in two pools, and noise the UPDATE by host must not reach:
    a deleted volume on the host, other hosts (one whose name LIKE would match without escaping)."""
    sid = stopped_service(db, HOST, replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        mine = [seed.volume_row(f"{HOST}#pool{i % 2}", replication_status="failed-over") for i in range(n_volumes)]
        noise = [seed.volume_row(f"{HOST}#pool0", deleted=True, deleted_at=utcnow(), replication_status="failed-over"),
                 seed.volume_row("node-c@be#pool0", replication_status="failed-over"),
                 seed.volume_row("node-b@be2#pool0", replication_status="failed-over"),
                 seed.volume_row("node-b@bex#p", replication_status="failed-over"),
                 seed.volume_row("node-b@be_", replication_status="failed-over")]
        seed.add_volumes(conn, [*mine, *noise])
        seed.add_groups(conn, [seed.group_row(HOST, replication_status="failed-over") for _ in range(n_groups)])
        seed.add_groups(conn, [seed.group_row("node-c@be", replication_status="failed-over")])
    return sid, [v["id"] for v in mine], [v["id"] for v in noise]


def _statuses(db: sa.Engine, ids: list[str]) -> dict[str, tuple[Any, Any]]:
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, replication_status, replication_extended_status FROM volumes")).all()
    wanted = set(ids)
    return {r[0]: (r[1], r[2]) for r in rows if r[0] in wanted}


def _shared_answer(volumes, groups):
    return None, same_for_all(volumes, **SHARED), same_for_all(groups or [], "group", replication_status="enabled")


def test_identical_update_is_one_update_by_host(db, engine):
    sid, mine, noise = _backend(db)
    noise_before = _statuses(db, noise)

    result = update_host_replication(engine, AnswerDriver(_shared_answer), host=HOST)

    assert result.outcome == "done" and result.volumes_updated == len(mine) and result.groups_updated == 4
    assert result.database_driver == "mysqldb", "a mysql+pymysql:// URL is read and written through mysqlclient"
    assert result.written_by_owner == ["volumes"], "4 groups are fewer than MIN_GROUP: written as rows"
    assert set(_statuses(db, mine).values()) == {("enabled", "shared")}
    assert _statuses(db, noise) == noise_before, "deleted rows and other hosts are not written"
    with db.connect() as conn:
        groups = conn.execute(sa.text("SELECT host, replication_status FROM groups")).all()
    assert sorted(groups) == sorted([(HOST, "enabled")] * 4 + [("node-c@be", "failed-over")])
    assert row(db, "services", sid)["replication_status"] == "enabled"


def test_identical_update_of_a_cluster_is_one_update_by_cluster(db, engine):
    cluster(db, "clu@be", ["h1@be", "h2@be"], replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        mine = [seed.volume_row(f"h{1 + i % 2}@be#p", cluster_name="clu@be#p", replication_status="failed-over")
                for i in range(60)]
        other = [seed.volume_row("h3@be#p", cluster_name="clu2@be#p", replication_status="failed-over")]
        seed.add_volumes(conn, [*mine, *other])

    result = update_host_replication(engine, AnswerDriver(_shared_answer), cluster="clu@be")

    assert result.outcome == "done" and result.volumes_updated == 60
    assert result.written_by_owner == ["volumes"], "no groups: nothing to write for them"
    assert set(_statuses(db, [v["id"] for v in mine]).values()) == {("enabled", "shared")}
    assert _statuses(db, [other[0]["id"]]) == {other[0]["id"]: ("failed-over", None)}


def test_proof_falls_back_when_a_volume_was_created_on_the_host_after_the_load(db, engine):
    _backend(db)
    created = []

    def answer(volumes, groups):
        # Created (and committed) on the host while the driver works: not among the loaded volumes.
        new = seed.volume_row(f"{HOST}#pool0", replication_status="failed-over")
        with db.begin() as conn:
            seed.add_volumes(conn, [new])
        created.append(new["id"])
        return _shared_answer(volumes, groups)

    result = update_host_replication(engine, AnswerDriver(answer), host=HOST)

    assert result.outcome == "done" and result.volumes_updated == 150
    assert "volumes" not in result.written_by_owner, "the host holds a volume the driver did not name"
    assert _statuses(db, created) == {created[0]: ("failed-over", None)}, "the new volume is not written"
    with db.connect() as conn:
        written = conn.execute(sa.text("SELECT count(*) FROM volumes WHERE replication_extended_status = 'shared'")).scalar()
    assert written == 150, "every named volume is written, by id"


def test_proof_falls_back_when_the_driver_named_a_subset(db, engine):
    _, mine, _ = _backend(db)
    left_out = sorted(mine)[0]

    def answer(volumes, groups):
        return None, same_for_all([v for v in volumes if v.id != left_out], **SHARED), []

    result = update_host_replication(engine, AnswerDriver(answer), host=HOST)

    assert result.outcome == "done" and result.volumes_updated == len(mine) - 1
    assert result.written_by_owner == []
    statuses = _statuses(db, mine)
    assert statuses.pop(left_out) == ("failed-over", None), "the volume the driver did not name is not written"
    assert set(statuses.values()) == {("enabled", "shared")}


def test_a_volume_named_twice_never_reaches_the_writer(db, engine, monkeypatch):
    _, mine, _ = _backend(db, n_volumes=40)
    reached: list[Any] = []
    by_owner = bulk.Writer.update_set_of_owner
    monkeypatch.setattr(bulk.Writer, "update_set_of_owner",
                        lambda self, *args: reached.append(args) or by_owner(self, *args))
    before = snapshot(db)

    def answer(volumes, groups):
        return None, same_for_all([*volumes, volumes[0]], **SHARED), []

    with pytest.raises(HookFailed) as err:
        update_host_replication(engine, AnswerDriver(answer), host=HOST)

    assert any("appears more than once" in line for line in err.value.details), err.value.details
    assert reached == [], "the planner refused the answer: nothing reached the writer"
    after = snapshot(db)
    assert after["volumes"] == before["volumes"] and after["groups"] == before["groups"]


def test_the_writer_refuses_the_proof_for_a_list_with_an_id_twice(db, engine):
    """Below the planner, the proof itself: a list with an id twice is not the host's rows,
    even when the set of its ids is."""
    _, mine, _ = _backend(db, n_volumes=40)
    owner = queries.Owner(HOST, None)
    with bulk.transaction(engine) as writer:
        assert writer.update_set_of_owner("volumes", dict(SHARED), [*mine, mine[0]], owner) is None
        assert writer.update_set_of_owner("volumes", dict(SHARED), mine[1:], owner) is None
    assert set(_statuses(db, mine).values()) == {("failed-over", None)}, "a refused proof writes nothing"
    with bulk.transaction(engine) as writer:
        assert writer.update_set_of_owner("volumes", dict(SHARED), list(reversed(mine)), owner) == len(mine)
    assert set(_statuses(db, mine).values()) == {("enabled", "shared")}


def test_the_proof_is_the_set_of_ids_not_their_count(db, engine):
    """A volume created on the host and a named one deleted since the load: the host holds as
    many live volumes as were named, and the UPDATE by host writes as many rows, yet not the
    named ones. The proof compares the ids as a set: it fails, and the UPDATE by host is undone."""
    _, mine, _ = _backend(db, n_volumes=40)
    new = seed.volume_row(f"{HOST}#pool1", replication_status="failed-over")
    with db.begin() as conn:
        seed.add_volumes(conn, [new])
        conn.execute(sa.text("UPDATE volumes SET deleted = 1 WHERE id = :i"), {"i": mine[0]})
    owner = queries.Owner(HOST, None)
    with bulk.transaction(engine) as writer:
        assert writer.update_set_of_owner("volumes", dict(SHARED), mine, owner) is None
        assert writer.update_set(table_name="volumes", values=dict(SHARED), ids=mine) == len(mine) - 1
    assert _statuses(db, [new["id"]]) == {new["id"]: ("failed-over", None)}, "the volume nobody named is not written"
    assert _statuses(db, mine[:1]) == {mine[0]: ("failed-over", None)}, "the deleted volume is not written"
    assert set(_statuses(db, mine[1:]).values()) == {("enabled", "shared")}


def test_a_volume_created_during_the_write_is_untouched(db, cinder_url, dialect, engine):
    """A volume created on the host while the hook writes by host, after its UPDATE by host
    and proof: on one MariaDB server the UPDATE's locks on the host's range hold the insert
    until COMMIT; on Galera, made through another node, the insert either aborts the hook's
    transaction (written again: the proof then sees the new volume and falls back) or comes
    after its commit."""
    _, mine, _ = _backend(db)
    other = galera.engine_on(cinder_url, 1) if dialect == "galera" else sa.create_engine(cinder_url)
    new = seed.volume_row(f"{HOST}#pool1", replication_status="failed-over")
    inserter: list[threading.Thread] = []
    blocked: list[bool] = []

    def insert() -> None:
        with other.begin() as conn:
            seed.add_volumes(conn, [new])

    def progress(phase: str, message: str) -> None:
        if "one UPDATE by host" in message and not inserter:
            inserter.append(threading.Thread(target=insert))
            inserter[0].start()
            inserter[0].join(timeout=1.0)
            blocked.append(inserter[0].is_alive())

    try:
        result = update_host_replication(engine, AnswerDriver(_shared_answer), host=HOST, progress=progress)
        inserter[0].join(timeout=60)
    finally:
        other.dispose()
    assert result.outcome == "done" and result.volumes_updated == len(mine)
    assert inserter and not inserter[0].is_alive(), "the insert ran during the write and completed"
    if dialect == "mysql":
        assert blocked == [True], "InnoDB held the insert into the locked range until COMMIT"
        assert result.written_by_owner == ["volumes"], "4 groups are fewer than MIN_GROUP: written as rows"
    assert _statuses(db, [new["id"]]) == {new["id"]: ("failed-over", None)}, "the new volume is not written"
    assert set(_statuses(db, mine).values()) == {("enabled", "shared")}


def test_fast_paths_off_uses_pymysql_and_id_chunks(db, engine, monkeypatch):
    monkeypatch.setenv(FAST_PATHS_ENV, "off")
    _, mine, _ = _backend(db, n_volumes=40)
    result = update_host_replication(engine, AnswerDriver(_shared_answer), host=HOST)
    assert result.outcome == "done" and result.volumes_updated == 40
    assert (result.database_driver, result.written_by_owner) == ("pymysql", [])
    assert set(_statuses(db, mine).values()) == {("enabled", "shared")}


# -- the records the driver sees ------------------------------------------------------------------

_STAMP = datetime(2026, 1, 2, 3, 4, 5)


def _records_seen(url: str) -> list[list[tuple[str, type, Any]]]:
    """Every column of every record the driver gets, as (name, type, value), for fixed rows."""
    engine = open_engine(url)
    try:
        stopped_service(engine, HOST, replication_status="enabled", active_backend_id=None)
        with engine.begin() as conn:
            seed.add_volumes(conn, [
                seed.volume_row(f"{HOST}#p", now=_STAMP, id="00000000-0000-0000-0000-000000000001",
                                provider_location="rbd:volumes/v1", size=7, multiattach=True, bootable=True,
                                launched_at=_STAMP, display_name="v\u00e9"),
                seed.volume_row(f"{HOST}#p", now=_STAMP, id="00000000-0000-0000-0000-000000000002",
                                replication_driver_data='{"pair": 2}', use_quota=False),
            ])
            seed.add_groups(conn, [seed.group_row(HOST, now=_STAMP, id="00000000-0000-0000-0000-0000000000g1")])
        seen: list[list[tuple[str, type, Any]]] = []

        def answer(volumes, groups):
            for record in (*volumes, *groups):
                seen.append([(name, type(getattr(record, name)), getattr(record, name)) for name in record.keys()])
            return None, [], []

        result = update_host_replication(engine, AnswerDriver(answer), host=HOST)
        assert result.outcome == "done"
        seen.append([("database_driver", str, result.database_driver)])
        return seen
    finally:
        engine.dispose()


def test_the_driver_sees_the_same_records_through_every_database_driver(factories, schema_cache, monkeypatch):
    import MySQLdb  # noqa: F401 - make test installs it: a missing fast driver fails here, not silently

    seen = {}
    for name, dialect, fast in (("sqlite", "sqlite", True), ("postgresql", "postgresql", True),
                                ("mysqlclient", "mysql", True), ("pymysql", "mysql", False)):
        monkeypatch.setenv(FAST_PATHS_ENV, "on" if fast else "off")
        url = _factory(factories, dialect, schema_cache).new_database()
        *records, [(_, _, driver)] = _records_seen(url)
        seen[name] = records
        assert driver == {"sqlite": "pysqlite", "postgresql": "psycopg2", "mysqlclient": "mysqldb",
                          "pymysql": "pymysql"}[name]
    assert len(seen["pymysql"]) == 3
    assert seen["mysqlclient"] == seen["pymysql"], "the same values with the same Python types"
    assert seen["sqlite"] == seen["pymysql"] and seen["postgresql"] == seen["pymysql"]
    by_name = dict((n, (t, v)) for n, t, v in seen["mysqlclient"][0])
    assert by_name["created_at"] == (datetime, _STAMP) and by_name["multiattach"] == (bool, True)
    assert by_name["size"] == (int, 7) and by_name["deleted_at"] == (type(None), None)


# -- the rows with distinct values: LOAD DATA LOCAL INFILE into the temporary table --------------------

AWKWARD = ["tab\there", "new\nline", "back\\slash\\N", "quote's \"both\"", "caf\u00e9", "", "\\", "end\\"]


def _awkward_answer(volumes, groups):
    """Distinct values that LOAD DATA's format must escape, NULLs among them."""
    updates = []
    for i, volume in enumerate(volumes):
        value = f"{AWKWARD[i % len(AWKWARD)]}-{i}" if i % 5 else None
        updates.append({"volume_id": volume.id, "updates": {"replication_driver_data": value,
                                                            "provider_location": AWKWARD[i % len(AWKWARD)]}})
    return None, updates, []


def _driver_data(db: sa.Engine, ids: list[str]) -> dict[str, tuple[Any, Any]]:
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, replication_driver_data, provider_location FROM volumes")).all()
    return {r[0]: (r[1], r[2]) for r in rows if r[0] in set(ids)}


def _expected_awkward(mine: list[str]) -> dict[str, tuple[Any, Any]]:
    return {vid: (f"{AWKWARD[i % len(AWKWARD)]}-{i}" if i % 5 else None, AWKWARD[i % len(AWKWARD)])
            for i, vid in enumerate(sorted(mine))}


def test_distinct_values_arrive_exactly_through_load_data(db, engine, caplog):
    _, mine, _ = _backend(db, n_volumes=80)
    caplog.set_level("INFO", logger="cinder_promote")
    result = update_host_replication(engine, AnswerDriver(_awkward_answer), host=HOST)
    assert result.outcome == "done" and result.volumes_updated == 80 and result.database_driver == "mysqldb"
    assert not any("LOAD DATA" in r.getMessage() for r in caplog.records), "LOAD DATA was not refused"
    assert _driver_data(db, mine) == _expected_awkward(mine)


def test_load_data_refused_by_the_client_falls_back_to_inserts(db, cinder_url, caplog):
    """A mysqlclient engine whose client refuses LOCAL (error 4166; the server's `local_infile=OFF`
    gives the same refusal): the rows go by INSERT, and arrive the same."""
    _, mine, _ = _backend(db, n_volumes=80)
    caplog.set_level("INFO", logger="cinder_promote")
    plain = sa.create_engine(sa.engine.make_url(cinder_url).set(drivername="mysql+mysqldb"),
                             connect_args={"local_infile": 0})
    try:
        result = update_host_replication(plain, AnswerDriver(_awkward_answer), host=HOST)
    finally:
        plain.dispose()
    assert result.outcome == "done" and result.database_driver == "mysqldb"
    assert any("refuses LOAD DATA LOCAL INFILE" in r.getMessage() for r in caplog.records)
    assert _driver_data(db, mine) == _expected_awkward(mine)
