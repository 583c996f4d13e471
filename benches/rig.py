"""What the benches share: scratch Cinder databases seeded once and copied for
each round, update data that changes every round, Cinder's own loop in its
venv, and the facts about the machine that every number carries.

Fair rounds. PostgreSQL leaves a dead row version behind every UPDATE and
InnoDB skips rows whose values do not change, so a round that reuses the
last round's table measures something else. Every round therefore gets its
own copy of the seeded database where the database can copy cheaply
(SQLite: the file; PostgreSQL: `CREATE DATABASE ... TEMPLATE`), and new
values (a per-round tag) everywhere, which is what matters on MariaDB,
where the rounds share one database.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import cinder_schema  # noqa: E402

from cinder_promote import bench  # noqa: E402
from cinder_promote.db.connect import open_engine  # noqa: E402

HOST = bench.BENCH_HOST
SERVER_ENV = {"postgresql": cinder_schema.PG_URL_ENV, "mysql": cinder_schema.MYSQL_URL_ENV}
DIALECTS = ("sqlite", "postgresql", "mysql")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}

# CINDER_PROMOTE_BENCH_SCALE=0.05 runs every bench on 5% of the rows: a smoke test of the benches
# themselves, whose numbers mean nothing.
SCALE = float(os.environ.get("CINDER_PROMOTE_BENCH_SCALE", "1"))


def scaled(n: int) -> int:
    return max(100, int(n * SCALE))


_tags = itertools.count(1)


def new_tag() -> str:
    """A value that no earlier round wrote."""
    return f"r{os.getpid()}-{next(_tags)}"


def server_available(dialect: str) -> bool:
    return dialect == "sqlite" or bool(os.environ.get(SERVER_ENV[dialect]))


# ------------------------------------------------------------------ seeding


def seed(url: str, volumes: int, groups: int) -> None:
    """The benchmark's stopped service, `volumes` volumes in four pools and `groups` groups, all failed over."""
    engine = open_engine(url)
    try:
        if engine.url.get_backend_name() == "postgresql" and volumes >= 50_000:
            _seed_postgresql(engine, volumes, groups)
        else:
            bench._seed(engine, volumes, groups)
    finally:
        engine.dispose()


def _seed_postgresql(engine: sa.Engine, volumes: int, groups: int) -> None:
    """`bench._seed`'s rows, made by the server (a million rows in seconds rather than minutes)."""
    bench._seed(engine, 0, groups)
    stopped = bench.utcnow() - bench.timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO volumes (created_at, updated_at, deleted, id, user_id, project_id, host, size,"
            " availability_zone, status, attach_status, volume_type_id, replication_status, multiattach,"
            " use_quota, bootable)"
            " SELECT :t, :t, false, gen_random_uuid()::text, 'demo-user', 'demo-project',"
            " :host || '#pool' || (i % 4), 1, 'nova', 'available', 'detached', :vt, 'failed-over', false, true, false"
            " FROM generate_series(0, :n - 1) AS i"
        ), {"t": stopped, "host": HOST, "vt": bench.seed.DEFAULT_VOLUME_TYPE_ID, "n": volumes})
    bench.analyze(engine)


class Seeded:
    """A database of one dialect seeded once; `fresh()` is a database for one round."""

    def __init__(self, factory: cinder_schema.SchemaFactory, volumes: int, groups: int) -> None:
        self.factory, self.dialect = factory, factory.dialect
        self.volumes, self.groups = volumes, groups
        self.url = factory.new_database()
        started = time.perf_counter()
        seed(self.url, volumes, groups)
        self.seed_s = time.perf_counter() - started
        self._copies: list[str] = []

    def fresh(self) -> str:
        """A copy of the seeded database for one round (MariaDB: the database itself; vary the data),
        settled (see `settle`)."""
        self.drop_copies()
        if self.dialect == "sqlite":
            source = Path(sa.engine.make_url(self.url).database or "")
            copy = source.with_name(f"{source.stem}-round{next(_tags)}.db")
            shutil.copyfile(source, copy)
            self._copies.append(str(copy))
            url = f"sqlite:///{copy}"
        elif self.dialect == "postgresql":
            name = self.factory._next_name("round")
            self.factory._created.append(name)
            source = sa.engine.make_url(self.url).database
            self.factory._exec(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
            self._copies.append(name)
            url = self.factory._db_url(name)
        else:
            reset_service(self.url)
            url = self.url
        self.settle()
        return url

    def settle(self) -> None:
        """Write out what preparing a round left in memory before its clock starts.

        A copy just made (CREATE DATABASE, a file copy) or the last round's writes
        are otherwise written back to disk while the next round runs: a PostgreSQL
        hook measured after the SQLite rounds (whose Cinder loop syncs every save)
        took 1.5x as long as the same hook run alone. On MariaDB, whose rounds share
        one database, InnoDB's purge of the last round's old row versions runs in the
        background for about 0.7 s after a write of 100,000 rows: a round that started
        meanwhile would share the two cores with it, so the round waits for it. Done
        before every timed round of the hook, of Cinder's loop and of the write methods alike."""
        if self.dialect == "postgresql":
            self.factory._exec("CHECKPOINT")
        elif self.dialect == "mysql":
            wait_for_purge(self.url)
        os.sync()

    def vacuum(self) -> None:
        """PostgreSQL: clear the dead row versions the earlier rounds' writes left in the
        seeded database itself (rounds that reuse it, as the start-up bench's boots do), as
        autovacuum would have done by the next start; then `settle`."""
        if self.dialect == "postgresql":
            engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("VACUUM (ANALYZE)")
            finally:
                engine.dispose()
        self.settle()

    def drop_copies(self) -> None:
        for copy in self._copies:
            if self.dialect == "sqlite":
                Path(copy).unlink(missing_ok=True)
            else:
                self.factory._drop(copy)
                self.factory._created.remove(copy)
        self._copies.clear()


def wait_for_purge(url: str, timeout: float = 60.0) -> None:
    """MariaDB: until InnoDB has purged every committed transaction's undo log
    (`Innodb_history_list_length` 0), for at most `timeout` seconds."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                row = conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").first()
                if row is None or int(row[1]) == 0:  # None: a server without it (MySQL)
                    return
                time.sleep(0.05)
    finally:
        engine.dispose()


def reset_service(url: str) -> None:
    """Put the benchmark's service back as the admin left it after a promotion (the hook's input)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE services SET replication_status = 'enabled', active_backend_id = NULL"
                                 " WHERE host = :h"), {"h": HOST})
    finally:
        engine.dispose()


