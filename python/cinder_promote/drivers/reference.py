"""A reference driver: a simulated backend that replicates to a target.

It is the worked example of the driver guide and the driver of `demo` and
`bench`. The simulated backend B was promoted (the admin ran
reset-active-backend) and its cinder.conf now names C as its
`replication_device`; at start-up the hook tells it the status from the
database, and it answers with what it finds on the "array":

- `enabled` (after a promotion): every replicated volume gets a new pair on
  the target, recorded in `replication_driver_data` (one distinct value per
  volume) with `replication_status` enabled; volumes that were not replicated
  stay as they are; groups are enabled; the service stays `enabled`.
- `disabled`: replication is torn down: volumes and groups `disabled`, the
  pair data cleared.
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

NOT_REPLICATED = ("not-capable", "disabled", None)


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
            volume_updates.add_each(volumes, lambda v: None if v.replication_status in NOT_REPLICATED else {
                "replication_status": "enabled",
                "replication_driver_data": f"{target}:pair-{v.id}",
                "replication_extended_status": f"replicating to {target}",
            })
            group_updates.add_all(groups, replication_status="enabled")
            return {"replication_status": "enabled"}, volume_updates.entries, group_updates.entries
        if replication_status == "disabled":
            volume_updates.add_all(volumes, replication_status="disabled", replication_driver_data=None,
                                   replication_extended_status=None)
            group_updates.add_all(groups, replication_status="disabled")
            return {"replication_status": "disabled"}, volume_updates.entries, group_updates.entries
        return None, [], []
