"""Whole-process time, interpreter start-up and imports included, of
`cinder-promote --help` and `reset-active-backend` against cinder-manage's
(real Cinder 29.0.0 in its venv): what an operator waits for.

The reset runs on a stopped, disabled, frozen, failed-over service, put back
in that state before every round; each tool has its own copy of the database
(cinder-manage's reset writes the heartbeat, which would make the service
look alive to ours). cinder-manage's reset checks nothing and writes one
row; ours checks every precondition, writes with compare-and-swap and
journals.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rig
import sqlalchemy as sa

ROUNDS = 7
OURS = str(Path(sys.executable).with_name("cinder-promote"))


def _cinder_manage() -> str:
    return str(rig.cinder_venv() / "bin" / "cinder-manage")


def _run(argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, (argv[:3], proc.stdout[-2000:], proc.stderr[-2000:])


@pytest.mark.parametrize("who", ["cinder-promote", "cinder-manage"])
def test_help(benchmark, who):
    argv = [OURS, "--help"] if who == "cinder-promote" else [_cinder_manage(), "--help"]
    benchmark.group = "process --help"
    benchmark.extra_info.update({"kind": "process", "command": "--help", "who": who})
    benchmark.pedantic(_run, args=(argv,), rounds=ROUNDS, warmup_rounds=1)


def _failed_over(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE services SET replication_status = 'failed-over', active_backend_id = 'backend-b',"
                                 " disabled = :t, frozen = :t WHERE host = :h"), {"t": True, "h": rig.HOST})
    finally:
        engine.dispose()


@pytest.mark.parametrize("who", ["cinder-promote", "cinder-manage"])
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], ids=["SQLite", "PostgreSQL"])
def test_reset_active_backend(benchmark, factory_of, dialect, who, tmp_path):
    url = factory_of(dialect).new_database()
    rig.seed(url, 100, 0)
    if who == "cinder-promote":
        argv = [OURS, "--db-url", url, "reset-active-backend", "--backend-host", rig.HOST, "--enable-replication"]
    else:
        conf = rig.cinder_conf(url, tmp_path / "cinder")
        argv = [_cinder_manage(), "--config-file", str(conf), "db", "reset_active_backend", "--enable-replication",
                "--backend-host", rig.HOST]
    benchmark.group = f"process reset-active-backend {rig.LABELS[dialect]}"
    benchmark.extra_info.update({"kind": "process", "command": "reset-active-backend", "who": who, "dialect": dialect})
    benchmark.pedantic(_run, args=(argv,), setup=lambda: _failed_over(url), rounds=ROUNDS, warmup_rounds=1)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT replication_status FROM services WHERE host = :h"), {"h": rig.HOST}).scalar()
    engine.dispose()
    assert status == "enabled"
