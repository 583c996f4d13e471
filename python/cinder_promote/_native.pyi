from typing import Any

__all__ = ["__version__", "REPLICATION_STATUSES", "FENCE_STATUS", "VOLUME_KEYS", "GROUP_KEYS", "check_replication_status", "split_host", "check_backend_host", "plan_updates"]

__version__: str
REPLICATION_STATUSES: list[str]
FENCE_STATUS: str
VOLUME_KEYS: tuple[str, ...]
GROUP_KEYS: tuple[str, ...]

def check_replication_status(value: str, allow_fence: bool = False) -> str: ...
def split_host(value: str) -> tuple[str, str | None, str | None]: ...
def check_backend_host(value: str) -> tuple[str, str | None, str | None]: ...
def plan_updates(
    service_update: object,
    volume_updates: object,
    group_updates: object,
    known_volumes: dict[str, tuple[str | None, ...]],
    known_groups: dict[str, tuple[str | None, ...]],
    max_params: int,
    min_group: int,
) -> dict[str, Any]: ...
