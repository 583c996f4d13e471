"""The facade over the native core and its pure-Python twin.

The only module that imports `cinder_promote._native`. The engine is the
native one unless `CINDER_PROMOTE_ENGINE=reference` asks for the twin (the
tests run both; `bench --engine` compares them).
"""

from __future__ import annotations

import os
from types import ModuleType

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


REPLICATION_STATUSES: tuple[str, ...] = tuple(_reference.REPLICATION_STATUSES)
FENCE_STATUS: str = _reference.FENCE_STATUS
