"""The startup hook's fence and its journal lease (SPEC section 6).

A service or cluster whose replication_status is `updating` is fenced. The
fence is taken by a compare-and-swap on that status together with a running
journal entry that names the holder, the lease expiry and the status before
the fence. It is live while that lease is unexpired; a stale fence is taken
over by a compare-and-swap on the journal entry, and the taker works from the
status recorded before the fence.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from .db import journal, queries
from .db.connect import RACE_ATTEMPTS, database_message, lost_race, private_engine, race_backoff
from .engine import FENCE_STATUS
from .errors import Refused
from .models import ClusterRow, ServiceRow, utcnow
from .native_threads import native_threading
from .target import Target

LOG = logging.getLogger(__name__)
OPERATION = "update-host-replication"


@dataclass(frozen=True)
class Fence:
    target_kind: str
    target: str
    live: bool
    holder: str | None
    lease_expires_at: datetime | None
    journal_ids: tuple[int, ...]  # the running entries that hold or held it

    def describe(self) -> str:
        if self.live:
            return f"held by {self.holder} until {self.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC (journal {self.journal_ids[0]})"
        if self.journal_ids:
            return f"stale: the lease of {self.holder} expired (journal {self.journal_ids[0]})"
        return "stale: no journal entry holds it"

    def to_json(self) -> dict:
        return {
            "live": self.live,
            "holder": self.holder,
            "lease_expires_at": None if self.lease_expires_at is None else self.lease_expires_at.isoformat(),
            "journal_id": self.journal_ids[0] if self.journal_ids else None,
        }


def fence_on(conn: Connection, target_kind: str, target: str, replication_status: str | None, now: datetime) -> Fence | None:
    """The fence on a service or cluster, or None when its status is not `updating`."""
    if replication_status != FENCE_STATUS:
        return None
    running = journal.running_entries(conn, target_kind, target)
    live = [e for e in running if e.lease_is_live(now)]
    newest = live[0] if live else running[0] if running else None
    return Fence(
        target_kind=target_kind,
        target=target,
        live=bool(live),
        holder=newest.holder if newest else None,
        lease_expires_at=newest.lease_expires_at if newest else None,
        journal_ids=tuple(e.id for e in running),
    )


@dataclass(frozen=True)
class Lease:
    """A fence we hold."""

    target: Target
    journal_id: int
    holder: str
    lease_seconds: float
    status_before: str | None  # what the driver is told: the status before the (first) fence
    active_backend_id: str | None
    taken_over_from: int | None

    @property
    def table(self) -> str:
        return "clusters" if self.target.cluster is not None else "services"

    @property
    def row_id(self) -> int:
        return self.target.cluster.id if self.target.cluster is not None else self.target.services[0].id


@dataclass(frozen=True)
class Busy:
    """Another holder's live fence stands on the target."""

    fence: Fence


def _status_row(conn: Connection, target: Target) -> ServiceRow | ClusterRow:
    """Re-read the row that carries the fence: the cluster's, or the service's."""
    rows: list[ServiceRow | ClusterRow]
    if target.cluster is not None:
        rows = [c for c in queries.volume_clusters(conn, target.cluster.name) if c.id == target.cluster.id]
    else:
        rows = [s for s in queries.volume_services(conn, target.services[0].host) if s.id == target.services[0].id]
    if not rows:
        raise Refused(f"{target.label} disappeared (deleted) while taking the fence; nothing was written")
    return rows[0]


def acquire(engine: Engine, target: Target, *, holder: str, lease_seconds: float,
            attempts: int = RACE_ATTEMPTS) -> Lease | Busy:
    """Take the fence on `target`, take over a stale one, or report the live one.

    A compare-and-swap counts only once its COMMIT succeeded: on Galera the
    loser's UPDATE usually matches its row and fails at COMMIT (or at the next
    statement) with a certification failure. A lost race, found either way,
    means: read the fence again, after a short backoff.
    """
    journal.ensure_table(engine)
    for attempt in range(attempts):
        try:
            outcome = _try_acquire(engine, target, holder, lease_seconds)
        except Exception as exc:
            if not lost_race(exc):
                raise
            LOG.info("taking the fence on %s lost a race (%s); reading it again", target.label,
                     database_message(engine, exc))
            outcome = None
        if outcome is not None:
            return outcome
        time.sleep(race_backoff(attempt))
    raise Refused(f"could not take the fence on {target.label}: it kept changing under us; nothing was written")


