"""Interruption and lock waits, with real processes and real signals.

SIGINT (Ctrl-C) and SIGTERM (systemctl stop) during update-host-replication,
reset-active-backend or undo: the transaction rolls back, nothing of it is
written, the hook's fence goes to `error` with the journal saying why, one line
says what happened and what to run next, and the exit code is 128 + signal.
A lock held by another transaction is announced while the command waits.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from conftest import snapshot
from scenario import journal, row, stopped_service
from support.hook_processes import SCRIPT, env, volume_statuses

from cinder_promote.db import journal as journal_table
from cinder_promote.db import seed, watch

WAIT_NOTICE = "waiting for the database"


class Watched:
    """A cinder-promote process whose stderr is read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env())
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode} before {text!r}: {self.stderr}"
                continue
            self.stderr.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} on stderr within {timeout} s: {self.stderr}")

    def finish(self, timeout: float = 60) -> tuple[int, str, list[str]]:
        code = self.proc.wait(timeout=timeout)
        out = self.proc.stdout.read()
        self.reader.join(timeout)
        while not self.lines.empty():
            self.stderr.append(self.lines.get())
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code, out, self.stderr


def _interruption_lines(stderr: list[str], name: str) -> list[str]:
    return [line for line in stderr if line.startswith(f"cinder-promote: interrupted by {name}")]


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_the_driver_call(db, cinder_url, sig):
    sid = stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(f"node-b@be#p{i % 2}", replication_status="failed-over")
                                for i in range(60)))
    hook = Watched("--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be",
                   "--driver", "hook_drivers:DistinctDriver", "--driver-option", "delay=120")
    hook.wait_for("[driver] calling the driver")
    hook.proc.send_signal(sig)
    code, out, stderr = hook.finish()
    name = signal.Signals(sig).name
    assert code == 128 + sig, "".join(stderr)
    [line] = _interruption_lines(stderr, name)
    assert "cinder-promote check" in line and "Traceback" not in "".join(stderr)
    assert volume_statuses(db) == {"failed-over": 60}, "nothing of the driver's answer was written"
    assert row(db, "services", sid)["replication_status"] == "error", "the fence was released to 'error'"
    [entry] = journal(db)
    assert (entry["state"], entry["error"]) == ("failed", f"interrupted by {name}")

    # check explains it: the service is in 'error' because the hook was interrupted, and how to rerun it
    check = subprocess.run([SCRIPT, "--db-url", cinder_url, "check", "--format", "json"], capture_output=True,
                           text=True, env=env(), timeout=60)
    assert check.returncode == 1, check.stderr
    [finding] = [f for f in json.loads(check.stdout)["findings"] if f["code"] == "hook-failed"]
    assert f"journal {entry['id']}" in finding["message"] and f"interrupted by {name}" in finding["message"]
    assert "reset-active-backend --backend-host node-b@be --replication-status enabled" in finding["command"]


