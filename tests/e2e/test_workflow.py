"""The admin guide's story on a running Cinder, typed as an operator types it.

Backend `replicated` (cinder-1@replicated, the simulator driver with the hook) replicates
array-a -> array-b; `control` (the same driver without the hook) does the same
control-a -> control-b and shows what stock Cinder does. The steps run in order and
share the deployment: each test is one step of docs/admin-guide.md, driven by the real
`cinder` client, `cinder-manage` and `cinder-promote`, checked through the API and in
the database.

Which test catches which finding of issue 12:
- finding 1 (a fresh hook service stays `not-capable` and cannot fail over):
  test_fresh_service_is_like_the_control, test_fail_over_to_b;
- finding 2 (a lost volume re-enabled; `check` blind to error+enabled):
  test_hook_repairs_to_c (the simulator), test_reference_driver_leaves_lost_volumes and
  test_check_flags_error_enabled (the reference driver, offline, on the control backend);
- finding 3 (every restart rewrites every volume and journals a promotion):
  test_restart_with_unchanged_answer_writes_nothing.
"""

from __future__ import annotations

import json
import time

import pytest

from .harness import Database, Operator, phase, wait_until
from .deployment import Deployment
from .simulator_state import array_state, read_state

pytestmark = pytest.mark.e2e

HOST = "cinder-1@replicated"
CONTROL = "cinder-1@control"
REFERENCE = "cinder_promote.drivers.reference:ReferenceDriver"


def service_is(operator: Operator, host: str, state: str, replication: str | None = None):
    def check():
        row = operator.services().get(host)
        if row and row["State"] == state and (replication is None or row["Replication Status"] == replication):
            return row
        return None
    return check


def wait_service(operator: Operator, host: str, state: str = "up", replication: str | None = None,
                 timeout: float = 60) -> dict[str, str]:
    return wait_until(f"{host} {state} {replication or ''}", service_is(operator, host, state, replication), timeout)


def wait_volume(operator: Operator, name: str, status: str = "available", timeout: float = 60) -> dict[str, str]:
    def check():
        shown = operator.show(name)
        assert shown["status"] != "error" or status == "error", f"{name} went to error: {shown}"
        return shown if shown["status"] == status else None
    return wait_until(f"volume {name} {status}", check, timeout)


def changes(journal: list) -> list[tuple[str, str]]:
    """The journal's entries that changed something (an unchanged start is kept apart)."""
    return [(e.operation, e.state) for e in journal if e.state != "unchanged"]


def arrays(rig: Deployment) -> dict:
    return read_state(str(rig.arrays_file))


@pytest.fixture(scope="module")
def story() -> dict:
    """What the steps hand on to the next ones."""
    return {}


def test_fresh_service_is_like_the_control(rig: Deployment, operator: Operator) -> None:
    """Finding 1: the hook driver's fresh service gets the control backend's replication status."""
    # "Install it next to Cinder": the deployment's Cinder carries the whole series.
    assert "cinder is patched" in operator.run("cinder-promote", "cinder-patch-status").stdout
    with phase("start cinder-volume for replicated and control (fresh services)"):
        rig.start_volume("volume-replicated", "replicated")
        rig.start_volume("volume-control", "control")
        rig.wait_volume_ready("volume-replicated")
        rig.wait_volume_ready("volume-control")
        control = wait_service(operator, CONTROL)
        replicated = wait_service(operator, HOST)
    assert arrays(rig)["arrays"]["array-a"]["hook_calls"]
    assert control["Replication Status"] == "enabled"
    assert replicated["Replication Status"] == control["Replication Status"]
    assert replicated["Active Backend ID"] == control["Active Backend ID"] == "-"