# The reference driver's columns after a promotion, written by the write benches and floors.
WRITE_COLUMNS = ["replication_status", "replication_driver_data", "replication_extended_status"]
_ids: dict[str, list[str]] = {}


def new_target() -> str:
    """A replication target no earlier round named, for the reference driver's answer."""
    return f"backend-{new_tag()}"


def update_data(url: str, case: str) -> tuple[list[tuple], dict[str, str] | None]:
    """New values for every live volume of `url` (ids read once per database): `distinct`,
    rows of (id, one value per WRITE_COLUMNS), the values the reference driver answers
    after a promotion to a `new_target()`; `same`, rows of (id,) and the one update for all.

    Of the same length as the hook bench's answers: on MariaDB, where the rounds share
    the rows, a write of longer values than the last round's cannot update the rows in
    place (the write floor timed beside the hook took 1.2 s after the hook's rounds
    against 0.75 s after its own)."""
    if url not in _ids:
        _ids[url] = volume_ids(url)
    ids = _ids[url]
    if case == "same":
        return [(i,) for i in ids], {"replication_status": "enabled", "replication_extended_status": f"shared ({new_tag()})"}
    target = new_target()
    return [(i, "enabled", f"{target}:pair-{i}", f"replicating to {target}") for i in ids], None


def volume_ids(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT id FROM volumes WHERE deleted = :f ORDER BY id"),
                                     {"f": False}).scalars())
    finally:
        engine.dispose()


# ----------------------------------------------------------- Cinder's loop


def cinder_venv() -> Path:
    return cinder_schema.cinder_venv()


def cinder_conf(url: str, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "cinder.conf"
    value = url.replace("$", "$$")
    conf.write_text(f"[DEFAULT]\nstate_path = {workdir}\nlog_dir = {workdir}\n\n[database]\nconnection = {value}\n\n"
                    f"[oslo_concurrency]\nlock_path = {workdir}\n")
    return conf


class CinderLoop:
    """Cinder 29.0.0 booted once in its own venv (benches/cinder_loop.py), run a round at a time."""

    def __init__(self, url: str, workdir: Path) -> None:
        conf = cinder_conf(url, workdir)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONWARNINGS"] = "ignore"
        self.proc = subprocess.Popen(
            [str(cinder_venv() / "bin" / "python"), str(REPO / "benches" / "cinder_loop.py"),
             "--config-file", str(conf), "--host", HOST],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=workdir,
        )
        self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"Cinder's loop exited ({self.proc.wait()}); see benches/cinder_loop.py")
        return json.loads(line)  # type: ignore[no-any-return]

    def run(self, tag: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {tag}\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ------------------------------------------------------------ the machine


def database_version(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        return bench.database_version(engine)
    finally:
        engine.dispose()


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    try:
        with open("/proc/meminfo") as meminfo:
            facts["memory_kib"] = int(meminfo.readline().split()[1])
        with open("/proc/cpuinfo") as cpuinfo:
            facts["cpu_model"] = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except (OSError, ValueError, StopIteration):
        pass
    return facts


def busy_processes() -> Iterator[str]:
    """Other processes using the CPU now (the machine may be shared): their command names."""
    out = subprocess.run(["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines()[1:8]:
        pid, pcpu, comm = line.split(None, 2)
        if float(pcpu) >= 5 and int(pid) != os.getpid():
            yield f"{comm} ({pcpu}%)"
