"""The facade over the native core and its pure-Python twin.

The only module that imports `cinder_promote._native`. The engine is the
native one unless `CINDER_PROMOTE_ENGINE=reference` asks for the twin (the
tests run both; `bench --engine` compares them).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from . import _reference

ENGINES = ("native", "reference")


def _load(name: str) -> ModuleType:
    if name == "native":
        from . import _native

        return _native
    if name == "reference":
        return _reference
    raise ValueError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")


_current: ModuleType = _load(os.environ.get("CINDER_PROMOTE_ENGINE", "native"))


def use(name: str) -> None:
    """Switch the engine for this process."""
    global _current
    _current = _load(name)


def current() -> str:
    return "native" if _current is not _reference else "reference"


def check_replication_status(value: str, allow_fence: bool = False) -> str:
    return _current.check_replication_status(value, allow_fence)


def split_host(value: str) -> tuple[str, str | None, str | None]:
    return _current.split_host(value)


def check_backend_host(value: str) -> tuple[str, str | None, str | None]:
    return _current.check_backend_host(value)


def plan_updates(
    service_update: object,
    volume_updates: object,
    group_updates: object,
    known_volumes: dict[str, tuple[str | None, ...]],
    known_groups: dict[str, tuple[str | None, ...]],
    max_params: int,
    min_group: int,
) -> dict[str, Any]:
    """Check a driver's answer to `update_host_replication` and plan its writes.

    The three driver values are taken as the driver returned them (any type);
    `known_volumes` / `known_groups` map every live id of the backend to a
    tuple whose first values are its current values of VOLUME_KEYS /
    GROUP_KEYS, in that order (more may follow, unread; a value equal to the
    current one is not written; an entry that changes nothing counts in the
    plan's `unchanged`); `max_params` is the database's
    bind-parameter limit (>= 8) and `min_group` the smallest number of
    identical updates written set-based.
    Raises DriverAnswerError naming every problem (the first 50) when the
    answer breaks the contract. See `_reference.plan_updates` for the plan.
    """
    return _current.plan_updates(
        service_update, volume_updates, group_updates, known_volumes, known_groups, max_params, min_group
    )


REPLICATION_STATUSES: tuple[str, ...] = tuple(_reference.REPLICATION_STATUSES)
FENCE_STATUS: str = _reference.FENCE_STATUS
# The columns whose current values `known_volumes` / `known_groups` hold, in their order.
VOLUME_KEYS: tuple[str, ...] = _reference.VOLUME_KEYS
GROUP_KEYS: tuple[str, ...] = _reference.GROUP_KEYS
