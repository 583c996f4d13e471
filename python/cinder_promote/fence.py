"""The startup hook's fence as other commands see it (SPEC section 6).

A service or cluster whose replication_status is `updating` is fenced. The
fence is live while a running journal entry on it holds an unexpired lease;
otherwise it is stale and may be taken over or cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from .db import journal
from .engine import FENCE_STATUS


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
    newest = (live or running or [None])[0]
    return Fence(
        target_kind=target_kind,
        target=target,
        live=bool(live),
        holder=newest.holder if newest else None,
        lease_expires_at=newest.lease_expires_at if newest else None,
        journal_ids=tuple(e.id for e in running),
    )