def _try_acquire(engine: Engine, target: Target, holder: str, lease_seconds: float) -> Lease | Busy | None:
    now = utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    kind, table = target.kind, ("clusters" if target.cluster is not None else "services")
    with engine.begin() as conn:
        row = _status_row(conn, target)
        if row.replication_status != FENCE_STATUS:
            if not queries.set_replication(conn, table, row.id, expected_status=row.replication_status,
                                           values={"replication_status": FENCE_STATUS}):
                return None  # someone fenced it between our read and write: look again
            entry_id = journal.insert(
                conn, now=now, operation=OPERATION, target_kind=kind, target=target.name, state=journal.RUNNING,
                holder=holder, lease_expires_at=expires, status_before=row.replication_status,
                before={"replication_status": row.replication_status, "active_backend_id": row.active_backend_id},
            )
            return Lease(target, entry_id, holder, lease_seconds, row.replication_status, row.active_backend_id, None)
        fence = fence_on(conn, kind, target.name, row.replication_status, now)
        assert fence is not None
        if fence.live and not holder_is_dead(fence.holder):
            return Busy(fence)
        running = journal.running_entries(conn, kind, target.name)
        if not running:
            raise Refused(
                f"{target.label} is fenced (replication_status 'updating') but no journal entry holds the fence;"
                " clear it with reset-active-backend; nothing was written"
            )
        stale = running[0]
        if not journal.take_over(conn, stale, now, holder, expired=not holder_is_dead(stale.holder)):
            return None
        journal.mark_taken_over(conn, [e.id for e in running[1:]], now, f"lease expired; taken over by {holder}")
        entry_id = journal.insert(
            conn, now=now, operation=OPERATION, target_kind=kind, target=target.name, state=journal.RUNNING,
            holder=holder, lease_expires_at=expires, status_before=stale.status_before,
            before={"replication_status": stale.status_before, "active_backend_id": row.active_backend_id,
                    "taken_over_from": stale.id},
        )
        LOG.warning("took over the stale fence on %s from %s (journal %s)", target.label, stale.holder, stale.id)
        return Lease(target, entry_id, holder, lease_seconds, stale.status_before, row.active_backend_id, stale.id)


def holder_is_dead(holder: str | None) -> bool:
    """A holder `hostname:pid` of this very host whose process is gone: its fence is stale now.

    So a volume service restarted right after a crash takes its own fence back
    without waiting for the lease.
    """
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def wait_until_released(engine: Engine, target: Target, timeout: float, poll: float = 1.0) -> bool:
    """Wait for another holder's fence to go; True when it did within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            row = _status_row(conn, target)
            fence = fence_on(conn, target.kind, target.name, row.replication_status, utcnow())
        if fence is None or not fence.live:
            return fence is None
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


class LeaseKeeper:
    """Renews a lease from a thread of its own while the hook works.

    If a renewal finds the entry no longer ours (taken over after a stall),
    `lost` is set; the final write checks the entry again and refuses to commit.
    """

    def __init__(self, engine: Engine, lease: Lease) -> None:
        # Under eventlet (cinder-volume) a `threading.Thread` is a green thread that
        # runs only when the driver yields; a driver blocking in native code would
        # let the lease expire. So the keeper is a native thread, with a private
        # connection of its own.
        threads = native_threading()
        self._engine = private_engine(engine)
        self._shared_engine = self._engine is engine
        self._lease = lease
        self._stop = threads.Event()
        self._thread = threads.Thread(target=self._run, name=f"lease-{lease.journal_id}", daemon=True)
        self.lost = False

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if not self._shared_engine:
            self._engine.dispose()

    def _run(self) -> None:
        interval = max(self._lease.lease_seconds / 4, 0.2)
        while not self._stop.wait(interval):
            try:
                now = utcnow()
                with self._engine.begin() as conn:
                    if not journal.renew(conn, self._lease.journal_id, self._lease.holder,
                                         now + timedelta(seconds=self._lease.lease_seconds), now):
                        self.lost = True
                        return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried; expiry is the safety net
                LOG.warning("could not renew the lease of journal %s: %s", self._lease.journal_id,
                            database_message(self._engine, exc))
                LOG.debug("the renewal failed with", exc_info=True)