def _hold_sqlite_lock(url: str) -> sqlite3.Connection:
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer's lock, as a running cinder-manage would hold
    return holder


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_sigterm_while_a_reset_waits_for_a_lock(db, cinder_url):
    stopped_service(db, "node-b@be")
    journal_table.ensure_table(db)
    before = snapshot(db)
    holder = _hold_sqlite_lock(cinder_url)
    try:
        reset = Watched("--db-url", cinder_url, "reset-active-backend", "--backend-host", "node-b@be",
                        "--enable-replication")
        notice = reset.wait_for(WAIT_NOTICE)  # announced while the lock is still held
        assert "up to 30 s" in notice
        reset.proc.send_signal(signal.SIGTERM)
    finally:
        holder.rollback()
        holder.close()
    code, out, stderr = reset.finish()
    assert code == 143, "".join(stderr)
    [line] = _interruption_lines(stderr, "SIGTERM")
    assert "rolled back; nothing was written" in line
    assert snapshot(db) == before


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_sigint_while_an_undo_waits_for_a_lock(cli, db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    done = cli("--db-url", cinder_url, "reset-active-backend", "--backend-host", "node-b@be", "--enable-replication")
    assert done.exit_code == 0, done.stderr
    before = snapshot(db)
    holder = _hold_sqlite_lock(cinder_url)
    try:
        undo = Watched("--db-url", cinder_url, "undo", "1")
        undo.wait_for(WAIT_NOTICE)
        undo.proc.send_signal(signal.SIGINT)
    finally:
        holder.rollback()
        holder.close()
    code, out, stderr = undo.finish()
    assert code == 130, "".join(stderr)
    assert len(_interruption_lines(stderr, "SIGINT")) == 1
    assert snapshot(db) == before and row(db, "services", sid)["replication_status"] == "enabled"


def test_wait_notice_comes_within_two_seconds():
    assert watch.NOTICE_AFTER_S + 0.25 < 2  # the watcher looks every 0.25 s


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"], indirect=True)
def test_row_lock_is_announced_then_the_reset_goes_on(db, cinder_url):
    sid = stopped_service(db, "node-b@be")
    journal_table.ensure_table(db)
    with db.connect() as holder:
        holder.execute(sa.text("UPDATE services SET replication_status = replication_status WHERE id = :id"),
                       {"id": sid})  # a row lock, held until rollback
        reset = Watched("--db-url", cinder_url, "reset-active-backend", "--backend-host", "node-b@be",
                        "--enable-replication")
        notice = reset.wait_for(WAIT_NOTICE)
        assert ("PostgreSQL" if db.url.get_backend_name() == "postgresql" else "innodb_lock_wait_timeout") in notice
        holder.rollback()
    code, out, stderr = reset.finish()
    assert code == 0, stderr
    assert row(db, "services", sid)["replication_status"] == "enabled"


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_a_long_driver_call_shows_its_elapsed_time(db, cinder_url):
    stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    hook = Watched("--db-url", cinder_url, "update-host-replication", "--backend-host", "node-b@be",
                   "--driver", "hook_drivers:DistinctDriver", "--driver-option", "delay=7")
    line = hook.wait_for("[driver] still working")
    assert re.fullmatch(r"\[driver\] still working: \d+ s\n", line)
    code, out, stderr = hook.finish()
    assert code == 0, "".join(stderr)


def test_the_rehearsal_keeps_its_running_service_up_until_ctrl_c(cli, tmp_path):
    from datetime import timedelta

    from cinder_promote.models import utcnow

    path = tmp_path / "promotion.sqlite"
    built = cli("demo", "--disaster-only", "--db-path", str(path), "--volumes", "10", "--groups", "0")
    assert built.exit_code == 0 and "--keep-running" in built.stdout
    engine = sa.create_engine(f"sqlite:///{path}")
    stale = utcnow() - timedelta(minutes=5)
    with engine.begin() as conn:  # as if the operator had taken five minutes
        conn.execute(sa.text("UPDATE services SET updated_at = :t WHERE host = 'cinder-4@lvm'"), {"t": stale})
    keeper = Watched("demo", "--keep-running", "--db-path", str(path))
    keeper.wait_for("keeping cinder-4@lvm up")
    status = {}
    for _ in range(100):
        out = cli("--db-url", f"sqlite:///{path}", "status", "--backend-host", "cinder-4@lvm", "--format", "json")
        status = json.loads(out.stdout)["services"][0]
        if status["up"]:
            break
        time.sleep(0.1)
    assert status["up"], status
    keeper.proc.send_signal(signal.SIGINT)
    code, _, stderr = keeper.finish()
    assert code == 0, "".join(stderr)
    engine.dispose()


def test_keep_running_refuses_a_database_it_did_not_create(cli, sqlite_url):
    result = cli("demo", "--keep-running", "--db-path", sqlite_url.removeprefix("sqlite:///"))
    assert result.exit_code == 1 and "not a demo database" in result.stderr
