"""Seeding real Cinder databases with the situations the tests need."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from cinder_promote.db import seed
from cinder_promote.models import utcnow

FAILED_OVER: dict[str, Any] = {
    "replication_status": "failed-over",
    "active_backend_id": "backend-b",
    "disabled": True,
    "disabled_reason": "failed over",
    "frozen": True,
}


def long_ago() -> Any:
    return utcnow() - timedelta(minutes=10)


def stopped_service(engine: sa.Engine, host: str, **values: Any) -> int:
    """A cinder-volume service failed over, stopped, disabled and frozen: ready for a reset."""
    row = {**FAILED_OVER, **values}
    with engine.begin() as conn:
        return seed.add_service(conn, host, now=long_ago(), **row)


def running_service(engine: sa.Engine, host: str, **values: Any) -> int:
    row = {**FAILED_OVER, **values}
    with engine.begin() as conn:
        return seed.add_service(conn, host, now=utcnow(), **row)


def cluster(engine: sa.Engine, name: str, members: list[str], *, running: tuple[str, ...] = (), **values: Any) -> int:
    row = {**FAILED_OVER, **values}
    with engine.begin() as conn:
        cluster_id = seed.add_cluster(conn, name, now=long_ago(), **row)
        for host in members:
            seed.add_service(conn, host, now=utcnow() if host in running else long_ago(), cluster_name=name, **row)
    return cluster_id


def row(engine: sa.Engine, table: str, row_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id}).mappings().one()
    return dict(result)


def journal(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("cinder_promote_journal"):
            return []
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM cinder_promote_journal ORDER BY id")).mappings()]
