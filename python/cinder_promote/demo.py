"""The demo's disaster, built on an embedded SQLite database with Cinder's schema.

The seed's story: backend A replicated to B; a fire destroyed A; the admin
ran `cinder failover-host`, so Cinder says `failed-over` with
`active_backend_id = backend-b`; backend C is now installed as B's new
replication target. The services are stopped, disabled and frozen, ready to
be promoted. A second, healthy backend keeps running beside them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from .db import seed
from .errors import Refused, UsageError
from .models import utcnow

STANDALONE = "cinder-1@replicated"
CLUSTER = "cluster-gold@gold"
CLUSTER_MEMBERS = ("cinder-2@gold", "cinder-3@gold")
HEALTHY = "cinder-4@lvm"
FAILED_OVER_TO = "backend-b"
DISABLED_REASON = "failed over to backend-b after the loss of backend-a"


@dataclass(frozen=True)
class DemoDatabase:
    path: str
    url: str
    volumes: int
    groups: int


# SQLite's header field `application_id` (offset 68), set on every demo database:
# "CPDM". Only a file carrying it is ever replaced.
DEMO_APPLICATION_ID = 0x4350444D
_HEADER = b"SQLite format 3\x00"


def is_demo_database(path: str) -> bool:
    """Whether `path` is a demo database that cinder-promote created (its header says so)."""
    try:
        with open(path, "rb") as f:
            header = f.read(72)
    except OSError:
        return False
    return header.startswith(_HEADER) and len(header) == 72 and int.from_bytes(header[68:72], "big") == DEMO_APPLICATION_ID


def check_demo_path(path: str) -> None:
    """Refuse a path the demo may not write: only its own earlier database is ever replaced."""
    shown = os.path.abspath(path)
    if os.path.isdir(path):
        raise UsageError(f"--db-path {shown} is a directory: give the path of a file to create")
    folder = os.path.dirname(shown)
    if not os.path.isdir(folder):
        raise UsageError(f"--db-path {shown}: the directory {folder} does not exist")
    if os.path.lexists(path) and not is_demo_database(path):
        raise Refused(f"refused to replace {shown}: it exists and is not a demo database created by cinder-promote;"
                      " it was left untouched (give another --db-path, or remove it yourself)")


HEARTBEAT_S = 10  # Cinder's report_interval


def keep_running(path: str, *, stop: Callable[[float], bool]) -> None:
    """Keep the demo's running service up, as its cinder-volume would: a fresh heartbeat every HEARTBEAT_S seconds.

    Only on a demo database (the tool itself never writes a heartbeat of a real
    Cinder). Runs until `stop(seconds)` (a wait) returns True.
    """
    if not is_demo_database(path):
        raise Refused(f"refused to write heartbeats to {os.path.abspath(path)}: it is not a demo database created"
                      " by cinder-promote demo; nothing was written")
    engine = sa.create_engine(f"sqlite:///{os.path.abspath(path)}")
    try:
        while True:
            with engine.begin() as conn:
                seed.heartbeat(conn, HEALTHY, utcnow())
            if stop(HEARTBEAT_S):
                return
    finally:
        engine.dispose()


def build(path: str, *, volumes: int = 3000, groups: int = 300) -> DemoDatabase:
    """Create the demo database at `path` (replacing only an earlier demo database) and seed the disaster."""
    check_demo_path(path)
    if os.path.lexists(path):
        os.remove(path)
    seed.create_cinder_sqlite(path, application_id=DEMO_APPLICATION_ID)
    url = f"sqlite:///{os.path.abspath(path)}"
    n_vol, n_grp = seed_disaster(url, volumes=volumes, groups=groups)
    return DemoDatabase(path=path, url=url, volumes=n_vol, groups=n_grp)


def seed_disaster(url: str, *, volumes: int = 3000, groups: int = 300) -> tuple[int, int]:
    """Seed the disaster into an empty Cinder database (any of the three); return the volume and group counts."""
    engine = sa.create_engine(url)
    now = utcnow()
    stopped = now - timedelta(minutes=12)
    failed_over = {
        "replication_status": "failed-over", "active_backend_id": FAILED_OVER_TO,
        "disabled": True, "disabled_reason": DISABLED_REASON, "frozen": True,
    }
    try:
        with engine.begin() as conn:
            seed.add_service(conn, STANDALONE, now=stopped, **failed_over)
            seed.add_cluster(conn, CLUSTER, now=stopped, **failed_over)
            for member in CLUSTER_MEMBERS:
                seed.add_service(conn, member, now=stopped, cluster_name=CLUSTER, **failed_over)
            seed.add_service(conn, HEALTHY, now=now)
            # Volumes spread over the pools of the failed-over backends, half of
            # them in the cluster; the healthy backend has its own.
            per_target = max(volumes // 2, 1)
            n_vol = seed.add_volumes(conn, (
                seed.volume_row(f"{STANDALONE}#pool-{i % 4}", now=stopped, replication_status="failed-over",
                                replication_driver_data=f"pair-{i}")
                for i in range(per_target)
            ))
            n_vol += seed.add_volumes(conn, (
                seed.volume_row(f"{CLUSTER_MEMBERS[i % 2]}#pool-0", now=stopped, cluster_name=f"{CLUSTER}#pool-0",
                                replication_status="failed-over", replication_driver_data=f"pair-c{i}")
                for i in range(volumes - per_target)
            ))
            n_vol += seed.add_volumes(conn, (
                seed.volume_row(f"{HEALTHY}#lvm", now=now, replication_status="disabled") for _ in range(20)
            ))
            half = groups // 2
            n_grp = seed.add_groups(conn, (
                seed.group_row(STANDALONE, now=stopped, replication_status="failed-over") for _ in range(half)
            ))
            n_grp += seed.add_groups(conn, (
                seed.group_row(CLUSTER_MEMBERS[0], now=stopped, cluster_name=CLUSTER, replication_status="failed-over")
                for _ in range(groups - half)
            ))
    finally:
        engine.dispose()
    return n_vol, n_grp
