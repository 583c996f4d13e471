"""`check`: replication state that contradicts itself (SPEC section 4).

Built on the same set-based reads as `status` (one grouped scan of volumes
and of groups, whatever their number). Each finding has a stable code, the
rows involved and the command that would fix it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from .db import journal, queries
from .fence import OPERATION as HOOK, Fence, holder_is_dead
from .status import ClusterStatus, ServiceStatus, backend_of, collect

MEMBER_DISAGREES = "member-disagrees"
VOLUMES_CONTRADICT = "volumes-contradict-service"
GROUPS_CONTRADICT = "groups-contradict-service"
STUCK_TRANSITIONAL = "stuck-transitional"
STALE_FENCE = "stale-fence"
UP_WHILE_PROMOTING = "up-while-promoting"
LOST_BUT_REPLICATING = "lost-volumes-replicating"
FENCED = "fenced"
HOOK_FAILED = "hook-failed"
CODES = (MEMBER_DISAGREES, VOLUMES_CONTRADICT, GROUPS_CONTRADICT, STUCK_TRANSITIONAL, STALE_FENCE, UP_WHILE_PROMOTING,
         LOST_BUT_REPLICATING, FENCED, HOOK_FAILED)
SHOWN_IDS = 10  # volume ids named in a finding's message; its rows list them all
# The newest journal entry of each target, (kind, name) -> entry: what the fixes start from.
Latest = dict[tuple[str, str], journal.JournalEntry]

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
                   status: str | None, counts: dict[str, int], latest: Latest) -> Finding | None:
    bad = {s: n for s, n in counts.items() if s in CONTRADICTIONS.get(status or "", set())}
    if not bad:
        return None
    listed = ", ".join(f"{n} {s}" for s, n in sorted(bad.items()))
    last = latest.get((kind, name))
    if last is not None and last.operation == "undo" and last.state == journal.DONE:
        # The hook ran after the reset that was undone: its driver would now answer for the old status and
        # change nothing. What changes something is taking the undo back.
        command = (f"cinder-promote undo {last.id} (takes back the undo of journal {last.undo_of}: the {kind} then"
                   f" agrees with its {what} again)")
    else:
        command = (f"cinder-promote update-host-replication {_selector(kind, name)} --driver <your driver module:Class>"
                   " (or start the service with the patched Cinder: its driver's hook brings them in line)")
    return Finding(code, f"{kind} {name!r} is {status!r} but {listed} of its {what} say otherwise",
                   [_row(table, row_id, name)], command)


def _restore(kind: str, name: str, entry: journal.JournalEntry | None) -> str:
    """The reset that puts a fenced or failed target back where its hook found it."""
    if entry is None or entry.operation != HOOK:
        return _reset_to(kind, name, "<the status before the fence, see history>", None)
    before = entry.before if isinstance(entry.before, dict) else {}
    return _reset_to(kind, name, entry.status_before, before.get("active_backend_id"))


def _holder(fence: Fence) -> tuple[str, str]:
    host, _, pid = (fence.holder or "").rpartition(":")
    return host, pid


def _hook_failed(kind: str, name: str, table: str, row_id: int, status: str | None, latest: Latest) -> list[Finding]:
    """A target left in 'error' by a failed or interrupted hook: say why, and how to run it again."""
    last = latest.get((kind, name))
    if status != "error" or last is None or last.operation != HOOK or last.state != journal.FAILED:
        return []
    why = (last.error or "no reason recorded").splitlines()[0]
    return [Finding(HOOK_FAILED, f"{kind} {name!r} is in 'error': its startup hook failed (journal {last.id}: {why})",
                    [_row(table, row_id, name)],
                    _restore(kind, name, last) + f", then run the hook again: start the service, or cinder-promote"
                    f" update-host-replication {_selector(kind, name)} --driver <your driver module:Class>")]


def _fence_findings(kind: str, name: str, table: str, row_id: int, fence: Fence | None,
                    members: list[ServiceStatus], latest: Latest) -> list[Finding]:
    """Every fence that would make reset-active-backend refuse, and every stale one it would clear."""
    if fence is None:
        return []
    host, pid = _holder(fence)
    running = latest.get((kind, name))
    if not fence.live or holder_is_dead(fence.holder):
        why = fence.describe() if not fence.live else f"its holder {fence.holder} is gone (no process {pid} on this host)"
        return [Finding(STALE_FENCE, f"{kind} {name!r} is fenced ('updating') but {why}", [_row(table, row_id, name)],
                        _restore(kind, name, running) + " (clears the stale fence; or start the service: its hook"
                        " takes the fence over)")]
    # A live fence whose holder is none of the target's hosts is an offline run:
    # a member that is up meanwhile races it.
    offline = all(m.row.host.split("@", 1)[0] != host for m in members)
    up = [m for m in members if m.up]
    if offline and up:
        return [Finding(UP_WHILE_PROMOTING,
                        f"{', '.join(repr(m.row.host) for m in up)} is up while {fence.holder} runs the hook offline"
                        f" on {kind} {name!r}", [_row("services", m.row.id, m.row.host) for m in up],
                        "stop the service(s) until the offline run ends: cinder-promote status shows its lease")]
    alive = (f"its holder, process {pid} of this host, is running" if host == socket.gethostname()
             else f"its holder runs on {host}; the fence is live while it renews its lease")
    until = "" if fence.lease_expires_at is None else f"{fence.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC"
    return [Finding(FENCED, f"{kind} {name!r} is fenced by the startup hook: {fence.describe()}; {alive}",
                    [_row(table, row_id, name)],
                    f"wait for the hook to finish (cinder-promote status); to stop it, send SIGTERM to process {pid}"
                    f" on {host} (it releases the fence to 'error'); if that process is dead, after its lease"
                    f" ({until}): " + _restore(kind, name, running))]


def _latest(engine: Engine) -> Latest:
    with engine.connect() as conn:
        if not journal.exists(conn):
            return {}
        latest: Latest = {}
        for entry in journal.entries(conn):  # newest first
            latest.setdefault((entry.target_kind, entry.target), entry)
    return latest


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
    latest = _latest(engine)
    findings: list[Finding] = _lost_but_replicating(engine, {c.row.name for c in report.clusters})
    clusters = {c.row.name: c for c in report.clusters}
    for c in report.clusters:
        findings += _check_cluster(c, [s for s in report.services if s.row.cluster_name == c.row.name], latest)
    for s in report.services:
        if s.row.cluster_name in clusters:
            continue  # its replication state is its cluster's
        r = s.row
        for code, what, counts in ((VOLUMES_CONTRADICT, "volumes", s.volumes), (GROUPS_CONTRADICT, "groups", s.groups)):
            found = _contradiction(code, what, "service", r.host, "services", r.id, r.replication_status, counts,
                                   latest)
            if found:
                findings.append(found)
        if not s.up and r.replication_status in TRANSITIONAL:
            findings.append(Finding(STUCK_TRANSITIONAL,
                                    f"service {r.host!r} is stopped but stuck in {r.replication_status!r}",
                                    [_row("services", r.id, r.host)],
                                    _reset_to("service", r.host, "<the real status>", r.active_backend_id)))
        findings += _fence_findings("service", r.host, "services", r.id, s.fence, [s], latest)
        findings += _hook_failed("service", r.host, "services", r.id, r.replication_status, latest)
    return CheckReport(findings)


def _check_cluster(c: ClusterStatus, members: list[ServiceStatus], latest: Latest) -> list[Finding]:
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
        found = _contradiction(code, what, "cluster", r.name, "clusters", r.id, r.replication_status, counts, latest)
        if found:
            findings.append(found)
    if not c.up and r.replication_status in TRANSITIONAL:
        findings.append(Finding(STUCK_TRANSITIONAL, f"cluster {r.name!r} is stopped but stuck in {r.replication_status!r}",
                                [_row("clusters", r.id, r.name)],
                                _reset_to("cluster", r.name, "<the real status>", r.active_backend_id)))
    findings += _fence_findings("cluster", r.name, "clusters", r.id, c.fence, members, latest)
    findings += _hook_failed("cluster", r.name, "clusters", r.id, r.replication_status, latest)
    return findings
