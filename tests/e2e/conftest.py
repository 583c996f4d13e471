"""Fixtures of the workflow tests: one Cinder deployment (tests/e2e/deployment.py) per session.

The tests here are marked `e2e` and left out of the normal `pytest` run (pyproject's
addopts); `make e2e` runs them (`pytest -m e2e tests/e2e`), and `make test` runs both
selections. They need the MariaDB server of scripts/servers (CINDER_PROMOTE_TEST_MYSQL_URL,
and CINDER_PROMOTE_TEST_GALERA_URLS for the Galera case) and the patched Cinder venv, built
here by scripts/cinder-patched-venv when CINDER_PROMOTE_CINDER_PATCHED_VENV is not set.

Every command an operator would type goes through `Operator`, which records it with its
exit code and time; the session's summary prints the phases and the commands.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .deployment import Deployment
from .harness import COMMANDS, PHASES, Database, Operator, deployment_on, patched_venv, phase, server_url


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook signature
    if not PHASES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("deployment phases (seconds)")
    for name, seconds in PHASES:
        write(f"{seconds:7.1f}  {name}")
    terminalreporter.section("commands typed (exit code, seconds)")
    for command, code, seconds in COMMANDS:
        write(f"[{code}] {seconds:5.1f}s  {command}")


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    with phase("patched Cinder venv (scripts/cinder-patched-venv)"):
        patched_venv()
    with deployment_on(request, server_url("CINDER_PROMOTE_TEST_MYSQL_URL")) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def operator(rig: Deployment) -> Operator:
    return Operator(rig)


@pytest.fixture(scope="session")
def database(rig: Deployment) -> Iterator[Database]:
    db = Database(rig.db_url)
    yield db
    db.engine.dispose()
