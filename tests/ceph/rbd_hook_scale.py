"""update_host_replication of Cinder's RBD driver at scale, on real clusters B and C.

Run by tests/ceph/test_ceph_rbd_driver.py with the Ceph-capable venv's Python:

    python rbd_hook_scale.py WORKDIR B_CONF C_CONF N

Makes a pool `scaleN` on B (mirror mode image) with N images as Cinder's RBD driver creates
them, not yet mirrored, and a pool of the same name on C; then times the hook, as a promotion
runs it (B primary, C the replication_device), three times:
  first:  C not peered, no image mirrored: the peering, the two listings, N images opened
          (journaling on, mirroring enabled) in the driver's native threads;
  again:  everything in place, the volumes still 'failed-over' in the database (the state right
          after failover-host and reset_active_backend): two listings, no image opened;
  steady: everything in place and 'enabled': a later restart.
Prints one JSON document.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

WORKDIR, B_CONF, C_CONF, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
POOL = f"scale{N}"

import rados  # noqa: E402
import rbd  # noqa: E402
from oslo_config import cfg  # noqa: E402

from cinder import context as cinder_context  # noqa: E402
from cinder import objects  # noqa: E402

objects.register_all()
from cinder.common import config  # noqa: E402,F401
from cinder.volume import configuration  # noqa: E402
from cinder.volume.drivers import rbd as rbd_driver  # noqa: E402
from cinder.volume import manager  # noqa: E402,F401

CONF = cfg.CONF


class Row:
    """A volumes row as the hook hands it to the driver (cinder_promote's VolumeRecord's shape)."""

    def __init__(self, status: str) -> None:
        self.id = str(uuid.uuid4())
        self.name_id = self.id
        self.replication_status = status
        self.replication_driver_data = '{"had_exclusive_lock":true,"had_journaling":false}'

    def __getitem__(self, key: str):
        return getattr(self, key)


def admin(conf: str) -> rados.Rados:
    cluster = rados.Rados(conffile=conf)  # client.admin, as an operator
    cluster.connect(timeout=15)
    return cluster


def make_pool(conf: str, site: str) -> None:
    """The pool, in mirror mode image, and client.cinder allowed on it (as on `volumes`)."""
    cluster = admin(conf)
    try:
        if not cluster.pool_exists(POOL):
            cluster.create_pool(POOL)
        ret, out, err = cluster.mon_command(json.dumps({"prefix": "auth get", "entity": "client.cinder",
                                                        "format": "json"}), b"")
        assert ret == 0, err
        caps = json.loads(out)[0]["caps"]
        for kind in ("osd", "mgr"):
            caps[kind] += f", profile rbd pool={POOL}"
        ret, out, err = cluster.mon_command(json.dumps({
            "prefix": "auth caps", "entity": "client.cinder",
            "caps": [x for kind in ("mon", "osd", "mgr") for x in (kind, caps[kind])]}), b"")
        assert ret == 0, err
        ioctx = cluster.open_ioctx(POOL)
        ioctx.application_enable("rbd")
        rbd.RBD().mirror_mode_set(ioctx, rbd.RBD_MIRROR_MODE_IMAGE)
        ioctx.close()
    finally:
        cluster.shutdown()


report: dict = {"n": N}
make_pool(B_CONF, "b")
make_pool(C_CONF, "c")
rows = [Row("failed-over") for _ in range(N)]
cluster = admin(B_CONF)
ioctx = cluster.open_ioctx(POOL)
t = time.monotonic()
features = rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda r: rbd.RBD().create(ioctx, f"volume-{r.id}", 1 << 30, old_format=False,
                                             features=features), rows))
report["create_images_s"] = round(time.monotonic() - t, 2)
ioctx.close()
cluster.shutdown()

conf_file = os.path.join(WORKDIR, f"cinder-scale{N}.conf")
with open(conf_file, "w") as f:
    f.write(f"""[DEFAULT]
state_path = {WORKDIR}
[rbd]
volume_driver = cinder.volume.drivers.rbd.RBDDriver
rbd_pool = {POOL}
rbd_ceph_conf = {B_CONF}
rbd_user = cinder
replication_device = backend_id:c,conf:{C_CONF},user:cinder
""")
CONF([], project="cinder", default_config_files=[conf_file])
driver = rbd_driver.RBDDriver(configuration=configuration.Configuration(manager.volume_manager_opts,
                                                                        config_group="rbd"))
ctxt = cinder_context.get_admin_context()
driver.do_setup(ctxt)
driver.check_for_setup_error()

for run, status in (("first", "disabled"), ("again", "disabled"), ("steady", "enabled")):
    if run == "steady":
        for row in rows:
            row.replication_status = "enabled"
    t = time.monotonic()
    service, volumes, groups = driver.update_host_replication(ctxt, status, None, rows, [])
    report[f"{run}_s"] = round(time.monotonic() - t, 3)
    report[f"{run}_updates"] = len(volumes)
    report[f"{run}_statuses"] = sorted({u["updates"]["replication_status"] for u in volumes})
    report[f"{run}_driver_data"] = sum("replication_driver_data" in u["updates"] for u in volumes)

cluster = admin(B_CONF)
ioctx = cluster.open_ioctx(POOL)
infos = dict(rbd.RBD().mirror_image_info_list(ioctx))
report["mirrored_primary_on_b"] = sum(1 for i in infos.values()
                                      if i["primary"] and i["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED)
report["peers_of_c"] = None
ioctx.close()
cluster.shutdown()
cluster = admin(C_CONF)
ioctx = cluster.open_ioctx(POOL)
report["peers_of_c"] = [p["site_name"] for p in rbd.RBD().mirror_peer_list(ioctx)]
ioctx.close()
cluster.shutdown()
print(json.dumps(report))
