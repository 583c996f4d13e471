"""cinder-volume stopped (`kill -TERM`, as an init system stops it) while its driver's hook works.

Backend `slow` (the hook driver) answers the hook after 60 s. The service gets SIGTERM
while the hook holds the fence: the fence must be released (replication_status `error`,
the journal entry `failed`) rather than left `updating` until its lease expires, and the
next start runs the hook again and completes.
"""

from __future__ import annotations

import signal

import pytest

from .harness import Database, Operator, phase, wait_until
from .deployment import Deployment
from .test_workflow import arrays, wait_service

pytestmark = pytest.mark.e2e

HOST = "cinder-1@slow"


def hook_calls(rig: Deployment) -> list[dict]:
    return arrays(rig)["arrays"].get("slow-a", {}).get("hook_calls", [])


def test_sigterm_during_hook_releases_the_fence(rig: Deployment, operator: Operator, database: Database) -> None:
    with phase("kill -TERM cinder-volume during a 60 s hook"):
        rig.start_volume("volume-slow", "slow", options={"simulator_hook_delay": 60})
        wait_until("the slow hook's call", lambda: hook_calls(rig), timeout=90)
        assert database.service(HOST).replication_status == "updating"
        rig.signal("volume-slow", signal.SIGTERM)
        assert rig.wait_exit("volume-slow", timeout=45), "cinder-volume did not exit within 45 s of SIGTERM"
    service = database.service(HOST)
    journal = database.journal(HOST)
    assert (journal[-1].operation, journal[-1].state) == ("update-host-replication", "failed"), journal[-1]
    assert service.replication_status == "error"
    operator.promote("history", "--limit", "3")

    with phase("the next start runs the hook again and completes"):
        rig.start_volume("volume-slow", "slow")
        rig.wait_volume_ready("volume-slow")
        row = wait_service(operator, HOST)
    assert len(hook_calls(rig)) == 2
    states = [e.state for e in database.journal(HOST) if e.operation == "update-host-replication"]
    assert states[-2:] in (["failed", "done"], ["failed", "unchanged"]), states
    # The driver said nothing of the service: Cinder derives its status from the driver's
    # stats, as for the control backend (test_workflow), which replicates the same way.
    assert row["Replication Status"] == "enabled"
    rig.stop("volume-slow")
