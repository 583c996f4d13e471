"""Typed rows read from Cinder's tables, and the clock.

Cinder stores naive UTC timestamps; so do we.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

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


class Record:
    """A volume or group row as handed to a driver: attribute and item access
    to its columns, as Cinder's versioned objects allow (`v.id`, `v['host']`).

    It wraps the database row without copying it, so that 100,000 of them stay
    small. Volumes also answer `name_id` and `name` as Cinder computes them.
    """

    __slots__ = ("_row",)

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        try:
            return self._row._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._row._mapping[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._row._mapping.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._row._mapping

    def keys(self) -> list[str]:
        return list(self._row._mapping.keys())

    def as_dict(self) -> dict[str, Any]:
        return dict(self._row._mapping)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.get('id')!r} host={self.get('host')!r}>"


class VolumeRecord(Record):
    __slots__ = ()
    NAME_TEMPLATE = "volume-%s"  # Cinder's default volume_name_template

    @property
    def name_id(self) -> str:
        return self.get("_name_id") or self["id"]

    @property
    def name(self) -> str:
        return self.NAME_TEMPLATE % self.name_id


class GroupRecord(Record):
    __slots__ = ()


def as_mapping(record: Record | Mapping[str, Any]) -> Mapping[str, Any]:
    return record._row._mapping if isinstance(record, Record) else record
