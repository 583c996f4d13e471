"""Running the startup hook in processes of its own, as volume services would, and reading what it left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from cinder_promote.db import seed
from scenario import cluster

TESTS = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(sys.executable).parent / "cinder-promote")


def env() -> dict[str, str]:
    """The test's environment, with tests/ importable (hook_drivers) and no ambient database."""
    result = dict(os.environ)
    result["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), result.get("PYTHONPATH")]))
    result.pop("CINDER_PROMOTE_DB_URL", None)
    return result


def volume_statuses(engine: sa.Engine) -> dict[str, int]:
    """How many live volumes hold each replication_status."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT replication_status, count(*) FROM volumes WHERE deleted = :f GROUP BY replication_status"),
            {"f": False}).all())


def cluster_with_volumes(engine: sa.Engine, members: list[str], volumes: int) -> int:
    """Cluster gold@be, replication enabled, whose members own `volumes` failed-over volumes between them."""
    cid = cluster(engine, "gold@be", members, replication_status="enabled", active_backend_id=None)
    with engine.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(f"{members[i % len(members)]}#p", cluster_name="gold@be#p",
                                                replication_status="failed-over") for i in range(volumes)))
    return cid


def start_members(urls_and_hosts: list[tuple[str, str]], marker_dir: Path) -> list[subprocess.Popen]:
    """One `update-host-replication` process per (database URL, member host), started at once; the driver
    leaves a marker file in `marker_dir` each time it is called and takes 3 s."""
    return [
        subprocess.Popen(
            [SCRIPT, "--db-url", url, "update-host-replication", "--backend-host", host,
             "--driver", "hook_drivers:DistinctDriver", "--driver-option", f"marker_dir={marker_dir}",
             "--driver-option", "delay=3", "--format", "json", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        for url, host in urls_and_hosts
    ]
