"""Fixtures: fresh real Cinder databases on SQLite, PostgreSQL and MariaDB,
the command line, and snapshots that prove nothing changed.

The schemas come from Cinder 29.0.0's own `cinder-manage db sync`
(tests/support/cinder_schema.py). PostgreSQL and MariaDB are the servers
started by `scripts/servers`; their admin URLs come from the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cinder_promote import engine as core
from cinder_promote.cli import app
from cinder_promote.db.connect import FAST_PATHS_ENV

sys.path.insert(0, str(Path(__file__).parent))
from support import cinder_schema, galera  # noqa: E402

SERVER_ENV = {"postgresql": cinder_schema.PG_URL_ENV, "mysql": cinder_schema.MYSQL_URL_ENV, "galera": galera.URLS_ENV}
ALL_DIALECTS = ("sqlite", "postgresql", "mysql")
# "galera" is not among them: the modules that run on the Galera cluster too say so.
WITH_GALERA = (*ALL_DIALECTS, "galera")


def _server_available(dialect: str) -> bool:
    return dialect == "sqlite" or bool(os.environ.get(SERVER_ENV[dialect]))


@pytest.fixture(scope="session")
def schema_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cinder-schema")


_factories: dict[str, cinder_schema.SchemaFactory] = {}


@pytest.fixture(scope="session")
def factories(schema_cache: Path) -> Iterator[dict[str, cinder_schema.SchemaFactory]]:
    yield _factories
    for factory in _factories.values():
        factory.drop_all()


def _factory(factories: dict, dialect: str, cache: Path) -> cinder_schema.SchemaFactory:
    if not _server_available(dialect):
        if os.environ.get("CI"):
            pytest.fail(f"{SERVER_ENV[dialect]} is not set: .ci/run must start the servers (scripts/servers start)")
        pytest.skip(f"no {dialect} server: run `eval \"$(scripts/servers start)\"` (make test does)")
    if dialect not in factories:
        if dialect == "galera":  # built through node 1, replicated to the others
            factories[dialect] = cinder_schema.make_factory("mysql", cache / dialect, admin_url=galera.node_urls()[0])
        else:
            factories[dialect] = cinder_schema.make_factory(dialect, cache / dialect)
    return factories[dialect]


@pytest.fixture(params=ALL_DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


# The hook's tests run on every database, and on MariaDB and Galera once more with the fast
# paths forced off (PyMySQL, identical updates by id chunks): both must behave the same.
HOOK_DIALECTS = [
    *(pytest.param((d, True), id=d) for d in WITH_GALERA),
    *(pytest.param((d, False), id=f"{d}-fast-paths-off") for d in ("mysql", "galera")),
]


def hook_dialect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """For a module's `dialect` fixture with params=HOOK_DIALECTS."""
    name, fast = request.param
    if not fast:
        monkeypatch.setenv(FAST_PATHS_ENV, "off")
    return name  # type: ignore[no-any-return]


@pytest.fixture
def cinder_url(dialect: str, factories: dict, schema_cache: Path) -> str:
    """A fresh database with Cinder 29.0.0's schema, built by cinder-manage db sync.

    On Galera, the URL goes through node 2 while `db` (the test's own reads and
    writes) goes through node 1: what the code under test does crosses nodes.
    """
    url = _factory(factories, dialect, schema_cache).new_database()
    return galera.on_node(galera.wait_everywhere(url), 2) if dialect == "galera" else url


@pytest.fixture
def galera_url(factories: dict, schema_cache: Path) -> str:
    """A fresh Cinder database on the Galera cluster, through node 1 (`galera.on_node` for the others)."""
    return galera.wait_everywhere(_factory(factories, "galera", schema_cache).new_database())


@pytest.fixture
def sqlite_url(factories: dict, schema_cache: Path) -> str:
    return _factory(factories, "sqlite", schema_cache).new_database()


@pytest.fixture
def empty_url(dialect: str, factories: dict, schema_cache: Path) -> str:
    """A reachable database without Cinder's tables."""
    return _factory(factories, dialect, schema_cache).empty_database()


@pytest.fixture
def db(cinder_url: str, dialect: str) -> Iterator[sa.Engine]:
    engine = galera.engine_on(cinder_url, 1) if dialect == "galera" else sa.create_engine(cinder_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=core.ENGINES)
def both_engines(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with the native module and again with its pure-Python twin."""
    before = core.current()
    core.use(request.param)
    yield request.param
    core.use(before)


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests say where the database is; the developer's environment must not.
    monkeypatch.delenv("CINDER_PROMOTE_DB_URL", raising=False)
    monkeypatch.delenv("CINDER_PROMOTE_ENGINE", raising=False)
    monkeypatch.delenv(FAST_PATHS_ENV, raising=False)


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict | None = None):
        return self.runner.invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def cli() -> Cli:
    return Cli()


def snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of the tables we may touch, to prove that a refusal wrote nothing."""
    tables = ["services", "clusters", "volumes", "groups", "cinder_promote_journal"]
    out = {}
    with engine.connect() as conn:
        present = set(sa.inspect(conn).get_table_names())
        for name in tables:
            if name in present:
                out[name] = sorted((tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {name}"))), key=repr)
    return out
