"""What the workflow tests share: the operator's commands (recorded with their exit codes and
times), the database as the tests read it, the phases' times, and the deployments."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from .deployment import REPO, Deployment

PHASES: list[tuple[str, float]] = []
COMMANDS: list[tuple[str, int, float]] = []


@contextmanager
def phase(name: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    PHASES.append((name, time.monotonic() - start))


def patched_venv() -> Path:
    venv = os.environ.get("CINDER_PROMOTE_CINDER_PATCHED_VENV")
    if venv:
        return Path(venv)
    done = subprocess.run([str(REPO / "scripts" / "cinder-patched-venv")], capture_output=True, text=True)
    assert done.returncode == 0, f"scripts/cinder-patched-venv failed:\n{done.stderr[-3000:]}"
    return Path(done.stdout.strip().splitlines()[-1])


def server_url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        pytest.fail(f"{variable} is not set: start the servers (eval \"$(scripts/servers start)\")")
    return url


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of a prettytable printed by the `cinder` client."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    if not lines:
        return []
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]


class Operator:
    """The commands an operator types on this deployment, recorded."""

    def __init__(self, rig: Deployment) -> None:
        self.rig = rig

    def run(self, *argv: str, expect: int | None = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        start = time.monotonic()
        program = argv[0]
        done = self.rig.run(self.rig.bin(program), *argv[1:], timeout=timeout)
        COMMANDS.append((shlex.join(argv), done.returncode, time.monotonic() - start))
        if expect is not None:
            assert done.returncode == expect, (
                f"{shlex.join(argv)} exited {done.returncode}, expected {expect}:\n{done.stdout}\n{done.stderr}")
        return done

    def cinder(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess:
        return self.run("cinder", *args, expect=expect)

    def manage(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess:
        return self.run("cinder-manage", "--config-file", str(self.rig.conf), *args, expect=expect)

    def promote(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess:
        return self.run("cinder-promote", "--config-file", str(self.rig.conf), *args, expect=expect)

    def show(self, name_or_id: str) -> dict[str, str]:
        rows = parse_table(self.cinder("show", name_or_id).stdout)
        return {r["Property"]: r["Value"] for r in rows}

    def services(self) -> dict[str, dict[str, str]]:
        """`cinder service-list --withreplication`, volume services by host."""
        rows = parse_table(self.cinder("service-list", "--withreplication", "--binary", "cinder-volume").stdout)
        return {r["Host"]: r for r in rows}


class Database:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def rows(self, query: str, **params) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(query), params))

    def volume(self, name: str) -> sa.Row:
        (row,) = self.rows("SELECT * FROM volumes WHERE display_name = :n AND deleted = 0", n=name)
        return row

    def service(self, host: str) -> sa.Row:
        (row,) = self.rows("SELECT * FROM services WHERE host = :h AND `binary` = 'cinder-volume' AND deleted = 0",
                           h=host)
        return row

    def journal(self, target: str) -> list[sa.Row]:
        return self.rows("SELECT * FROM cinder_promote_journal WHERE target = :t ORDER BY id", t=target)


def wait_until(what: str, check, timeout: float = 60, interval: float = 0.5):
    """Poll `check()` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def start_rig(state_dir: Path, admin_url: str, galera: bool = False) -> Deployment:
    rig = Deployment(state_dir=state_dir, venv=patched_venv(), admin_url=admin_url, galera=galera)
    try:
        with phase("rig: RabbitMQ, database sync, cinder-api and cinder-scheduler"):
            rig.start(volumes=False)
    except BaseException:
        rig.stop_all(drop=True)
        raise
    return rig


@contextmanager
def deployment_on(request: pytest.FixtureRequest, admin_url: str, galera: bool = False) -> Iterator[Deployment]:
    """A deployment in a state folder under the repository's .cache/e2e (not pytest's tmp
    folders, which other pytest sessions of the machine prune while the processes run),
    removed afterwards unless a test failed (its logs are then kept, and named)."""
    base = REPO / ".cache" / "e2e"
    base.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="deployment-", dir=base))
    deployment = start_rig(state_dir, admin_url, galera)
    try:
        yield deployment
    finally:
        deployment.stop_all(drop=True)
        if request.session.testsfailed:
            print(f"\ndeployment logs kept in {state_dir / 'log'}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
