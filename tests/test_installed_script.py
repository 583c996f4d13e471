"""The installed console script, run as an operator runs cinder-manage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from scenario import row, stopped_service


def _script() -> str:
    found = shutil.which("cinder-promote", path=str(Path(sys.executable).parent)) or shutil.which("cinder-promote")
    assert found, "the console script cinder-promote is not installed"
    return found


def test_cinder_manage_command_line(db, cinder_url, tmp_path):
    sid = stopped_service(db, "node-b@replicated")
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"[DEFAULT]\nservice_down_time = 60\n\n[database]\nconnection = {cinder_url}\n")
    env = {k: v for k, v in os.environ.items() if k != "CINDER_PROMOTE_DB_URL"}
    proc = subprocess.run(
        [_script(), "--config-file", str(conf), "db", "reset_active_backend",
         "--backend-host", "node-b@replicated", "--enable-replication", "--active-backend-id", "backend-c"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "was reset (journal 1)" in proc.stdout
    after = row(db, "services", sid)
    assert (after["replication_status"], after["active_backend_id"]) == ("enabled", "backend-c")
    again = subprocess.run(
        [_script(), "--config-file", str(conf), "db", "reset-active-backend",
         "--backend-host", "node-b@replicated", "--enable-replication", "--active-backend-id", "backend-c"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert again.returncode == 0 and "already in the requested state" in again.stdout


def test_usage_error_exit_code(tmp_path):
    proc = subprocess.run([_script(), "reset-active-backend", "--no-such-flag"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "No such option" in proc.stderr
