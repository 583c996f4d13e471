"""Which rows a command acts on: a volume service, or a cluster and its members.

A clustered service named by `--backend-host` means its whole cluster
(SPEC section 4): a cluster's replication state is one state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from . import engine as core
from .db import queries
from .errors import Refused, TargetNotFound, UsageError
from .models import ClusterRow, ServiceRow


@dataclass(frozen=True)
class Target:
    kind: str  # "service" or "cluster"
    name: str  # the service's host or the cluster's name
    cluster: ClusterRow | None
    services: tuple[ServiceRow, ...]

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


def check_selector(backend_host: str | None, cluster: str | None) -> None:
    if (backend_host is None) == (cluster is None):
        raise UsageError("give exactly one of --backend-host HOST or --cluster NAME")
    if backend_host is not None:
        core.check_backend_host(backend_host)
    else:
        core.split_host(cluster)  # type: ignore[arg-type]


def _pick(candidates: list, value: str, name_of, what: str):
    """Cinder's matching may return several rows; an exact name wins, else it must be unique."""
    exact = [c for c in candidates if name_of(c) == value]
    if exact:
        candidates = exact
    if not candidates:
        return None
    if len(candidates) > 1:
        names = ", ".join(sorted(name_of(c) for c in candidates))
        raise Refused(
            f"{what} {value!r} matches several backends: {names}; name one as host@backend; nothing was written"
        )
    return candidates[0]


def resolve(conn: Connection, *, backend_host: str | None = None, cluster: str | None = None) -> Target:
    check_selector(backend_host, cluster)
    if backend_host is not None:
        service = _pick(queries.volume_services(conn, backend_host), backend_host, lambda s: s.host, "backend host")
        if service is None:
            raise TargetNotFound(f"no cinder-volume service with host {backend_host!r} (deleted rows are ignored); nothing was written")
        if service.cluster_name is None:
            return Target("service", service.host, None, (service,))
        cluster = service.cluster_name
        row = _pick(
            [c for c in queries.volume_clusters(conn, cluster) if c.name == cluster], cluster, lambda c: c.name, "cluster"
        )
        if row is None:
            raise TargetNotFound(
                f"service {service.host!r} belongs to cluster {cluster!r}, which has no live cinder-volume cluster row;"
                " nothing was written"
            )
    else:
        assert cluster is not None
        row = _pick(queries.volume_clusters(conn, cluster), cluster, lambda c: c.name, "cluster")
        if row is None:
            raise TargetNotFound(f"no cinder-volume cluster named {cluster!r} (deleted rows are ignored); nothing was written")
    return Target("cluster", row.name, row, tuple(queries.cluster_members(conn, row.name)))


def running_services(target: Target, now: datetime, service_down_time: int) -> list[str]:
    """One line for each service of the target that is up by Cinder's heartbeat rule."""
    problems = []
    for s in target.services:
        if s.is_up(now, service_down_time):
            problems.append(
                f"service {s.host!r} (id {s.id}) is running: its last heartbeat was {s.heartbeat_age(now):.0f}s ago"
                f" (service_down_time is {service_down_time}s); stop it and wait until it is down"
            )
    return problems
