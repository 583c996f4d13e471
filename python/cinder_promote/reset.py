"""`reset-active-backend`: put a stopped, disabled, frozen service's or
cluster's replication state back in line with reality (SPEC section 4).

Every precondition is checked and every failure reported at once. The writes
are one transaction of compare-and-swap UPDATEs checked by row count, plus a
journal entry; any row that changed since it was read rolls it all back.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from . import engine as core
from .db import journal, queries
from .db.connect import lost_race, retry_lost_races
from .errors import ConcurrentChange, InvalidValue, Refused, UsageError
from .fence import Fence, fence_on, holder_is_dead
from .models import ClusterRow, ServiceRow, utcnow
from .target import Target, check_selector, resolve, running_services

OPERATION = "reset-active-backend"


@dataclass(frozen=True)
class ResetRequest:
    backend_host: str | None = None
    cluster: str | None = None
    replication_status: str = "disabled"
    active_backend_id: str | None = None
    enable_service: bool = False
    dry_run: bool = False


def build_request(
    *,
    backend_host: str | None,
    cluster: str | None,
    replication_status: str | None,
    enable_replication: bool,
    active_backend_id: str | None,
    enable_service: bool,
    dry_run: bool,
) -> ResetRequest:
    """Check the options against each other, as cinder-manage spells them."""
    if enable_replication and replication_status not in (None, "enabled"):
        raise UsageError(
            f"--enable-replication sets the status to 'enabled' but --replication-status says {replication_status!r};"
            " give one of them"
        )
    status = "enabled" if enable_replication else (replication_status or "disabled")
    core.check_replication_status(status)
    if active_backend_id is not None and not 0 < len(active_backend_id) <= 255:
        raise InvalidValue(
            "--active-backend-id must be 1 to 255 characters (Cinder's column size); leave it out to store NULL"
        )
    check_selector(backend_host, cluster)
    return ResetRequest(backend_host, cluster, status, active_backend_id, enable_service, dry_run)


@dataclass(frozen=True)
class RowChange:
    table: str  # "services" or "clusters"
    id: int
    name: str  # host of a service, name of a cluster
    before: dict[str, Any]
    after: dict[str, Any]
    expected: dict[str, Any] = field(repr=False)  # everything the compare-and-swap checks

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_json(self) -> dict[str, Any]:
        key = "host" if self.table == "services" else "name"
        return {"table": self.table, "id": self.id, key: self.name, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ResetResult:
    target: Target
    dry_run: bool
    changed: bool
    journal_id: int | None
    rows: list[RowChange]
    message: str
    operation: str = OPERATION

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "dry_run": self.dry_run,
            "changed": self.changed,
            # What the command writes (or, with --dry-run, would write): "changed" alone is always false on a dry run.
            "would_change": any(r.changed for r in self.rows),
            "journal_id": self.journal_id,
            "rows": [r.to_json() for r in self.rows],
        }


def _written_columns(request: ResetRequest) -> dict[str, Any]:
    after: dict[str, Any] = {
        "replication_status": request.replication_status,
        "active_backend_id": request.active_backend_id,
    }
    if request.enable_service:
        after.update(disabled=False, disabled_reason=None)
    return after


def _change(table: str, row: ServiceRow | ClusterRow, name: str, request: ResetRequest) -> RowChange:
    after = _written_columns(request)
    before = {k: getattr(row, k) for k in after}
    expected: dict[str, Any] = {
        "replication_status": row.replication_status,
        "active_backend_id": row.active_backend_id,
        "disabled": row.disabled,
        "disabled_reason": row.disabled_reason,
        "frozen": row.frozen,
    }
    if isinstance(row, ServiceRow):
        # A heartbeat since our read means the service started: the write must fail.
        expected["updated_at"] = row.updated_at
    return RowChange(table, row.id, name, before, after, expected)


def plan_rows(target: Target, request: ResetRequest) -> list[RowChange]:
    rows = []
    if target.cluster is not None:
        rows.append(_change("clusters", target.cluster, target.cluster.name, request))
    rows += [_change("services", s, s.host, request) for s in target.services]
    return rows


def failed_preconditions(target: Target, fence: Fence | None, now: datetime, service_down_time: int) -> list[str]:
    """Every reason the reset may not run, one line each, naming the row."""
    problems = []
    if target.cluster is not None:
        c = target.cluster
        if not c.disabled:
            problems.append(f"cluster {c.name!r} (id {c.id}) is not disabled: cinder service-disable the cluster first")
        if not c.frozen:
            problems.append(f"cluster {c.name!r} (id {c.id}) is not frozen: cinder freeze-host it first")
    problems += running_services(target, now, service_down_time)
    for s in target.services:
        if not s.disabled:
            problems.append(f"service {s.host!r} (id {s.id}) is not disabled: cinder service-disable {s.host} cinder-volume")
        if not s.frozen:
            problems.append(f"service {s.host!r} (id {s.id}) is not frozen: cinder freeze-host {s.host}")
    if fence is not None and fence.live and not holder_is_dead(fence.holder):
        problems.append(f"{target.label} is fenced by the startup hook: {fence.describe()}; cinder-promote check"
                        " says whether its holder is alive and what clears it")
    return problems


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reset_active_backend(engine: Engine, request: ResetRequest, *, service_down_time: int) -> ResetResult:
    now = utcnow()
    with engine.connect() as conn:
        target = resolve(conn, backend_host=request.backend_host, cluster=request.cluster)
        status_row = target.cluster or target.services[0]
        fence = fence_on(conn, target.kind, target.name, status_row.replication_status, now)
    rows = plan_rows(target, request)
    if not any(r.changed for r in rows):
        return ResetResult(target, request.dry_run, False, None, rows,
                           f"{target.label} is already in the requested state; nothing to do")
    problems = failed_preconditions(target, fence, now, service_down_time)
    if problems:
        raise Refused(
            f"refused to reset {target.label}: {len(problems)} precondition(s) failed; nothing was written",
            details=problems,
        )
    if request.dry_run:
        return ResetResult(target, True, False, None, rows, f"dry run: {target.label} would be reset; nothing was written")
    journal.ensure_table(engine)

    def write() -> int:
        with engine.begin() as conn:
            for row in rows:
                if row.changed and not queries.compare_and_swap(conn, row.table, row.id, row.expected, row.after):
                    raise ConcurrentChange(
                        f"{row.table[:-1]} {row.name!r} (id {row.id}) changed since it was read;"
                        " rolled back, nothing was written"
                    )
            if target.cluster is not None:
                members = queries.member_ids(conn, target.cluster.name)
                if members != sorted(s.id for s in target.services):
                    raise ConcurrentChange(
                        f"the members of cluster {target.name!r} changed since they were read;"
                        " rolled back, nothing was written"
                    )
            if fence is not None:
                journal.mark_taken_over(conn, list(fence.journal_ids), now, f"stale fence cleared by {OPERATION}")
            return journal.insert(
                conn, now=now, operation=OPERATION, target_kind=target.kind, target=target.name,
                state=journal.DONE, holder=holder_name(), status_before=status_row.replication_status,
                before=[_journal_row(r, "before") for r in rows], after=[_journal_row(r, "after") for r in rows],
                counts={"clusters": int(target.cluster is not None), "services": len(target.services)},
            )

    try:
        # Like Cinder's conditional_update under oslo.db's deadlock retry: the same
        # compare-and-swap is tried again; once the winner's commit is visible it
        # matches no row and we report the change.
        journal_id = retry_lost_races(write, f"the reset of {target.label}")
    except Exception as exc:
        if lost_race(exc):
            raise ConcurrentChange(
                f"another writer changed {target.label} at the same time; rolled back, nothing was written"
            ) from exc
        raise
    return ResetResult(target, False, True, journal_id, rows, f"{target.label} was reset (journal {journal_id})")


def _journal_row(row: RowChange, which: str) -> dict[str, Any]:
    values = row.before if which == "before" else row.after
    return {"table": row.table, "id": row.id, "name": row.name, "values": values}