def test_create_volumes(rig: Deployment, operator: Operator, database: Database, story: dict) -> None:
    with phase("volume types and volumes created through the API"):
        for name, backend, replicated in (("replicated", "replicated", True), ("plain", "replicated", False),
                                          ("control-replicated", "control", True), ("control-plain", "control", False)):
            operator.cinder("type-create", name)
            specs = [f"volume_backend_name={backend}"] + (["replication_enabled=<is> True"] if replicated else [])
            operator.cinder("type-key", name, "set", *specs)
        for name, vtype in (("r1", "replicated"), ("r2", "replicated"), ("r-lost", "replicated"), ("p1", "plain"),
                            ("c1", "control-replicated"), ("c-lost", "control-replicated"),
                            ("c-plain", "control-plain")):
            operator.cinder("create", "--volume-type", vtype, "--name", name, "1")
        shown = {name: wait_volume(operator, name) for name in ("r1", "r2", "r-lost", "p1", "c1", "c-lost", "c-plain")}
    story["ids"] = {name: v["id"] for name, v in shown.items()}
    for name in ("r1", "r2", "r-lost"):
        assert shown[name]["replication_status"] == "enabled"
        row = database.volume(name)
        assert row.provider_location == f"array-a:{row.id}"
        assert row.replication_driver_data == f"array-a/{row.id}->array-b/{row.id}"
    # A type without replication_enabled: Cinder leaves the volume's replication_status NULL.
    assert shown["p1"]["replication_status"] == "None"
    assert (database.volume("p1").replication_status, database.volume("p1").replication_driver_data) == (None, None)
    state = arrays(rig)["arrays"]
    assert set(state["array-b"]["volumes"]) == {story["ids"][n] for n in ("r1", "r2", "r-lost")}
    assert story["ids"]["p1"] in state["array-a"]["volumes"]


def test_fail_over_to_b(rig: Deployment, operator: Operator, database: Database, story: dict) -> None:
    """Finding 1: the hook driver's service fails over as the control's does. A is then lost."""
    ids = story["ids"]
    # r-lost's and c-lost's replicas never made it to the target: they are lost with A.
    with array_state(str(rig.arrays_file)) as state:
        del state["arrays"]["array-b"]["volumes"][ids["r-lost"]]
        del state["arrays"]["control-b"]["volumes"][ids["c-lost"]]
    with phase("cinder failover-host (replicated to array-b, control to control-b)"):
        operator.cinder("failover-host", "--backend_id", "array-b", HOST)
        operator.cinder("failover-host", "--backend_id", "control-b", CONTROL)
        failed_over = wait_service(operator, HOST, replication="failed-over")
        control = wait_service(operator, CONTROL, replication="failed-over")
    assert failed_over["Active Backend ID"] == "array-b"
    assert control["Active Backend ID"] == "control-b"
    for name in ("r1", "r2"):
        shown = operator.show(name)
        assert (shown["status"], shown["replication_status"]) == ("available", "failed-over")
        assert database.volume(name).provider_location == f"array-b:{ids[name]}"
    # Lost with A: the replicated volumes without a replica, and the plain ones (Cinder hands
    # a NULL replication_status to the driver as replicated, and the array has no copy).
    for lost in ("r-lost", "c-lost", "p1", "c-plain"):
        shown = operator.show(lost)
        assert (shown["status"], shown["replication_status"]) == ("error", "failover-error")


def test_freeze_stop_disable(rig: Deployment, operator: Operator, database: Database) -> None:
    """Admin guide steps 1-3 (and 4: status and check while nothing is reset yet)."""
    with phase("freeze, stop, disable"):
        operator.cinder("freeze-host", HOST)
        rig.stop("volume-replicated")
        operator.cinder("service-disable", HOST, "cinder-volume", "--reason", "promoting array-b")
    service = database.service(HOST)
    assert (service.frozen, service.disabled, service.replication_status) == (1, 1, "failed-over")
    assert arrays(rig)["arrays"]["array-b"]["frozen"] == [HOST]


def test_reset_refused_while_heartbeat_is_fresh(rig: Deployment, operator: Operator, database: Database) -> None:
    before = database.service(HOST)
    refused = operator.manage("db", "reset_active_backend", "--backend-host", HOST, "--enable-replication", expect=1)
    assert HOST in refused.stdout
    after = database.service(HOST)
    assert (after.replication_status, after.active_backend_id) == ("failed-over", "array-b")
    assert after.updated_at == before.updated_at


def test_status_and_check_before_reset(rig: Deployment, operator: Operator) -> None:
    """Admin guide step 4, once the service is seen down."""
    with phase("wait service_down_time (10 s) until the service is down"):
        wait_service(operator, HOST, state="down", timeout=40)
    status = operator.promote("status", "--backend-host", HOST, "--format", "json")
    service = json.loads(status.stdout)
    assert "failed-over" in status.stdout and "array-b" in status.stdout, service
    operator.promote("check")


