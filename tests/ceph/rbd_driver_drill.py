"""The fire drill on Cinder's own RBD driver, driven directly (no API, no database).

Run by tests/ceph/test_rbd_driver.py with the Python of the Ceph-capable patched Cinder venv
(`/usr/bin/python3 --system-site-packages`: Debian's rados and rbd bindings), against the
three clusters of scripts/ceph:

    python rbd_driver_drill.py WORKDIR A_CONF B_CONF C_CONF CEPH_SCRIPT

Volumes (replicated and plain) are created on A by RBDDriver.create_volume, data is written
into them, B is waited for, A is destroyed (scripts/ceph destroy a), failover_host moves the
service to B, a new driver configured as the promotion leaves it (B primary, C its
replication_device) runs update_host_replication, C is waited for, and failover_host to C
proves that C's copies are whole. Every step's result and time is printed as one JSON
document on stdout; the test asserts on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

WORKDIR, A_CONF, B_CONF, C_CONF, CEPH_SCRIPT = sys.argv[1:6]
POOL = "volumes"
DATA_BYTES = 4 * 1024 * 1024

from oslo_config import cfg  # noqa: E402

from cinder import context as cinder_context  # noqa: E402
from cinder import objects  # noqa: E402

objects.register_all()
from cinder.common import config  # noqa: E402,F401
from cinder.volume import configuration  # noqa: E402
from cinder.volume.drivers import rbd as rbd_driver  # noqa: E402
from cinder.volume import manager  # noqa: E402,F401  (registers the backend options)
import rados  # noqa: E402
import rbd  # noqa: E402

CONF = cfg.CONF
report: dict = {"phases": {}}


def phase(name: str, started: float) -> None:
    report["phases"][name] = round(time.monotonic() - started, 2)


def write_conf(primary: str, target_id: str, target_conf: str) -> str:
    path = os.path.join(WORKDIR, f"cinder-{primary}.conf")
    with open(path, "w") as f:
        f.write(f"""[DEFAULT]
state_path = {WORKDIR}
[oslo_concurrency]
lock_path = {WORKDIR}
[rbd]
volume_driver = cinder.volume.drivers.rbd.RBDDriver
volume_backend_name = rbd
rbd_pool = {POOL}
rbd_ceph_conf = {dict(a=A_CONF, b=B_CONF, c=C_CONF)[primary]}
rbd_user = cinder
replication_device = backend_id:{target_id},conf:{target_conf},user:cinder
replication_connect_timeout = 5
""")
    return path


def make_driver(conf_file: str, active_backend_id: str | None = None) -> rbd_driver.RBDDriver:
    CONF.reset()
    CONF([], project="cinder", default_config_files=[conf_file])
    config_group = configuration.Configuration(manager.volume_manager_opts, config_group="rbd")
    driver = rbd_driver.RBDDriver(active_backend_id=active_backend_id, configuration=config_group,
                                  host="drill@rbd")
    driver.do_setup(ctxt)
    driver.check_for_setup_error()
    return driver


def open_pool(conf: str):
    cluster = rados.Rados(rados_id="cinder", conffile=conf)
    cluster.connect(timeout=10)
    return cluster, cluster.open_ioctx(POOL)


def checksum(conf: str, name: str) -> str:
    cluster, ioctx = open_pool(conf)
    try:
        with rbd.Image(ioctx, name, read_only=True) as image:
            return hashlib.sha256(image.read(0, DATA_BYTES)).hexdigest()
    finally:
        ioctx.close()
        cluster.shutdown()


def mirror_state(conf: str, name: str) -> tuple[bool | None, str]:
    """(primary, status description) of an image on a cluster; (None, why) when it is not there."""
    cluster, ioctx = open_pool(conf)
    try:
        with rbd.Image(ioctx, name, read_only=True) as image:
            info = image.mirror_image_get_info()
            status = image.mirror_image_get_status()
            local = status.get("info", {})
            state = status.get("state", local.get("state"))
            return info["primary"], f"{state}:{status.get('description', '')}"
    except rbd.ImageNotFound:
        return None, "missing"
    finally:
        ioctx.close()
        cluster.shutdown()


def wait_for_copy(conf: str, names: list[str], sums: dict[str, str], timeout: float = 180) -> float:
    """Until every image is on `conf`, replaying, with the primary's data; the seconds it took."""
    started = time.monotonic()
    pending = set(names)
    while pending and time.monotonic() - started < timeout:
        for name in sorted(pending):
            try:
                if checksum(conf, name) == sums[name]:
                    pending.discard(name)
            except (rbd.ImageNotFound, rbd.Error, rados.Error):
                pass
        if pending:
            time.sleep(1)
    if pending:
        raise SystemExit(f"timed out after {timeout} s: {sorted(pending)} not copied to {conf}: "
                         + ", ".join(f"{n}={mirror_state(conf, n)}" for n in sorted(pending)))
    return round(time.monotonic() - started, 2)


