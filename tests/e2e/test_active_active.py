"""Active-active: a cluster of two cinder-volume processes promoted, on MariaDB and on Galera.

Backend `gold` (the hook driver) runs as members node-1@gold and node-2@gold of cluster
cluster-gold@gold, gold-a replicating to gold-b. The cluster fails over to gold-b, is
frozen, stopped, disabled, reset with `cinder-manage db reset_active_backend --cluster`,
and both members start together: the driver's hook runs exactly once (the array counts
the calls; the journal has one entry), and both members serve afterwards (each creates
volumes). On Galera the members reach the database through different nodes (2 and 3)
while cinder-api and cinder-scheduler use node 1.
"""

from __future__ import annotations

import functools
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .deployment import Deployment, database_url
from .harness import Database, Operator, deployment_on, phase, server_url
from .test_workflow import arrays, changes, wait_service, wait_volume

pytestmark = pytest.mark.e2e

CLUSTER = "cluster-gold@gold"
MEMBERS = ("node-1", "node-2")


@pytest.fixture(scope="module")
def galera_rig(request: pytest.FixtureRequest):
    urls = server_url("CINDER_PROMOTE_TEST_GALERA_URLS").split(",")
    with deployment_on(request, urls[0], galera=True) as deployment:
        deployment.galera_urls = urls   # type: ignore[attr-defined]
        yield deployment


@pytest.fixture(params=["mariadb", "galera"])
def cluster_rig(request: pytest.FixtureRequest):
    if request.param == "mariadb":
        rig = request.getfixturevalue("rig")
        yield rig, [None, None]
        return
    rig = request.getfixturevalue("galera_rig")
    name = make_url(rig.db_url).database
    # Member i through node i + 2 (cinder-api and cinder-scheduler use node 1).
    yield rig, [database_url(rig.galera_urls[i + 1], name) for i in range(len(MEMBERS))]


def hook_calls(rig: Deployment, array: str) -> list[dict]:
    return arrays(rig)["arrays"].get(array, {}).get("hook_calls", [])


def start_members(rig: Deployment, db_urls: list[str | None]) -> None:
    """Both members at once; the array takes 10 s to answer the hook, so their starts overlap
    even on a loaded machine."""
    for member, db_url in zip(MEMBERS, db_urls):
        rig.start_volume(f"volume-{member}", "gold", host=member, cluster="cluster-gold", db_url=db_url,
                         options={"simulator_hook_delay": 10})


def wait_members(operator: Operator, replication: str) -> dict[str, dict[str, str]]:
    for member in MEMBERS:
        if operator.rig.running(f"volume-{member}"):
            operator.rig.wait_volume_ready(f"volume-{member}")
    return {m: wait_service(operator, f"{m}@gold", replication=replication, timeout=90) for m in MEMBERS}


# Stock Cinder 29.0.0: two fresh members of one cluster that start at the same moment through
# different Galera nodes both create the cluster's row (Service._ensure_cluster_exists); the second
# commit fails Galera's certification, a DBDeadlock that Cinder does not retry, and that service
# exits before any code of ours runs. A process manager (systemd's Restart=on-failure) starts it
# again; so does the rig, once, for that failure only.
STOCK_CLUSTER_RACE = ("_ensure_cluster_exists", "DBDeadlock")


def wait_ready_restarted_after_the_cluster_race(rig, name: str, start) -> None:  # noqa: ANN001
    try:
        rig.wait_volume_ready(name)
    except RuntimeError:
        log = rig.started_log(name)
        if rig.running(name) or not all(mark in log for mark in STOCK_CLUSTER_RACE):
            raise
        print(f"{name}: exited in stock Cinder's cluster creation race (DBDeadlock); started again",
              file=sys.stderr)
        start()
        rig.wait_volume_ready(name)


def test_fresh_members_started_together(cluster_rig) -> None:  # noqa: ANN001 - a fixture's pair
    """Finding 1 in a cluster: two fresh members started together (one runs the hook, 10 s, the
    other finds the fence) both come up with the status stock Cinder derives, as the control
    backend does (enabled), and so can fail over."""
    rig, db_urls = cluster_rig
    operator = Operator(rig)
    members = ("node-3", "node-4")
    try:
        with phase(f"fresh cluster-silver@gold members started together ({'galera' if db_urls[0] else 'mariadb'})"):
            starts = {member: functools.partial(rig.start_volume, f"volume-{member}", "gold", host=member,
                                                cluster="cluster-silver", db_url=db_url,
                                                options={"simulator_hook_delay": 10})
                      for member, db_url in zip(members, db_urls)}
            for start in starts.values():
                start()
            for member, start in starts.items():
                wait_ready_restarted_after_the_cluster_race(rig, f"volume-{member}", start)
        rows = {m: wait_service(operator, f"{m}@gold") for m in members}
        assert {m: row["Replication Status"] for m, row in rows.items()} == {m: "enabled" for m in members}
    finally:
        for member in members:
            rig.stop(f"volume-{member}")
        # Gone, as `cinder-manage cluster remove --recursive` leaves them, so that no later check sees them.
        database = Database(rig.db_url)
        with database.engine.begin() as conn:
            for table, column in (("services", "cluster_name"), ("clusters", "name")):
                conn.execute(sa.text(f"UPDATE {table} SET deleted = 1, deleted_at = NOW() WHERE {column} = :c"),
                             {"c": "cluster-silver@gold"})
        database.engine.dispose()