def test_reset_active_backend(rig: Deployment, operator: Operator, database: Database) -> None:
    """Admin guide steps 5 and 6: cinder.conf to B primary + C target, then the reset."""
    rig.set_backend("replicated", array="array-b", target="array-c")
    operator.promote("reset-active-backend", "--backend-host", HOST, "--enable-replication", "--dry-run")
    assert database.service(HOST).replication_status == "failed-over"
    with phase("cinder-manage db reset_active_backend"):
        done = operator.manage("db", "reset_active_backend", "--backend-host", HOST, "--enable-replication")
    assert "enabled" in done.stdout
    service = database.service(HOST)
    assert (service.replication_status, service.active_backend_id, service.frozen, service.disabled) == (
        "enabled", None, 1, 1)
    # The volumes still say failed-over until the hook runs: check says so (exit 1).
    contradiction = operator.promote("check", "--format", "json", expect=1)
    assert "volumes-contradict-service" in contradiction.stdout


def test_hook_repairs_to_c(rig: Deployment, operator: Operator, database: Database, story: dict) -> None:
    """Admin guide step 7: the start runs the hook; replicated and alive volumes are paired to C."""
    ids = story["ids"]
    with phase("start cinder-volume: the hook re-pairs to array-c"):
        rig.start_volume("volume-replicated", "replicated")
        rig.wait_volume_ready("volume-replicated")
        wait_service(operator, HOST, replication="enabled")
    story["hook_calls"] = len(arrays(rig)["arrays"]["array-b"]["hook_calls"])
    for name in ("r1", "r2"):
        row = database.volume(name)
        assert (row.status, row.replication_status) == ("available", "enabled")
        assert row.provider_location == f"array-b:{row.id}"
        assert row.replication_driver_data == f"array-b/{row.id}->array-c/{row.id}"
    # Finding 2 on the simulator: the lost and the never-replicated volumes are left as they are.
    for name in ("r-lost", "p1"):
        lost = database.volume(name)
        assert (lost.status, lost.replication_status, lost.provider_location) == (
            "error", "failover-error", f"array-a:{lost.id}")
    assert set(arrays(rig)["arrays"]["array-c"]["volumes"]) == {ids["r1"], ids["r2"]}
    # Finding 3: the fresh start's hook changed nothing, so it journals no change.
    assert changes(database.journal(HOST)) == [("reset-active-backend", "done"), ("update-host-replication", "done")]


def test_thaw_enable_verify(rig: Deployment, operator: Operator, database: Database) -> None:
    """Admin guide steps 8 and 9."""
    with phase("thaw, enable, verify"):
        operator.cinder("thaw-host", HOST)
        operator.cinder("service-enable", HOST, "cinder-volume")
        row = wait_service(operator, HOST, replication="enabled")
    assert (row["Status"], row["Frozen"], row["Active Backend ID"]) == ("enabled", "False", "-")
    shown = operator.show("r1")
    assert (shown["status"], shown["replication_status"]) == ("available", "enabled")
    status = json.loads(operator.promote("status", "--backend-host", HOST, "--format", "json").stdout)
    assert "enabled" in json.dumps(status)
    # What was lost with A is gone: the operator deletes it, then check finds nothing.
    operator.cinder("delete", "r-lost", "p1")
    wait_until("the lost volumes deleted", lambda: not database.rows(
        "SELECT id FROM volumes WHERE display_name IN ('r-lost', 'p1') AND deleted = 0"))
    operator.promote("check")
    operator.promote("history", "--limit", "5")
    assert arrays(rig)["arrays"]["array-b"]["frozen"] == []


