"""Fixtures of the benches: seeded databases per dialect, Cinder's loop, and
the machine facts recorded with every run (pytest-benchmark's JSON).

Run them with `make bench` (or `scripts/bench-report`, which also rewrites
docs/benchmarks.md); `make test` never collects this folder.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import rig

DIALECT_PARAMS = [pytest.param(d, id=rig.LABELS[d]) for d in rig.DIALECTS]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # Seeding a million rows and Cinder's own loop outlast pyproject's per-test timeout.
        item.add_marker(pytest.mark.timeout(3600))


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    facts = rig.machine_facts()
    facts["busy_processes_at_start"] = list(rig.busy_processes())
    versions = {"sqlite": f"SQLite {sqlite3.sqlite_version}"}
    for dialect in ("postgresql", "mysql"):
        if rig.server_available(dialect):
            import os

            versions[dialect] = rig.database_version(os.environ[rig.SERVER_ENV[dialect]])
    facts["databases"] = versions
    facts["scale"] = rig.SCALE
    machine_info["cinder_promote"] = facts


_factories: dict[str, rig.cinder_schema.SchemaFactory] = {}


@pytest.fixture(scope="session")
def factories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, rig.cinder_schema.SchemaFactory]]:
    yield _factories
    for factory in _factories.values():
        factory.drop_all()


@pytest.fixture(scope="session")
def factory_of(factories: dict, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cinder-schema")

    def get(dialect: str) -> rig.cinder_schema.SchemaFactory:
        if not rig.server_available(dialect):
            pytest.skip(f"no {dialect} server: run the benches with `make bench`, which starts them")
        if dialect not in factories:
            factories[dialect] = rig.cinder_schema.make_factory(dialect, Path(cache) / dialect)
        return factories[dialect]

    return get


_seeded: dict[tuple[str, int, int], rig.Seeded] = {}


@pytest.fixture(scope="session")
def seeded(factory_of) -> Iterator:
    """`seeded(dialect, volumes, groups)`: a database seeded once per session and size."""

    def get(dialect: str, volumes: int, groups: int) -> rig.Seeded:
        key = (dialect, volumes, groups)
        if key not in _seeded:
            _seeded[key] = rig.Seeded(factory_of(dialect), volumes, groups)
        return _seeded[key]

    yield get
    for database in _seeded.values():
        database.drop_copies()
    _seeded.clear()