def test_cluster_promotion(cluster_rig, tmp_path) -> None:  # noqa: ANN001 - a fixture's pair
    rig, db_urls = cluster_rig
    kind = "galera" if db_urls[0] else "mariadb"
    operator, database = Operator(rig), Database(rig.db_url)
    try:
        with phase(f"A-A on {kind}: two fresh members, volumes, failover to gold-b"):
            # Fresh members one after the other (started together: test_fresh_members_started_together).
            for member, db_url in zip(MEMBERS, db_urls):
                rig.start_volume(f"volume-{member}", "gold", host=member, cluster="cluster-gold", db_url=db_url)
                rig.wait_volume_ready(f"volume-{member}")
            fresh = wait_members(operator, "enabled")
            assert {row["Cluster"] for row in fresh.values()} == {CLUSTER}
            assert hook_calls(rig, "gold-a")
            operator.cinder("type-create", "gold")
            operator.cinder("type-key", "gold", "set", "volume_backend_name=gold", "replication_enabled=<is> True")
            for name in ("g1", "g2"):
                operator.cinder("create", "--volume-type", "gold", "--name", name, "1")
            for name in ("g1", "g2"):
                wait_volume(operator, name)
            operator.cinder("failover-host", "--backend_id", "gold-b", "node-1@gold")
            failed_over = wait_members(operator, "failed-over")
            assert {row["Active Backend ID"] for row in failed_over.values()} == {"gold-b"}
        with phase(f"A-A on {kind}: freeze, stop both, disable the cluster, reset --cluster"):
            operator.cinder("freeze-host", "node-1@gold")
            for member in MEMBERS:
                rig.stop(f"volume-{member}")
            operator.cinder("cluster-disable", CLUSTER)
            for member in MEMBERS:
                wait_service(operator, f"{member}@gold", state="down", timeout=40)
            rig.set_backend("gold", array="gold-b", target="gold-c")
            operator.manage("db", "reset_active_backend", "--cluster", CLUSTER, "--enable-replication")
        with phase(f"A-A on {kind}: both members started together, the hook runs once"):
            start_members(rig, db_urls)
            promoted = wait_members(operator, "enabled")
        assert {row["Active Backend ID"] for row in promoted.values()} == {"-"}
        calls = hook_calls(rig, "gold-b")
        assert len(calls) == 1, calls
        assert calls[0]["status"] == "enabled"
        # The other member saw the live fence and skipped the hook.
        skipped = [m for m in MEMBERS if "is fenced" in rig.started_log(f"volume-{m}")]
        assert len(skipped) == 1, skipped
        assert changes(database.journal(CLUSTER)) == [("reset-active-backend", "done"),
                                                      ("update-host-replication", "done")]
        for name in ("g1", "g2"):
            volume = database.volume(name)
            assert (volume.replication_status, volume.provider_location) == ("enabled", f"gold-b:{volume.id}")
            assert volume.replication_driver_data == f"gold-b/{volume.id}->gold-c/{volume.id}"
        with phase(f"A-A on {kind}: thaw, enable, both members create volumes"):
            operator.cinder("thaw-host", "node-1@gold")
            operator.cinder("cluster-enable", CLUSTER)
            for member in MEMBERS:
                operator.cinder("service-enable", f"{member}@gold", "cinder-volume")
            new = [f"g-new{i}" for i in range(4)]
            for name in new:
                operator.cinder("create", "--volume-type", "gold", "--name", name, "1")
            ids = {wait_volume(operator, name)["id"] for name in new}
        # Both members serve: each created some of the new volumes (the cluster's queue alternates).
        created = {m: rig.started_log(f"volume-{m}").count("Created volume successfully") for m in MEMBERS}
        assert sum(created.values()) == len(ids) and all(created.values()), created
        status = operator.promote("status", "--cluster", CLUSTER, "--format", "json").stdout
        assert CLUSTER in status and "enabled" in status
        operator.promote("check")
    finally:
        database.engine.dispose()
        for member in MEMBERS:
            rig.stop(f"volume-{member}")

