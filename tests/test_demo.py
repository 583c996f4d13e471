"""The demo: the seed's disaster and its repair, on embedded SQLite, no server."""

from __future__ import annotations

import json


def test_demo_promotes_b(cli, tmp_path):
    path = tmp_path / "demo.sqlite"
    result = cli("demo", "--db-path", str(path), "--volumes", "400", "--groups", "40")
    assert result.exit_code == 0, result.stderr
    assert "refused (exit 1)" in result.stdout and "is running" in result.stdout
    assert "was reset (journal 1)" in result.stdout and "was reset (journal 2)" in result.stdout
    assert "already in the requested state" in result.stdout
    status = cli("--db-url", f"sqlite:///{path}", "status", "--format", "json")
    out = json.loads(status.stdout)
    services = {s["host"]: s for s in out["services"]}
    for host in ("cinder-1@replicated", "cinder-2@gold", "cinder-3@gold"):
        assert services[host]["replication_status"] == "enabled"
        assert services[host]["active_backend_id"] is None
        assert services[host]["disabled"] and services[host]["frozen"]
    assert services["cinder-4@lvm"]["replication_status"] == "disabled"
    assert out["clusters"][0]["replication_status"] == "enabled"
    assert sum(services["cinder-1@replicated"]["volumes"].values()) == 200
