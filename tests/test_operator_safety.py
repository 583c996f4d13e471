"""The worst hour: the command line never misleads, never destroys, and survives interruption.

An operator runs cinder-promote tired, from a runbook, sometimes by mistake:
with old environment variables, piping into `head`, pressing Ctrl-C,
stopping it with systemctl (SIGTERM). Each habit has a test here.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3

import pytest
import sqlalchemy as sa
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


# -- Unix manners ---------------------------------------------------------------------------------------------------

def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(db, cinder_url):
    """`status --format json | head`: the reader is gone before we write; no message, exit 141 (SIGPIPE's)."""
    import subprocess

    from support.hook_processes import SCRIPT, env

    for i in range(40):
        stopped_service(db, f"node-{i}@be")
    proc = subprocess.Popen([SCRIPT, "--db-url", cinder_url, "status", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    proc.stdout.close()  # the reader went away
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, stderr
    assert [line for line in stderr.splitlines() if not line.startswith("database: ")] == []


def test_a_bug_has_its_own_exit_code_and_says_how_to_get_the_traceback(cli, db, cinder_url, monkeypatch):
    from cinder_promote.cli import status as status_command

    def broken(*args, **kwargs):
        return {}["no such key"]  # stands for any bug: an exception that is none of ours

    monkeypatch.setattr(status_command, "collect", broken)
    result = cli("--db-url", cinder_url, "status")
    assert result.exit_code == 70
    assert "bug of cinder-promote" in result.stderr and "--debug" in result.stderr
    traced = cli("--db-url", cinder_url, "--debug", "status")
    assert traced.exit_code == 70 and "Traceback" in traced.stderr


# -- OpenStack habits and readable help --------------------------------------------------------------------------

def test_short_format_option(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    for command in (["status"], ["check"], ["history"]):
        result = cli("--db-url", cinder_url, *command, "-f", "json")
        assert result.exit_code in (0, 1) and json.loads(result.stdout)["database"], command


def _all_commands():
    import typer

    from cinder_promote.cli import app

    def walk(group, prefix):
        for name, command in group.commands.items():
            if getattr(command, "commands", None):
                yield from walk(command, [*prefix, name])
            else:
                yield [*prefix, name]
    return [[]] + list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("command", _all_commands(), ids=lambda c: " ".join(c) or "root")
def test_help_reads_naturally(cli, command):
    result = cli(*command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout and "<str>" not in result.stdout
    assert "{" not in result.stdout.splitlines()[1], result.stdout  # the usage line


def test_help_says_what_defaults_and_leaving_flags_out_mean(cli):
    reset = cli("reset-active-backend", "--help", env={"COLUMNS": "200"}).stdout
    assert "[default: disabled]" in reset and "[default: none, stored as NULL]" in reset
    assert "the status becomes disabled" in reset and "by default they stay disabled" in reset
    assert "Usage: cinder-promote undo [OPTIONS] JOURNAL_ID" in cli("undo", "--help", env={"COLUMNS": "200"}).stdout
    root = cli("--help", env={"COLUMNS": "200"}).stdout
    assert "first match wins" in root and "CINDER_PROMOTE_DB_URL" in root


@pytest.mark.parametrize("args, expected", [
    (["undo", "abc"], "expected a whole number"),
    (["demo", "--volumes", "-3"], "must be at least 1"),
    (["status", "--format", "xml"], "'xml' is not one of"),
])
def test_usage_errors_in_plain_words(cli, args, expected):
    result = cli(*args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Input should" not in result.stderr and "Value error" not in result.stderr


def test_status_on_an_80_column_terminal_keeps_host_names_whole(cli, db, cinder_url):
    hosts = ["cinder-volume-node-17.example.org@replicated-backend", "cinder-volume-node-18.example.org@gold"]
    for host in hosts:
        stopped_service(db, host, disabled_reason="failed over to backend-b after the loss of backend-a")
    result = cli("--db-url", cinder_url, "status", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for host in hosts:
        assert any(host in line for line in lines), result.stdout


def test_debug_logs_connections_and_statements_with_timings(cli, db, cinder_url, caplog):
    stopped_service(db, "node-b@be")
    result = cli("--db-url", cinder_url, "--debug", "status", "--backend-host", "node-b@be")
    assert result.exit_code == 0
    logged = caplog.text  # --debug sets our loggers to DEBUG (pytest holds the handlers)
    assert "connected to" in logged
    assert re.search(r"\d+\.\d{4} s  SELECT services\.id", logged), logged
    assert "'node-b@be'" in logged  # bind values are shown, secrets masked (next test)
    logging.getLogger("cinder_promote").setLevel(logging.NOTSET)


def test_debug_masks_secret_bind_values():
    from cinder_promote.db.watch import _binds

    shown = _binds({"provider_auth": "CHAP user s3cret", "host": "h"}, None, False)
    assert "s3cret" not in shown and "'h'" in shown


# -- JSON is consistent everywhere -------------------------------------------------------------------------------

def test_a_refusal_with_json_format_is_a_json_object(cli, db, cinder_url):
    stopped_service(db, "node-b@be", disabled=False)
    result = cli("--db-url", cinder_url, "reset-active-backend", "--backend-host", "node-b@be",
                 "--enable-replication", "--format", "json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["error"]["exit_code"] == 1 and "nothing was written" in out["error"]["message"]
    assert any("cinder service-disable node-b@be cinder-volume" in line for line in out["error"]["details"])


def test_a_dry_run_says_what_it_would_change(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    args = ("--db-url", cinder_url, "reset-active-backend", "--backend-host", "node-b@be", "--enable-replication")
    dry = json.loads(cli(*args, "--dry-run", "--format", "json").stdout)
    assert (dry["dry_run"], dry["changed"], dry["would_change"]) == (True, False, True)
    done = json.loads(cli(*args, "--format", "json").stdout)
    assert (done["changed"], done["would_change"]) == (True, True)
    again = json.loads(cli(*args, "--dry-run", "--format", "json").stdout)
    assert again["would_change"] is False


def test_before_and_after_have_one_shape_in_every_journal_entry(cli, db, cinder_url):
    stopped_service(db, "node-b@be")
    url = ("--db-url", cinder_url)
    assert cli(*url, "reset-active-backend", "--backend-host", "node-b@be", "--enable-replication").exit_code == 0
    assert cli(*url, "update-host-replication", "--backend-host", "node-b@be", "--quiet",
               "--driver", "cinder_promote.drivers.reference:ReferenceDriver").exit_code == 0
    assert cli(*url, "undo", "1").exit_code == 0  # the hook left the service 'enabled', as the reset wrote it
    entries = json.loads(cli(*url, "history", "--format", "json").stdout)["entries"]
    assert [e["operation"] for e in entries] == ["undo", "update-host-replication", "reset-active-backend"]
    for entry in entries:
        for side in ("before", "after"):
            rows = entry[side]
            assert isinstance(rows, list) and rows, (entry["operation"], side, rows)
            for r in rows:
                assert {"table", "name", "values"} <= set(r) and r["table"] == "services"
                assert r["name"] == "node-b@be" and "replication_status" in r["values"]


def test_messages_show_values_not_python_reprs(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    url = ("--db-url", cinder_url)
    assert cli(*url, "reset-active-backend", "--backend-host", "node-b@be", "--enable-replication").exit_code == 0
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE services SET active_backend_id = 'elsewhere' WHERE id = :id"), {"id": sid})
    result = cli(*url, "undo", "1")
    assert result.exit_code == 1
    assert "active_backend_id=elsewhere" in result.stderr and "active_backend_id=NULL" in result.stderr
    assert "{'" not in result.stderr


# -- every URL form Cinder accepts -----------------------------------------------------------------------------

URL_FORMS = {"postgresql": ["postgresql", "postgresql+psycopg2", "postgresql+asyncpg"],
             "mysql": ["mysql", "mysql+mysqldb", "mysql+pymysql"]}


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"], indirect=True)
def test_every_url_form_cinder_accepts(cli, db, cinder_url, dialect):
    from sqlalchemy.engine import make_url

    stopped_service(db, "node-b@be")
    for form in URL_FORMS[dialect]:
        url = make_url(cinder_url).set(drivername=form).render_as_string(hide_password=False)
        status = cli("--db-url", url, "status", "--format", "json")
        assert status.exit_code == 0, (form, status.stderr)
        assert [s["host"] for s in json.loads(status.stdout)["services"]] == ["node-b@be"]
    reset = cli("--db-url", make_url(cinder_url).set(drivername=URL_FORMS[dialect][-2]).render_as_string(
        hide_password=False), "reset-active-backend", "--backend-host", "node-b@be", "--enable-replication")
    assert reset.exit_code == 0, reset.stderr


def test_the_first_make_demo_is_not_silent():
    """`make demo` installs first: it says what takes minutes, and pip is not silenced."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    plan = subprocess.run(["make", "-n", "-B", "install"], cwd=root, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    assert "builds the Rust core" in plan.stdout
    [pip] = [line for line in plan.stdout.splitlines() if "pip install" in line and ".[test]" in line]
    assert " -q" not in pip


# -- docs a stranger can follow --------------------------------------------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
USER_DOCS = ["README.md", "docs/admin-guide.md", "docs/driver-guide.md", "docs/decisions.md", "docs/commands.md",
             "cinder_patch/README"]


@pytest.mark.parametrize("doc", USER_DOCS)
def test_user_docs_cite_no_internal_references(doc):
    text = (ROOT / doc).read_text()
    assert not re.search(r"\bSPEC\b|\bspec\b|\bissue \d+|\bissue #\d+", text), re.findall(
        r".{0,40}(?:\bSPEC\b|\bspec\b|\bissue \d+).{0,40}", text)


def test_help_cites_no_internal_references(cli):
    for command in _all_commands():
        out = cli(*command, "--help", env={"COLUMNS": "200"}).stdout
        assert not re.search(r"\bSPEC\b|\bissue \d+", out), command


def test_admin_guide_covers_install_patch_exit_codes_and_offline_drivers():
    guide = (ROOT / "docs/admin-guide.md").read_text()
    for needed in ("## Install it next to Cinder", "cinder_patch/series", "cinder-patch-status",
                   "128 + N", "130", "143", "70 a bug", "first match wins", "--keep-running",
                   "configuration.Configuration(", "postgresql+asyncpg://"):
        assert needed in guide, needed
