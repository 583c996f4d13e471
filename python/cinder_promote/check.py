"""`check`: replication state that contradicts itself (SPEC section 4).

Built on the same set-based reads as `status` (one grouped scan of volumes
and of groups, whatever their number). Each finding has a stable code, the
rows involved and the command that would fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from .db import queries
from .fence import Fence
from .status import ClusterStatus, ServiceStatus, backend_of, collect

MEMBER_DISAGREES = "member-disagrees"
VOLUMES_CONTRADICT = "volumes-contradict-service"
GROUPS_CONTRADICT = "groups-contradict-service"
STUCK_TRANSITIONAL = "stuck-transitional"
STALE_FENCE = "stale-fence"
UP_WHILE_PROMOTING = "up-while-promoting"
LOST_BUT_REPLICATING = "lost-volumes-replicating"
CODES = (MEMBER_DISAGREES, VOLUMES_CONTRADICT, GROUPS_CONTRADICT, STUCK_TRANSITIONAL, STALE_FENCE, UP_WHILE_PROMOTING,
         LOST_BUT_REPLICATING)
SHOWN_IDS = 10  # volume ids named in a finding's message; its rows list them all

# For a service (or cluster) status, the volume and group statuses that cannot
# be true at the same time: replication was failed over, or never enabled.
_FAILED_OVER = {"failed-over", "failing-over", "failover-error"}
CONTRADICTIONS: dict[str, set[str]] = {
    "enabled": _FAILED_OVER,
    "disabled": _FAILED_OVER,
    "not-capable": _FAILED_OVER | {"enabled", "enabling"},
    "failed-over": {"enabled", "enabling"},
}
TRANSITIONAL = ("failing-over", "enabling", "disabling")


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    rows: list[dict[str, Any]]
    command: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "rows": self.rows, "command": self.command}


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"count": len(self.findings), "findings": [f.to_json() for f in self.findings]}


def _row(table: str, row_id: int, name: str) -> dict[str, Any]:
    return {"table": table, "id": row_id, ("host" if table == "services" else "name"): name}


def _selector(kind: str, name: str) -> str:
    return f"--cluster {name}" if kind == "cluster" else f"--backend-host {name}"


def _reset_to(kind: str, name: str, status: str | None, backend: str | None) -> str:
    command = f"cinder-promote reset-active-backend {_selector(kind, name)} --replication-status {status or 'disabled'}"
    return command + (f" --active-backend-id {backend}" if backend else "")


def _contradiction(code: str, what: str, kind: str, name: str, table: str, row_id: int,
                   status: str | None, counts: dict[str, int]) -> Finding | None:
    bad = {s: n for s, n in counts.items() if s in CONTRADICTIONS.get(status or "", set())}
    if not bad:
        return None
    listed = ", ".join(f"{n} {s}" for s, n in sorted(bad.items()))
    return Finding(
        code, f"{kind} {name!r} is {status!r} but {listed} of its {what} say otherwise",
        [_row(table, row_id, name)],
        f"cinder-promote update-host-replication {_selector(kind, name)} --driver <your driver module:Class>"
        " (or start the service with the patched Cinder: its driver's hook brings them in line)",
    )


def _fence_findings(kind: str, name: str, table: str, row_id: int, fence: Fence | None,
                    members: list[ServiceStatus]) -> list[Finding]:
    if fence is None:
        return []
    if not fence.live:
        return [Finding(STALE_FENCE, f"{kind} {name!r} is fenced ('updating') but {fence.describe()}",
                        [_row(table, row_id, name)],
                        "start the service again (the hook takes the stale fence over), or "
                        + _reset_to(kind, name, "<the status before the fence, see history>", None))]
    # A live fence whose holder is none of the target's hosts is an offline run:
    # a member that is up meanwhile races it.
    holder_host = (fence.holder or "").split(":", 1)[0]
    offline = all(m.row.host.split("@", 1)[0] != holder_host for m in members)
    up = [m for m in members if m.up]
    if offline and up:
        return [Finding(UP_WHILE_PROMOTING,
                        f"{', '.join(repr(m.row.host) for m in up)} is up while {fence.holder} runs the hook offline"
                        f" on {kind} {name!r}", [_row("services", m.row.id, m.row.host) for m in up],
                        "stop the service(s) until the offline run ends: cinder-promote status shows its lease")]
    return []


def _lost_but_replicating(engine: Engine, clusters: set[str]) -> list[Finding]:
    """Volumes in `error` whose replication still claims `enabled`, one finding per service or cluster."""
    with engine.connect() as conn:
        rows = queries.lost_but_replicating(conn)
    by_backend: dict[tuple[str, str], list[str]] = {}
    for host, cluster_name, volume_id in rows:
        cluster = backend_of(cluster_name)
        kind, name = ("cluster", cluster) if cluster in clusters else ("service", backend_of(host))
        if name is not None:
            by_backend.setdefault((kind, name), []).append(volume_id)
    findings = []
    for (kind, name), ids in sorted(by_backend.items()):
        shown = ", ".join(ids[:SHOWN_IDS]) + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")
        findings.append(Finding(
            LOST_BUT_REPLICATING,
            f"{len(ids)} volume(s) of {kind} {name!r} are in status 'error' while their replication_status says"
            f" 'enabled' ({shown}): a volume that Cinder's failover could not bring over has nothing to"
            " replicate; its driver's update_host_replication must leave it alone",
            [{"table": "volumes", "id": i} for i in ids],
            "restore each volume from a backup or snapshot, or remove it with `cinder force-delete <volume>`;"
            " then fix the driver so that it re-pairs only volumes alive on the new primary",
        ))
    return findings


def run_check(engine: Engine, *, service_down_time: int) -> CheckReport:
    report = collect(engine, service_down_time=service_down_time)
    findings: list[Finding] = _lost_but_replicating(engine, {c.row.name for c in report.clusters})
    clusters = {c.row.name: c for c in report.clusters}
    for c in report.clusters:
        findings += _check_cluster(c, [s for s in report.services if s.row.cluster_name == c.row.name])
    for s in report.services:
        if s.row.cluster_name in clusters:
            continue  # its replication state is its cluster's
        r = s.row
        for code, what, counts in ((VOLUMES_CONTRADICT, "volumes", s.volumes), (GROUPS_CONTRADICT, "groups", s.groups)):
            found = _contradiction(code, what, "service", r.host, "services", r.id, r.replication_status, counts)
            if found:
                findings.append(found)
        if not s.up and r.replication_status in TRANSITIONAL:
            findings.append(Finding(STUCK_TRANSITIONAL,
                                    f"service {r.host!r} is stopped but stuck in {r.replication_status!r}",
                                    [_row("services", r.id, r.host)],
                                    _reset_to("service", r.host, "<the real status>", r.active_backend_id)))
        findings += _fence_findings("service", r.host, "services", r.id, s.fence, [s])
    return CheckReport(findings)


def _check_cluster(c: ClusterStatus, members: list[ServiceStatus]) -> list[Finding]:
    r = c.row
    findings = []
    disagree = [m for m in members
                if (m.row.replication_status, m.row.active_backend_id) != (r.replication_status, r.active_backend_id)
                and m.row.replication_status not in ("error", "failover-error")]
    if disagree:
        findings.append(Finding(
            MEMBER_DISAGREES,
            f"cluster {r.name!r} is {r.replication_status!r} (active backend {r.active_backend_id!r}) but "
            + ", ".join(f"{m.row.host!r} is {m.row.replication_status!r} ({m.row.active_backend_id!r})" for m in disagree),
            [_row("clusters", r.id, r.name)] + [_row("services", m.row.id, m.row.host) for m in disagree],
            _reset_to("cluster", r.name, r.replication_status, r.active_backend_id),
        ))
    for code, what, counts in ((VOLUMES_CONTRADICT, "volumes", c.volumes), (GROUPS_CONTRADICT, "groups", c.groups)):
        found = _contradiction(code, what, "cluster", r.name, "clusters", r.id, r.replication_status, counts)
        if found:
            findings.append(found)
    if not c.up and r.replication_status in TRANSITIONAL:
        findings.append(Finding(STUCK_TRANSITIONAL, f"cluster {r.name!r} is stopped but stuck in {r.replication_status!r}",
                                [_row("clusters", r.id, r.name)],
                                _reset_to("cluster", r.name, "<the real status>", r.active_backend_id)))
    findings += _fence_findings("cluster", r.name, "clusters", r.id, c.fence, members)
    return findings
