"""bench startup: seeds a scratch database, times the hook by phase, and refuses a real one."""

from __future__ import annotations

import json

import sqlalchemy as sa
from scenario import stopped_service


def test_bench_startup_on_scratch_sqlite(cli, tmp_path):
    chart = tmp_path / "phases.png"
    result = cli("bench", "startup", "--volumes", "500", "--groups", "10", "--format", "json", "--chart", str(chart))
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["volumes"], out["groups"], out["engine"]) == (500, 10, "native")
    assert set(out["phases_s"]) == {"fence", "load", "driver", "plan", "apply"}
    assert out["total_s"] >= sum(out["phases_s"].values()) * 0.99 and out["rows_per_s"] > 0
    assert out["database_version"].startswith("SQLite") and out["machine"]["cpus"] >= 1
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_on_a_server_database_and_reference_engine(cli, cinder_url, db):
    result = cli("bench", "startup", "--volumes", "300", "--groups", "3", "--db-url", cinder_url,
                 "--engine", "reference", "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["engine"] == "reference"
    with db.connect() as conn:
        statuses = conn.execute(sa.text("SELECT replication_status, count(*) FROM volumes GROUP BY replication_status")).all()
    assert dict(statuses) == {"enabled": 300}


def test_bench_refuses_a_database_with_services(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    result = cli("bench", "startup", "--volumes", "10", "--db-url", cinder_url)
    assert result.exit_code == 1 and "scratch Cinder database" in result.stderr
    assert cli("bench", "startup", "--engine", "fast").exit_code == 2
