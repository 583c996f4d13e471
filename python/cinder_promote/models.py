"""Typed rows read from Cinder's tables, and the clock.

Cinder stores naive UTC timestamps; so do we.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

VOLUME_BINARY = "cinder-volume"


def utcnow() -> datetime:
    """Naive UTC now, as Cinder's `timeutils.utcnow()` returns it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class ServiceRow:
    id: int
    host: str
    binary: str
    cluster_name: str | None
    disabled: bool | None
    disabled_reason: str | None
    frozen: bool | None
    replication_status: str | None
    active_backend_id: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @property
    def heartbeat(self) -> datetime | None:
        """Cinder's rule: the last report is `updated_at`, or `created_at` before the first one."""
        return self.updated_at or self.created_at

    def heartbeat_age(self, now: datetime) -> float | None:
        beat = self.heartbeat
        return None if beat is None else (now - beat).total_seconds()

    def is_up(self, now: datetime, service_down_time: int) -> bool:
        age = self.heartbeat_age(now)
        return age is not None and age <= service_down_time


@dataclass(frozen=True)
class ClusterRow:
    id: int
    name: str
    binary: str
    disabled: bool | None
    disabled_reason: str | None
    frozen: bool | None
    replication_status: str | None
    active_backend_id: str | None
