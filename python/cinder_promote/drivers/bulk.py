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

_KINDS = {"volume": "volume_id", "group": "group_id"}


def _id_of(item: Any) -> str:
    return item if isinstance(item, str) else item["id"]


class UpdateList:
    """An answer list for volumes or groups; equal update dicts are stored once."""

    def __init__(self, kind: str = "volume") -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be 'volume' or 'group', not {kind!r}")
        self._key = _KINDS[kind]
        self._shared: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        self.entries: list[dict[str, Any]] = []

    def add(self, item: Any, /, **updates: Any) -> None:
        """Queue `updates` for a volume or group (the record itself or its id)."""
        if not updates:
            return
        key = tuple(sorted(updates.items()))
        shared = self._shared.get(key)
        if shared is None:
            shared = self._shared[key] = dict(key)
        self.entries.append({self._key: _id_of(item), "updates": shared})

    def add_all(self, items: Iterable[Any], /, **updates: Any) -> None:
        """The same updates for every item: one dict, shared."""
        if not updates:
            return
        shared = dict(sorted(updates.items()))
        self.entries.extend({self._key: _id_of(i), "updates": shared} for i in items)

    def add_each(self, items: Iterable[Any], make: Callable[[Any], dict[str, Any] | None], /) -> None:
        """Updates computed per item; items for which `make` returns nothing are skipped."""
        for item in items:
            updates = make(item)
            if updates:
                self.add(item, **updates)

    def __len__(self) -> int:
        return len(self.entries)


def same_for_all(items: Iterable[Any], kind: str = "volume", **updates: Any) -> list[dict[str, Any]]:
    """Shortcut: the same updates for every volume (or group)."""
    answer = UpdateList(kind)
    answer.add_all(items, **updates)
    return answer.entries
