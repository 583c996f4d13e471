"""Drivers for the hook's tests: they stand in for a storage array, the one
thing that cannot run here. Loaded by module:Class from subprocesses too
(PYTHONPATH=tests)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cinder_promote.drivers.bulk import UpdateList


class DistinctDriver:
    """Every volume gets its own data; a third change status; the rest share one update."""

    def __init__(self, service_status: str = "enabled", delay: str = "0", marker_dir: str = "") -> None:
        self.service_status = service_status
        self.delay = float(delay)
        self.marker_dir = marker_dir
        self.seen: dict[str, Any] = {}

    def update_host_replication(self, context, replication_status, active_backend_id, volumes, groups=None):
        if self.marker_dir:
            Path(self.marker_dir, f"called-{os.getpid()}").write_text(f"{replication_status}\n")
        if self.delay:
            time.sleep(self.delay)
        self.seen = {"context": context, "status": replication_status, "backend": active_backend_id,
                     "volumes": sorted(v.id for v in volumes), "groups": sorted(g["id"] for g in groups or []),
                     "hosts": {v.host for v in volumes}}
        answer = UpdateList("volume")
        for i, volume in enumerate(volumes):
            if i % 3 == 0:
                answer.add(volume, replication_status="enabled", replication_driver_data=f"pair-{volume.id}",
                           status="in-use" if volume.status == "available" else volume.status)
            elif i % 3 == 1:
                answer.add(volume, replication_status="enabled", replication_driver_data=f"pair-{volume.id}")
            else:
                answer.add(volume, replication_status="enabled", replication_extended_status="shared")
        groups_answer = UpdateList("group")
        groups_answer.add_all(groups or [], replication_status="enabled")
        return {"replication_status": self.service_status}, answer.entries, groups_answer.entries


class AnswerDriver:
    """Returns a fixed answer (or raises), for the bad-answer tests."""

    def __init__(self, answer: Any = None, raises: BaseException | None = None) -> None:
        self.answer, self.raises = answer, raises
        self.calls = 0

    def update_host_replication(self, context, replication_status, active_backend_id, volumes, groups=None):
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        return self.answer(volumes, groups) if callable(self.answer) else self.answer


class NoHookDriver:
    def do_setup(self, context):
        pass
