"""update-host-replication: the hook offline, from the command line, with the reference driver."""

from __future__ import annotations

import json

from conftest import snapshot
from scenario import journal, row, running_service, stopped_service

from cinder_promote.db import seed

DRIVER = "cinder_promote.drivers.reference:ReferenceDriver"


def _seed(db, host="node-b@be", n=200):
    sid = stopped_service(db, host, replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, [seed.volume_row(f"{host}#p", replication_status="failed-over") for _ in range(n)])
        seed.add_volumes(conn, [seed.volume_row(f"{host}#p", replication_status="not-capable") for _ in range(3)])
        # Lost with the old primary: Cinder's failover could not bring them over.
        seed.add_volumes(conn, [seed.volume_row(f"{host}#p", replication_status="failover-error", status="error",
                                                provider_location="on-backend-a") for _ in range(2)])
        seed.add_groups(conn, [seed.group_row(host, replication_status="failed-over") for _ in range(4)])
    return sid


def test_reference_driver_offline(cli, db, cinder_url):
    sid = _seed(db)
    result = cli("--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be",
                 "--driver", DRIVER, "--driver-option", "replication_target=backend-c", "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["outcome"] == "done" and out["volumes"] == {"loaded": 205, "updated": 200}
    assert out["groups"] == {"loaded": 4, "updated": 4}
    assert set(out["timings_s"]) == {"fence", "load", "driver", "plan", "apply"}
    assert "[apply]" in result.stderr, "progress lines on stderr"
    with db.connect() as conn:
        import sqlalchemy as sa

        data = conn.execute(sa.text(
            "SELECT replication_status, replication_driver_data, id FROM volumes")).all()
    enabled = [(s, d, i) for s, d, i in data if s == "enabled"]
    assert len(enabled) == 200 and all(d == f"backend-c:pair-{i}" for _, d, i in enabled)
    assert sum(1 for s, _, _ in data if s == "not-capable") == 3
    assert [(s, d) for s, d, _ in data if s not in ("enabled", "not-capable")] == [("failover-error", None)] * 2, \
        "volumes lost with the old primary are not re-paired"
    assert row(db, "services", sid)["replication_status"] == "enabled"
    assert journal(db)[-1]["state"] == "done"
    table = cli("--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be", "--driver", DRIVER)
    # The same answer again: every row holds it already, nothing is written.
    assert table.exit_code == 0 and "the driver's answer matches the database; nothing was written" in table.stdout
    assert [e["state"] for e in journal(db)][-2:] == ["done", "unchanged"]


def test_running_service_is_refused(cli, db, cinder_url):
    running_service(db, "node-b@be")
    before = snapshot(db)
    result = cli("--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be", "--driver", DRIVER)
    assert result.exit_code == 1 and "is running" in result.stderr
    assert snapshot(db) == before


def test_driver_failures_exit_1_and_leave_error(cli, db, cinder_url):
    sid = _seed(db, n=5)
    before = snapshot(db)
    result = cli("--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be",
                 "--driver", DRIVER, "--driver-option", "fail=raise")
    assert result.exit_code == 1
    assert "raised RuntimeError: the array did not answer" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(db)["volumes"] == before["volumes"]
    assert row(db, "services", sid)["replication_status"] == "error"


def test_bad_driver_spec_is_a_usage_error(cli, sqlite_url):
    for spec, message in [("nomodule", "expected module:Class"), ("no.such.module:X", "cannot import"),
                          (f"{DRIVER}x", "has no 'ReferenceDriverx'")]:
        result = cli("--db-url", sqlite_url, "update-host-replication", "--backend-host", "a@b", "--driver", spec)
        assert result.exit_code == 2 and message in result.stderr
    stopped = cli("--db-url", sqlite_url, "update-host-replication", "--cluster", "c@d", "--backend-host", "a@b",
                  "--driver", DRIVER)
    assert stopped.exit_code == 2
    bad_option = cli("--db-url", sqlite_url, "update-host-replication", "--backend-host", "a@b", "--driver", DRIVER,
                     "--driver-option", "novalue")
    assert bad_option.exit_code == 2 and "expected key=value" in bad_option.stderr
