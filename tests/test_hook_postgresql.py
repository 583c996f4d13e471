"""The hook on PostgreSQL leaves the planner's estimate of the table's rows true: a write
that grew a table by more than a tenth is followed, before COMMIT, by ANALYZE of that table
(`bulk._PG_GROWN`, docs/decisions.md). Without it Cinder's own load of 100,000 volumes right
after a full promotion was costed as twice as many rows and compiled by the JIT: twice as slow.

Each test plants a row estimate no ANALYZE would give (`pg_class.reltuples`, set as the
servers' superuser) and reads whether it is still there after the hook.
"""

from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa
from hook_drivers import AnswerDriver, DistinctDriver
from scenario import stopped_service

from cinder_promote.db import bulk, seed
from cinder_promote.drivers.bulk import UpdateList
from cinder_promote.hook import update_host_replication

HOST = "node-b@be"
VOLUMES = 2000
PLANTED = 12345.0


@pytest.fixture
def dialect() -> str:
    return "postgresql"


def _backend(db: sa.Engine) -> list[str]:
    """The stopped service's volumes, their table vacuumed (no room on its pages, as freshly
    loaded) and given the planted row estimate."""
    stopped_service(db, HOST, replication_status="enabled", active_backend_id=None)
    rows = [seed.volume_row(f"{HOST}#pool0", replication_status="failed-over") for _ in range(VOLUMES)]
    with db.begin() as conn:
        seed.add_volumes(conn, rows)
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE volumes")
        conn.exec_driver_sql(f"UPDATE pg_class SET reltuples = {PLANTED} WHERE oid = 'volumes'::regclass")
    return [r["id"] for r in rows]


def _estimate(db: sa.Engine) -> float:
    with db.connect() as conn:
        return float(conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE oid = 'volumes'::regclass").scalar())


def _few(count: int):
    """A driver's answer for the first `count` volumes only."""
    def answer(volumes, groups):
        updates = UpdateList("volume")
        for volume in volumes[:count]:
            updates.add(volume, replication_driver_data=f"pair-{volume.id}")
        return None, updates.entries, None
    return AnswerDriver(answer)


@pytest.fixture(params=["asyncpg", "psycopg2"])
def write_connection(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The write on asyncpg's connection, or on the engine's own psycopg2 connection, as
    where asyncpg is not installed."""
    if request.param == "psycopg2":
        monkeypatch.setattr(bulk, "uses_asyncpg", lambda engine: False)
    return request.param  # type: ignore[no-any-return]


def test_a_write_that_grows_the_table_analyzes_it(db, write_connection):
    _backend(db)
    result = update_host_replication(db, DistinctDriver(), host=HOST)
    assert result.volumes_updated == VOLUMES
    assert _estimate(db) == VOLUMES, "ANALYZE counted the rows the write left"


def test_a_write_that_fits_in_the_table_leaves_its_statistics_alone(db):
    _backend(db)
    result = update_host_replication(db, _few(20), host=HOST)
    assert result.volumes_updated == 20
    assert _estimate(db) == PLANTED, "20 of 2,000 rows cannot grow the table by a tenth: no ANALYZE"


def test_a_vacuum_elsewhere_skips_the_analyze_and_the_write_commits(db, write_connection, caplog):
    """ANALYZE waits for no VACUUM or ANALYZE of the table (its lock, SHARE UPDATE EXCLUSIVE,
    is held here by another session): after its lock timeout the write commits without it."""
    ids = _backend(db)
    locked, release = threading.Event(), threading.Event()

    def vacuum_elsewhere() -> None:
        with db.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE volumes IN SHARE UPDATE EXCLUSIVE MODE")
            locked.set()
            release.wait(60)
            conn.rollback()

    holder = threading.Thread(target=vacuum_elsewhere)
    holder.start()
    try:
        assert locked.wait(30)
        with caplog.at_level(logging.WARNING, logger="cinder_promote.db.bulk"):
            result = update_host_replication(db, DistinctDriver(), host=HOST)
    finally:
        release.set()
        holder.join(30)
    assert result.volumes_updated == VOLUMES
    with db.connect() as conn:
        written = conn.execute(sa.text("SELECT count(*) FROM volumes WHERE replication_status = 'enabled'")).scalar()
    assert written == len(ids), "the write committed"
    assert _estimate(db) == PLANTED
    assert "volumes not analyzed after the write" in caplog.text and "lock timeout" in caplog.text
