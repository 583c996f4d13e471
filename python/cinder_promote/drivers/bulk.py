"""Building `update_host_replication` answers for thousands of volumes, fast.

The hook's planner groups identical updates into set-based UPDATEs and
recognises an `updates` dict it has already seen by identity, so the cheapest
answer to build is also the cheapest to plan and write: share one dict among
every volume that gets the same values. `UpdateList` does that for you.

    updates = UpdateList("volume")
    for volume in volumes:
        if volume.replication_status == "failed-over":
            updates.add(volume, replication_status="enabled")      # shared dict
        else:
            updates.add(volume, replication_driver_data=pair_id(volume))  # its own
    return service_update, updates.entries, group_updates.entries
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..models import Record

_KINDS = {"volume": "volume_id", "group": "group_id"}
# Equal update dicts are shared through a cache of this many distinct ones.
# When it fills while fewer than one in SHARE_RATIO updates repeat an earlier
# one (a pair id per volume: every update distinct), the list stops looking:
# the planner groups equal values anyway, sharing only saves it time.
MAX_SHARED = 4096
SHARE_RATIO = 8


def _id_of(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Record):
        return item.id  # type: ignore[no-any-return]
    return item["id"]  # type: ignore[no-any-return]


class UpdateList:
    """An answer list for volumes or groups; equal update dicts are stored once
    (while they repeat: see MAX_SHARED)."""

    def __init__(self, kind: str = "volume") -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be 'volume' or 'group', not {kind!r}")
        self._key = _KINDS[kind]
        self._shared: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        self._sharing = True
        self._hits = self._misses = 0
        self.entries: list[dict[str, Any]] = []

    def add(self, item: Any, /, **updates: Any) -> None:
        """Queue `updates` for a volume or group (the record itself or its id)."""
        if updates:
            self.entries.append({self._key: _id_of(item), "updates": self._share(updates)})

    def _share(self, updates: dict[str, Any]) -> dict[str, Any]:
        """The one dict equal to `updates` (which becomes it when it is new: the caller's is a fresh copy)."""
        if not self._sharing:
            return updates
        key = tuple(sorted(updates.items()))
        shared = self._shared.get(key)
        if shared is not None:
            self._hits += 1
            return shared
        self._misses += 1
        if len(self._shared) >= MAX_SHARED:
            self._shared.clear()
            if self._hits * SHARE_RATIO < self._misses:
                self._sharing = False
                return updates
        self._shared[key] = updates
        return updates

    def add_all(self, items: Iterable[Any], /, **updates: Any) -> None:
        """The same updates for every item: one dict, shared."""
        if not updates:
            return
        shared = dict(sorted(updates.items()))
        self.entries.extend({self._key: _id_of(i), "updates": shared} for i in items)

    def add_each(self, items: Iterable[Any], make: Callable[[Any], dict[str, Any] | None], /) -> None:
        """Updates computed per item; items for which `make` returns nothing are skipped."""
        share, append, key = self._share, self.entries.append, self._key
        for item in items:
            updates = make(item)
            if updates:
                append({key: _id_of(item), "updates": share(dict(updates))})

    def __len__(self) -> int:
        return len(self.entries)


def same_for_all(items: Iterable[Any], kind: str = "volume", **updates: Any) -> list[dict[str, Any]]:
    """Shortcut: the same updates for every volume (or group)."""
    answer = UpdateList(kind)
    answer.add_all(items, **updates)
    return answer.entries
