"""A reference driver: a simulated backend that replicates to a target.

It is the worked example of the driver guide and the driver of `demo` and
`bench`. The simulated backend B was promoted (the admin ran
reset-active-backend) and its cinder.conf now names C as its
`replication_device`; at start-up the hook tells it the status from the
database, and it answers with what it finds on the "array":

- `enabled` (after a promotion): every volume that is replicated and alive on
  the new primary (see `replicated_and_alive`) gets a new pair on the target,
  recorded in `replication_driver_data` (one distinct value per volume) with
  `replication_status` enabled; volumes that were never replicated, and
  volumes lost with the old primary (Cinder's failover left them `error` /
  `failover-error`), stay exactly as they are: there is nothing on this array
  to pair. Replicated groups are enabled; the service stays `enabled`.
- `disabled`: replication is torn down for the same volumes and groups:
  `disabled`, the pair data cleared.
- `failed-over` (or anything else): the array is still failed over and nothing
  changes.

Options (strings, as `--driver-option key=value` passes them):
`replication_target` (default backend-c), `fail` = "raise" to simulate a
broken array, `delay` seconds to simulate a slow one.
"""

from __future__ import annotations

import time
from typing import Any

from .bulk import UpdateList

# After a failover, a volume that now lives on this array says so: Cinder's
# failover_host left it `failed-over` (or it was `enabled` before the reset).
# `failover-error` (and `error`) mean the failover could not bring it over.
REPLICATED_HERE = ("enabled", "failed-over")


def replicated_and_alive(record: Any) -> bool:
    """Whether a volume (or group) was replicated and survived on this array.

    A driver with a real array asks the array; the reference driver reads
    what Cinder's failover recorded.
    """
    return record.replication_status in REPLICATED_HERE and record.status != "error"


class ReferenceDriver:
    """Implements `update_host_replication`, as a Cinder driver would (SPEC section 5)."""

    def __init__(self, replication_target: str = "backend-c", fail: str = "", delay: str | float = 0) -> None:
        self.replication_target = replication_target
        self.fail = fail
        self.delay = float(delay)
        self.calls = 0
        self.ready = False

    def do_setup(self, context: Any) -> None:
        self.ready = True

    def check_for_setup_error(self) -> None:
        if not self.ready:
            raise RuntimeError("do_setup was not called")

    def update_host_replication(self, context: Any, replication_status: str | None,
                                active_backend_id: str | None, volumes: list[Any], groups: list[Any] | None = None):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.fail == "raise":
            raise RuntimeError("the array did not answer")
        groups = groups or []
        volume_updates, group_updates = UpdateList("volume"), UpdateList("group")
        if replication_status == "enabled" and active_backend_id is None:
            target = self.replication_target
            # A new pair on the target for each replicated volume: distinct data per volume.
            volume_updates.add_each(volumes, lambda v: {
                "replication_status": "enabled",
                "replication_driver_data": f"{target}:pair-{v.id}",
                "replication_extended_status": f"replicating to {target}",
            } if replicated_and_alive(v) else None)
            group_updates.add_all([g for g in groups if replicated_and_alive(g)], replication_status="enabled")
            return {"replication_status": "enabled"}, volume_updates.entries, group_updates.entries
        if replication_status == "disabled":
            volume_updates.add_all([v for v in volumes if replicated_and_alive(v)], replication_status="disabled",
                                   replication_driver_data=None, replication_extended_status=None)
            group_updates.add_all([g for g in groups if replicated_and_alive(g)], replication_status="disabled")
            return {"replication_status": "disabled"}, volume_updates.entries, group_updates.entries
        return None, [], []
