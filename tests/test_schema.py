"""Our table definitions are Cinder 29.0.0's, as its own migrations create them."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from cinder_promote.db import schema, seed


@pytest.mark.parametrize("table", schema.CINDER_TABLES, ids=lambda t: t.name)
def test_tables_match_cinder_migrations(db, table):
    with db.connect() as conn:
        real = {c["name"]: c for c in sa.inspect(conn).get_columns(table.name)}
    ours = {c.name: c for c in table.columns}
    assert set(ours) == set(real)
    for name, column in ours.items():
        length = getattr(column.type, "length", None)
        if length is not None:
            assert getattr(real[name]["type"], "length", None) == length, name
        assert real[name]["nullable"] == column.nullable or column.primary_key, name


def _clauses(sql: str) -> list[str]:
    # Cinder's SQLite migrations rebuild tables from a set of constraints, so
    # two db syncs list a table's foreign keys in different orders.
    return sorted(line.strip().rstrip(",").strip() for line in sql.splitlines())


def test_shipped_sqlite_schema_is_cinder_db_sync(sqlite_url, tmp_path):
    """The demo's schema file equals what cinder-manage db sync creates today."""
    synced = sqlite3.connect(sa.make_url(sqlite_url).database)
    built_path = tmp_path / "built.sqlite"
    seed.create_cinder_sqlite(str(built_path))
    built = sqlite3.connect(built_path)
    query = "SELECT type || ' ' || name, sql FROM sqlite_master"
    try:
        ours, cinders = dict(built.execute(query).fetchall()), dict(synced.execute(query).fetchall())
        assert set(ours) == set(cinders)
        assert [name for name in ours if _clauses(ours[name] or "") != _clauses(cinders[name] or "")] == []
        version = "SELECT version_num FROM alembic_version"
        assert built.execute(version).fetchall() == synced.execute(version).fetchall()
    finally:
        synced.close()
        built.close()