def new_volume(replicated: bool):
    vtype = objects.VolumeType(ctxt, id=str(uuid.uuid4()), name="replicated" if replicated else "plain",
                               qos_specs_id=None,
                               extra_specs={"replication_enabled": "<is> True"} if replicated else {})
    return objects.Volume(ctxt, id=str(uuid.uuid4()), size=1, host="drill@rbd#rbd", status="available",
                          volume_type=vtype, volume_type_id=vtype.id, replication_status="disabled",
                          replication_driver_data=None, _name_id=None, encryption_key_id=None,
                          provider_location=None, multiattach=False)


def apply(volume, updates: dict) -> None:
    for key, value in updates.items():
        setattr(volume, key, value)


ctxt = cinder_context.get_admin_context()

# -- volumes on A, replicating to B ------------------------------------------------------------
t = time.monotonic()
driver = make_driver(write_conf("a", "b", B_CONF))
replicated = [new_volume(True) for _ in range(3)]
plain = [new_volume(False) for _ in range(2)]
for volume in replicated + plain:
    apply(volume, driver.create_volume(volume) or {})
report["created"] = {v.id: {"replication_status": v.replication_status,
                            "replication_driver_data": v.replication_driver_data} for v in replicated + plain}
sums = {}
cluster, ioctx = open_pool(A_CONF)
for volume in replicated + plain:
    with rbd.Image(ioctx, volume.name) as image:
        data = os.urandom(DATA_BYTES)
        image.write(data, 0)
        image.flush()
        sums[volume.name] = hashlib.sha256(data).hexdigest()
ioctx.close()
cluster.shutdown()
phase("create_and_write_on_a", t)

t = time.monotonic()
report["b_caught_up_s"] = wait_for_copy(B_CONF, [v.name for v in replicated], sums)
phase("replicated_to_b", t)

# -- the fire ----------------------------------------------------------------------------------
t = time.monotonic()
subprocess.run([CEPH_SCRIPT, "destroy", "a"], check=True)
phase("a_destroyed", t)

t = time.monotonic()
# As VolumeManager.failover does: only the replicated volumes go to the driver; the others
# (replication_status disabled) become error / not-capable.
active, volume_updates, _ = driver.failover_host(ctxt, replicated, "b")
by_id = {v.id: v for v in replicated + plain}
for update in volume_updates:
    apply(by_id[update["volume_id"]], update["updates"])
for volume in plain:
    apply(volume, {"previous_status": volume.status, "status": "error", "replication_status": "not-capable"})
report["failover_to_b"] = {"active_backend_id": active,
                           "volumes": {v.id: {"replication_status": v.replication_status, "status": v.status}
                                       for v in replicated + plain}}
phase("failover_host_to_b", t)
report["b_sums_match"] = {v.name: checksum(B_CONF, v.name) == sums[v.name] for v in replicated}

