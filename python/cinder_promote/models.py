"""Typed rows read from Cinder's tables, and the clock.

Cinder stores naive UTC timestamps; so do we.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
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


def _column_getter(index: int, name: str) -> Any:
    # namedtuple's C accessor reads the tuple slot directly; a property is the fallback.
    try:
        from collections import _tuplegetter  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - other interpreters
        return property(lambda self: tuple.__getitem__(self, index), doc=name)
    return _tuplegetter(index, name)


class Record(tuple):
    """A volume or group row as handed to a driver: attribute and item access
    to its columns, as Cinder's versioned objects allow (`v.id`, `v['host']`).

    A record is the row's tuple itself (no copy, no per-row dict), with one
    attribute per column defined on its class by `record_type`: 100,000 of
    them stay small and reading a column costs what a namedtuple's does.
    Where the database driver hands a column over in its stored form (SQLite's
    timestamps as text, its booleans as integers), the column's attribute
    converts it when it is read, so that loading costs nothing per column.
    Volumes also answer `name_id` and `name` as Cinder computes them.
    """

    __slots__ = ()
    COLUMNS: tuple[str, ...] = ()
    _index: dict[str, int] = {}
    _read: dict[str, Callable[[Any], Any]] = {}  # column -> its value of a record

    def __getitem__(self, name: Any) -> Any:
        if isinstance(name, str):
            try:
                read = self._read[name]
            except KeyError:
                raise KeyError(name) from None
            return read(self)
        return tuple.__getitem__(self, name)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not columns (those are class attributes).
        raise AttributeError(f"{type(self).__name__} has no column {name!r}")

    def get(self, name: str, default: Any = None) -> Any:
        read = self._read.get(name)
        return default if read is None else read(self)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def keys(self) -> list[str]:
        return list(self.COLUMNS)

    def as_dict(self) -> dict[str, Any]:
        return {name: read(self) for name, read in self._read.items()}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.get('id')!r} host={self.get('host')!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self).__name__, self.COLUMNS, tuple(self[c] for c in self.COLUMNS)))


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


_record_types: dict[tuple[Any, ...], type] = {}


def _converted(index: int, name: str, convert: Callable[[Any], Any]) -> property:
    def read(self: Record) -> Any:
        return convert(tuple.__getitem__(self, index))

    return property(read, doc=name)


def record_type(base: type[Record], columns: tuple[str, ...],
                converters: Mapping[str, Callable[[Any], Any]] | None = None) -> type[Record]:
    """The record class of `base` for rows with these columns, whose stored
    values `converters` turn into Python values when read (made once, then reused)."""
    converters = converters or {}
    key = (base, columns, tuple(sorted(converters.items(), key=lambda item: item[0])))
    cls = _record_types.get(key)
    if cls is None:
        namespace: dict[str, Any] = {"__slots__": (), "COLUMNS": columns,
                                     "_index": {c: i for i, c in enumerate(columns)}}
        read: dict[str, Callable[[Any], Any]] = {}
        for i, column in enumerate(columns):
            getter = _converted(i, column, converters[column]) if column in converters else _column_getter(i, column)
            read[column] = getter.__get__
            if not hasattr(base, column):  # a method of the record (none in Cinder's tables) keeps its name
                namespace[column] = getter
        namespace["_read"] = read
        cls = _record_types[key] = type(base.__name__, (base,), namespace)
    return cls


def make_records(base: type[Record], columns: tuple[str, ...], rows: Any) -> list[Record]:
    """Records of `base` from an iterable of row tuples (or rows that iterate as tuples)."""
    cls = record_type(base, columns)
    return list(map(tuple.__new__, itertools.repeat(cls), rows))


def _rebuild(name: str, columns: tuple[str, ...], values: tuple[Any, ...]) -> Record:
    base = {"VolumeRecord": VolumeRecord, "GroupRecord": GroupRecord}.get(name, Record)
    return tuple.__new__(record_type(base, columns), values)


def as_mapping(record: Record | Mapping[str, Any]) -> Mapping[str, Any]:
    return record.as_dict() if isinstance(record, Record) else record
