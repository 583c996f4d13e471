"""Writing Cinder rows for the demo, the benchmarks and the tests.

`create_cinder_sqlite` builds an empty Cinder 29.0.0 database on SQLite from
the schema that `cinder-manage db sync` created (shipped as
`cinder_29_sqlite.sql`), so the demo needs no Cinder install. The insert
helpers fill in what Cinder's own code would for the columns we do not name.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import VOLUME_BINARY, utcnow
from .schema import clusters, groups, inserted_id, services, volumes

DEFAULT_VOLUME_TYPE_ID = "00000000-0000-4000-8000-000000000001"


def cinder_sqlite_statements() -> list[str]:
    text = resources.files(__package__).joinpath("cinder_29_sqlite.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("-- "))
    return [s.strip() for s in body.split(";\n--") if s.strip()]


def create_cinder_sqlite(path: str, *, application_id: int = 0) -> None:
    """An empty Cinder 29.0.0 database at `path`; `application_id` marks who made it (SQLite's header)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA application_id = {int(application_id)}")
        with conn:
            for statement in cinder_sqlite_statements():
                conn.execute(statement)
    finally:
        conn.close()


def add_service(conn: Connection, host: str, *, now: datetime | None = None, **values: Any) -> int:
    now = now or utcnow()
    row: dict[str, Any] = {
        "created_at": now, "updated_at": now, "deleted": False, "host": host, "binary": VOLUME_BINARY,
        "topic": VOLUME_BINARY, "report_count": 1, "disabled": False, "availability_zone": "nova",
        "replication_status": "disabled", "frozen": False, "uuid": str(uuid.uuid4()),
    }
    row.update(values)
    return inserted_id(conn.execute(services.insert().values(**row)))


def heartbeat(conn: Connection, host: str, now: datetime) -> int:
    """What a running cinder-volume does every report interval (the demo's running service only)."""
    return conn.execute(services.update().where(services.c.host == host).values(updated_at=now)).rowcount


def add_cluster(conn: Connection, name: str, *, now: datetime | None = None, **values: Any) -> int:
    now = now or utcnow()
    row: dict[str, Any] = {
        "created_at": now, "updated_at": now, "deleted": False, "name": name, "binary": VOLUME_BINARY,
        "disabled": False, "race_preventer": 0, "replication_status": "disabled", "frozen": False,
    }
    row.update(values)
    return inserted_id(conn.execute(clusters.insert().values(**row)))


def volume_row(host: str, *, now: datetime | None = None, **values: Any) -> dict[str, Any]:
    now = now or utcnow()
    row: dict[str, Any] = {
        "created_at": now, "updated_at": now, "deleted": False, "id": str(uuid.uuid4()),
        "user_id": "demo-user", "project_id": "demo-project", "host": host, "size": 1,
        "availability_zone": "nova", "status": "available", "attach_status": "detached",
        "volume_type_id": DEFAULT_VOLUME_TYPE_ID, "replication_status": "enabled", "multiattach": False,
        "use_quota": True, "bootable": False,
    }
    row.update(values)
    return row


def group_row(host: str, *, now: datetime | None = None, **values: Any) -> dict[str, Any]:
    now = now or utcnow()
    row: dict[str, Any] = {
        "created_at": now, "updated_at": now, "deleted": False, "id": str(uuid.uuid4()),
        "user_id": "demo-user", "project_id": "demo-project", "host": host, "availability_zone": "nova",
        "status": "available", "replication_status": "enabled",
    }
    row.update(values)
    return row


def _insert_many(conn: Connection, table: sa.Table, rows: Iterable[Mapping[str, Any]], chunk: int = 500) -> int:
    batch: list[Mapping[str, Any]] = []
    total = 0

    def flush() -> None:
        # executemany needs the same keys in every row: fill the missing ones with NULL.
        keys = set().union(*batch)
        conn.execute(table.insert(), [{k: r.get(k) for k in keys} for r in batch])

    for row in rows:
        batch.append(row)
        if len(batch) == chunk:
            flush()
            total += len(batch)
            batch = []
    if batch:
        flush()
        total += len(batch)
    return total


def add_volumes(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    return _insert_many(conn, volumes, rows)


def add_groups(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    return _insert_many(conn, groups, rows)
