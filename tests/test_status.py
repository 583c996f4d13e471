"""status: services and clusters, up/down, flags, fence and counts, as a table and as JSON."""

from __future__ import annotations

import json

from scenario import cluster, running_service, stopped_service

from cinder_promote.db import seed
from cinder_promote.models import utcnow


def test_status_json(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    running_service(db, "node-r@lvm", replication_status="disabled", active_backend_id=None, disabled=False,
                    disabled_reason=None, frozen=False)
    cluster(db, "gold@be", ["node-1@be", "node-2@be"])
    with db.begin() as conn:
        seed.add_volumes(conn, [seed.volume_row("node-b@be#p1", replication_status="failed-over") for _ in range(3)])
        seed.add_volumes(conn, [seed.volume_row("node-b@be#p2", replication_status=None)])
        seed.add_volumes(conn, [seed.volume_row("node-b@be#p1", deleted=True, deleted_at=utcnow())])
        seed.add_volumes(conn, [seed.volume_row("node-1@be#p", cluster_name="gold@be#p", replication_status="enabled")
                                for _ in range(2)])
        seed.add_groups(conn, [seed.group_row("node-b@be", replication_status="failed-over")])

    result = cli("--db-url", cinder_url, "status", "--format", "json")

    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    services = {s["host"]: s for s in out["services"]}
    assert set(services) == {"node-b@be", "node-r@lvm", "node-1@be", "node-2@be"}
    b = services["node-b@be"]
    assert b["up"] is False and b["heartbeat_age_s"] > 500
    assert (b["disabled"], b["disabled_reason"], b["frozen"]) == (True, "failed over", True)
    assert (b["replication_status"], b["active_backend_id"], b["fence"]) == ("failed-over", "backend-b", None)
    assert b["volumes"] == {"failed-over": 3, "null": 1}
    assert b["groups"] == {"failed-over": 1}
    assert services["node-r@lvm"]["up"] is True and services["node-r@lvm"]["volumes"] == {}
    assert services["node-1@be"]["cluster_name"] == "gold@be"
    [gold] = out["clusters"]
    assert gold["name"] == "gold@be" and gold["members"] == ["node-1@be", "node-2@be"]
    assert gold["up"] is False and gold["volumes"] == {"enabled": 2}
    assert set(gold) == {"name", "members", "up", "heartbeat_age_s", "disabled", "disabled_reason", "frozen",
                         "replication_status", "active_backend_id", "fence", "volumes", "groups"}


def test_status_filters_and_table(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    stopped_service(db, "node-c@be")
    result = cli("--db-url", cinder_url, "status", "--backend-host", "node-c@be", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert [s["host"] for s in json.loads(result.stdout)["services"]] == ["node-c@be"]
    table = cli("--db-url", cinder_url, "status")
    assert table.exit_code == 0
    assert "node-b@be" in table.stdout and "failed-over" in table.stdout and "down" in table.stdout
    missing = cli("--db-url", cinder_url, "status", "--backend-host", "node-x@be")
    assert missing.exit_code == 1 and "no cinder-volume service" in missing.stderr
    both = cli("--db-url", cinder_url, "status", "--backend-host", "a@b", "--cluster", "c@d")
    assert both.exit_code == 2
