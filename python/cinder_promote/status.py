"""`status`: every cinder-volume service and cluster with its heartbeat,
flags, replication state, fence and the counts of its volumes and groups.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from .db import queries
from .fence import Fence, fence_on
from .models import ClusterRow, ServiceRow, utcnow
from .target import Target, resolve

NULL_KEY = "null"  # how a NULL replication_status is counted in JSON


@dataclass(frozen=True)
class ServiceStatus:
    row: ServiceRow
    up: bool
    heartbeat_age_s: float | None
    fence: Fence | None
    volumes: dict[str, int]
    groups: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        r = self.row
        return {
            "host": r.host, "cluster_name": r.cluster_name, "up": self.up,
            "heartbeat_age_s": None if self.heartbeat_age_s is None else round(self.heartbeat_age_s, 1),
            "disabled": bool(r.disabled), "disabled_reason": r.disabled_reason, "frozen": bool(r.frozen),
            "replication_status": r.replication_status, "active_backend_id": r.active_backend_id,
            "fence": None if self.fence is None else self.fence.to_json(),
            "volumes": self.volumes, "groups": self.groups,
        }


@dataclass(frozen=True)
class ClusterStatus:
    row: ClusterRow
    members: list[str]
    up: bool  # any member up
    heartbeat_age_s: float | None  # of the newest member heartbeat
    fence: Fence | None
    volumes: dict[str, int]
    groups: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        r = self.row
        return {
            "name": r.name, "members": self.members, "up": self.up,
            "heartbeat_age_s": None if self.heartbeat_age_s is None else round(self.heartbeat_age_s, 1),
            "disabled": bool(r.disabled), "disabled_reason": r.disabled_reason, "frozen": bool(r.frozen),
            "replication_status": r.replication_status, "active_backend_id": r.active_backend_id,
            "fence": None if self.fence is None else self.fence.to_json(),
            "volumes": self.volumes, "groups": self.groups,
        }


@dataclass(frozen=True)
class StatusReport:
    services: list[ServiceStatus]
    clusters: list[ClusterStatus]

    def to_json(self) -> dict[str, Any]:
        return {"services": [s.to_json() for s in self.services], "clusters": [c.to_json() for c in self.clusters]}


def backend_of(host: str | None) -> str | None:
    """A volume's host names a pool (`host@backend#pool`); its service is the part before '#'."""
    return None if host is None else host.split("#", 1)[0]


def _fold(rows: list[tuple], *, by_cluster: bool) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for host, cluster_name, status, n in rows:
        key = backend_of(cluster_name if by_cluster else host)
        if key is not None:
            counts.setdefault(key, Counter())[status if status is not None else NULL_KEY] += n
    return counts


def collect(engine: Engine, *, service_down_time: int, backend_host: str | None = None, cluster: str | None = None) -> StatusReport:
    now = utcnow()
    with engine.connect() as conn:
        target: Target | None = None
        if backend_host is not None or cluster is not None:
            target = resolve(conn, backend_host=backend_host, cluster=cluster)
            services = list(target.services)
            clusters = [target.cluster] if target.cluster else []
        else:
            services = queries.volume_services(conn)
            clusters = queries.volume_clusters(conn)
        volume_rows = queries.replication_counts(conn, "volumes")
        group_rows = queries.replication_counts(conn, "groups")
        service_fences = {s.id: fence_on(conn, "service", s.host, s.replication_status, now) for s in services}
        cluster_fences = {c.id: fence_on(conn, "cluster", c.name, c.replication_status, now) for c in clusters}
    vol_by_host, grp_by_host = _fold(volume_rows, by_cluster=False), _fold(group_rows, by_cluster=False)
    vol_by_cluster, grp_by_cluster = _fold(volume_rows, by_cluster=True), _fold(group_rows, by_cluster=True)
    service_status = [
        ServiceStatus(
            row=s, up=s.is_up(now, service_down_time), heartbeat_age_s=s.heartbeat_age(now),
            fence=service_fences[s.id],
            volumes=dict(sorted(vol_by_host.get(s.host, Counter()).items())),
            groups=dict(sorted(grp_by_host.get(s.host, Counter()).items())),
        )
        for s in services
    ]
    cluster_status = []
    for c in clusters:
        members = [s for s in service_status if s.row.cluster_name == c.name]
        ages = [m.heartbeat_age_s for m in members if m.heartbeat_age_s is not None]
        cluster_status.append(ClusterStatus(
            row=c, members=[m.row.host for m in members], up=any(m.up for m in members),
            heartbeat_age_s=min(ages) if ages else None, fence=cluster_fences[c.id],
            volumes=dict(sorted(vol_by_cluster.get(c.name, Counter()).items())),
            groups=dict(sorted(grp_by_cluster.get(c.name, Counter()).items())),
        ))
    return StatusReport(service_status, cluster_status)