def test_restart_with_unchanged_answer_writes_nothing(rig: Deployment, operator: Operator, database: Database,
                                                       story: dict) -> None:
    """Finding 3: restarts give the hook the same answer; no volume row is written, the journal stays short."""
    before = {row.id: row.updated_at for row in database.rows("SELECT id, updated_at FROM volumes")}
    time.sleep(1.1)   # MariaDB's DATETIME has whole seconds: a rewrite now would show
    with phase("three restarts of cinder-volume with an unchanged answer"):
        for _ in range(3):
            rig.stop("volume-replicated")
            rig.start_volume("volume-replicated", "replicated")
            rig.wait_volume_ready("volume-replicated")
            story["hook_calls"] += 1
            assert len(arrays(rig)["arrays"]["array-b"]["hook_calls"]) == story["hook_calls"]
            wait_service(operator, HOST, replication="enabled")
    after = {row.id: row.updated_at for row in database.rows("SELECT id, updated_at FROM volumes")}
    assert after == before
    journal = database.journal(HOST)
    assert changes(journal) == [("reset-active-backend", "done"), ("update-host-replication", "done")]
    # At most the latest unchanged start is kept, after the last change.
    unchanged = [e for e in journal if e.state == "unchanged"]
    assert len(unchanged) <= 1 and (not unchanged or unchanged[0].id == journal[-1].id)
    operator.promote("history")


def test_new_volume_and_fail_over_to_c(rig: Deployment, operator: Operator, database: Database,
                                       story: dict) -> None:
    with phase("a new replicated volume, then cinder failover-host to array-c"):
        operator.cinder("create", "--volume-type", "replicated", "--name", "r-new", "1")
        new = wait_volume(operator, "r-new")
        assert new["replication_status"] == "enabled"
        assert database.volume("r-new").replication_driver_data == f"array-b/{new['id']}->array-c/{new['id']}"
        operator.cinder("failover-host", "--backend_id", "array-c", HOST)
        row = wait_service(operator, HOST, replication="failed-over")
    assert row["Active Backend ID"] == "array-c"
    for name in ("r1", "r2", "r-new"):
        volume = database.volume(name)
        assert (volume.status, volume.replication_status) == ("available", "failed-over")
        assert volume.provider_location == f"array-c:{volume.id}"


def test_reference_driver_leaves_lost_volumes(rig: Deployment, operator: Operator, database: Database) -> None:
    """Finding 2, with the project's reference driver: the control backend promoted offline (step 7's
    `update-host-replication`), its lost and never-replicated volumes are not re-enabled."""
    with phase("control backend: freeze, stop, disable, reset, offline hook with the reference driver"):
        operator.cinder("freeze-host", CONTROL)
        rig.stop("volume-control")
        operator.cinder("service-disable", CONTROL, "cinder-volume", "--reason", "promoting control-b")
        wait_service(operator, CONTROL, state="down", timeout=40)
        # The guide's cinder-manage spelling, through cinder-promote.
        operator.promote("db", "reset_active_backend", "--backend-host", CONTROL, "--enable-replication")
        # "Taking a mistake back": the undo would restore exactly what the reset changed.
        (reset,) = [e for e in database.journal(CONTROL) if e.operation == "reset-active-backend"]
        undo = operator.promote("undo", str(reset.id), "--dry-run")
        assert "control-b" in undo.stdout and "failed-over" in undo.stdout
        assert database.service(CONTROL).replication_status == "enabled"
        lost_before = {name: database.volume(name) for name in ("c-lost", "c-plain")}
        operator.promote("update-host-replication", "--backend-host", CONTROL, "--driver", REFERENCE,
                         "--driver-option", "replication_target=control-c")
    c1 = database.volume("c1")
    assert (c1.status, c1.replication_status) == ("available", "enabled")
    # Lost with control-a (error, failover-error): left exactly as they were, row untouched.
    for name, before in lost_before.items():
        assert before.status == "error" and before.replication_status == "failover-error"
        assert database.volume(name) == before
    # check names them as contradicting the enabled service (the operator's to-do), never as
    # lost volumes that claim to replicate.
    found = operator.promote("check", "--format", "json", expect=1).stdout
    assert "volumes-contradict-service" in found and "lost-volumes-replicating" not in found


def test_check_flags_error_enabled(operator: Operator, database: Database) -> None:
    """Finding 2: `check` reports a volume in error whose replication claims enabled."""
    operator.cinder("reset-state", "--state", "error", "c1")
    assert (database.volume("c1").status, database.volume("c1").replication_status) == ("error", "enabled")
    found = json.loads(operator.promote("check", "--format", "json", expect=1).stdout)
    assert "lost-volumes-replicating" in json.dumps(found) and database.volume("c1").id in json.dumps(found)
