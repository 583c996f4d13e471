"""The worst hour: the command line never misleads, never destroys, and survives interruption.

An operator runs cinder-promote tired, from a runbook, sometimes by mistake:
with old environment variables, piping into `head`, pressing Ctrl-C,
stopping it with systemctl (SIGTERM). Each habit has a test here.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from scenario import stopped_service

from cinder_promote.demo import DEMO_APPLICATION_ID, is_demo_database


# -- never destroy what is not ours ------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"[database]\nconnection = mysql+pymysql://cinder:secret@db/cinder\n", b""])
def test_demo_refuses_to_replace_a_file_it_did_not_create(cli, tmp_path, content):
    path = tmp_path / "cinder.conf"
    path.write_bytes(content)
    result = cli("demo", "--db-path", str(path), "--volumes", "10", "--groups", "0")
    assert result.exit_code == 1, result.stderr
    assert str(path) in result.stderr and "left untouched" in result.stderr
    assert path.read_bytes() == content


def test_demo_refuses_a_real_cinder_database(cli, sqlite_url):
    path = sqlite_url.removeprefix("sqlite:///")
    with open(path, "rb") as f:
        before = f.read()
    result = cli("demo", "--db-path", path, "--volumes", "10", "--groups", "0")
    assert result.exit_code == 1 and "not a demo database" in result.stderr
    with open(path, "rb") as f:
        assert f.read() == before


def test_demo_replaces_its_own_database(cli, tmp_path):
    path = tmp_path / "demo.sqlite"
    for _ in range(2):
        result = cli("demo", "--disaster-only", "--db-path", str(path), "--volumes", "10", "--groups", "0")
        assert result.exit_code == 0, result.stderr
    assert is_demo_database(str(path))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == DEMO_APPLICATION_ID


@pytest.mark.parametrize("where", ["missing-dir/demo.sqlite", "."])
def test_demo_path_usage_errors_name_the_path(cli, tmp_path, where):
    path = tmp_path / where
    result = cli("demo", "--db-path", str(path), "--volumes", "10", "--groups", "0")
    assert result.exit_code == 2, result.stderr
    assert str(path.resolve() if where == "." else path) in result.stderr
    assert "unexpected" not in result.stderr
    assert not (tmp_path / "missing-dir").exists()


# -- say which database, and pick the one the operator meant ---------------------------------------------------

def test_config_file_on_the_command_line_beats_an_exported_variable(cli, db, cinder_url, tmp_path):
    """After the guide's `export`, a later `--config-file` must work on that file's database, not the demo's."""
    stopped_service(db, "real@be")
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"[database]\nconnection = {cinder_url}\n")
    demo = tmp_path / "demo.sqlite"
    assert cli("demo", "--disaster-only", "--db-path", str(demo), "--volumes", "10", "--groups", "0").exit_code == 0
    result = cli("--config-file", str(conf), "status", "--format", "json",
                 env={"CINDER_PROMOTE_DB_URL": f"sqlite:///{demo}"})
    assert result.exit_code == 0, result.stderr
    assert [s["host"] for s in json.loads(result.stdout)["services"]] == ["real@be"]
    assert f"(from [database] connection of {conf})" in result.stderr


@pytest.mark.parametrize("command", [["status"], ["check"], ["history"], ["undo", "7", "--dry-run"],
                                     ["reset-active-backend", "--backend-host", "node-b@be", "--dry-run"]])
def test_every_command_names_its_database(cli, db, cinder_url, command):
    stopped_service(db, "node-b@be")
    shown = db.url.render_as_string(hide_password=True)
    human = cli("--db-url", cinder_url, *command)
    assert f"database: {shown} (from --db-url)" in human.stderr
    as_json = cli("--db-url", cinder_url, *command, "--format", "json")
    assert json.loads(as_json.stdout)["database"] == shown, as_json.stdout