# -- the operator forgets A ----------------------------------------------------------------------
# B's rbd-mirror daemon still replays A's images, or tries to: it holds their exclusive locks and
# waits for A forever, so no new peer could sync them (EROFS). Remove A's peer from B's pool and
# restart the daemon (it does not stop on SIGTERM while it waits: SIGKILL).
t = time.monotonic()
cluster, ioctx = open_pool(B_CONF)
report["b_peers_before"] = [p["site_name"] for p in rbd.RBD().mirror_peer_list(ioctx)]
ioctx.close()
cluster.shutdown()
subprocess.run(["rbd", "--conf", B_CONF, "mirror", "pool", "peer", "remove", POOL,
                next(p["uuid"] for p in json.loads(subprocess.run(
                    ["rbd", "--conf", B_CONF, "mirror", "pool", "info", POOL, "--format", "json"],
                    check=True, capture_output=True, text=True).stdout)["peers"] if p["site_name"] == "a")],
               check=True)
subprocess.run([CEPH_SCRIPT, "restart-mirror", "b"], check=True)
phase("a_forgotten_on_b", t)

# -- the promotion: B is the primary, C its replication_device ----------------------------------
# cinder-manage db reset_active_backend has set the service to disabled with no active backend.
for volume in replicated:
    report.setdefault("c_before", {})[volume.name] = mirror_state(C_CONF, volume.name)[1]
t = time.monotonic()
promoted = make_driver(write_conf("b", "c", C_CONF))
phase("driver_setup_on_b", t)
t = time.monotonic()
service_update, volume_updates, group_updates = promoted.update_host_replication(
    ctxt, "disabled", None, replicated + plain, groups=[])
phase("update_host_replication", t)
report["hook"] = {"service_update": service_update, "volume_updates": volume_updates,
                  "group_updates": group_updates}
for update in volume_updates:
    apply(by_id[update["volume_id"]], update["updates"])

t = time.monotonic()
report["c_caught_up_s"] = wait_for_copy(C_CONF, [v.name for v in replicated], sums)
phase("replicated_to_c", t)
# rbd-mirror publishes an image's status some seconds after it starts replaying it.
deadline = time.monotonic() + 90
while True:
    report["c_state"] = {v.name: mirror_state(C_CONF, v.name) for v in replicated}
    if all("replaying" in state for _, state in report["c_state"].values()) or time.monotonic() > deadline:
        break
    time.sleep(2)
cluster, ioctx = open_pool(C_CONF)
report["c_peers"] = [(p["site_name"], p["direction"]) for p in rbd.RBD().mirror_peer_list(ioctx)]
ioctx.close()
cluster.shutdown()
cluster, ioctx = open_pool(B_CONF)
report["b_peers"] = [(p["site_name"], p["direction"]) for p in rbd.RBD().mirror_peer_list(ioctx)]
ioctx.close()
cluster.shutdown()
report["c_plain"] = {v.name: mirror_state(C_CONF, v.name)[1] for v in plain}

# A second start finds everything in place and changes nothing on the cluster.
t = time.monotonic()
report["hook_again"] = list(promoted.update_host_replication(ctxt, "enabled", None, replicated + plain, groups=[]))
phase("update_host_replication_again", t)

# -- and C can take over ------------------------------------------------------------------------
t = time.monotonic()
active, volume_updates, _ = promoted.failover_host(ctxt, replicated, "c")
phase("failover_host_to_c", t)
report["failover_to_c"] = {"active_backend_id": active, "volume_updates": volume_updates}
report["c_sums_match"] = {v.name: checksum(C_CONF, v.name) == sums[v.name] for v in replicated}
report["c_primary"] = {v.name: mirror_state(C_CONF, v.name)[0] for v in replicated}
report["replicated"] = [v.name for v in replicated]
report["plain"] = [v.name for v in plain]
print(json.dumps(report, indent=1, default=str))
