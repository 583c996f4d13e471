"""Cinder 29.0.0's own write pattern, run by the benches with the Cinder venv's Python.

`VolumeManager.failover` loads the service's volumes as versioned objects
(`objects.VolumeList.get_all` with the host filter, as `_get_my_volumes`
does), then calls `volume.update(...)` and `volume.save()` for each volume;
the same for groups. This script does exactly that with real Cinder objects,
with the answer the reference driver gives (a distinct pair per volume, one
shared update for the groups), on a database the benches seeded.

It boots Cinder once, then serves: each line `run TAG` on stdin runs the
load and the loop once (the tag makes every round write new values) and
answers one JSON line with the rows and the seconds of the load and of the
loop. Cinder's start-up is not timed, as it is not timed for the hook.

    python cinder_loop.py --config-file cinder.conf --host HOST
"""

import argparse
import json
import sys
import time
import warnings

warnings.simplefilter("ignore")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--target", default="backend-c")
    args = parser.parse_args()

    from oslo_config import cfg

    import cinder.common.config  # noqa: F401 - registers Cinder's options
    from cinder import context, objects

    objects.register_all()
    cfg.CONF([], project="cinder", default_config_files=[args.config_file])
    ctxt = context.get_admin_context()
    print(json.dumps({"ready": True}), flush=True)

    for line in sys.stdin:
        command, _, tag = line.strip().partition(" ")
        if command != "run":
            break
        started = time.perf_counter()
        volumes = objects.VolumeList.get_all(ctxt, filters={"host": args.host})
        groups = objects.GroupList.get_all(ctxt, filters={"host": args.host})
        loaded = time.perf_counter()
        for volume in volumes:
            volume.update({
                "replication_status": "enabled",
                "replication_driver_data": f"{args.target}:pair-{volume.id}-{tag}",
                "replication_extended_status": f"replicating to {args.target} ({tag})",
            })
            volume.save()
        for group in groups:
            group.update({"replication_status": "enabled"})
            group.save()
        done = time.perf_counter()
        print(json.dumps({"volumes": len(volumes), "groups": len(groups), "load_s": loaded - started,
                          "loop_s": done - loaded, "total_s": done - started}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
