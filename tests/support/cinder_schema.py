"""Fresh databases holding real Cinder 29.0.0's schema, for cinder-promote's tests.

Cinder's schema is created by Cinder itself (``cinder-manage db sync`` from a private venv built by
``scripts/cinder-venv``), once per factory, into a template; every ``new_database()`` is then a cheap
copy of that template:

* SQLite: the template file is copied.
* PostgreSQL: ``CREATE DATABASE x TEMPLATE tmpl``.
* MySQL/MariaDB (no template databases): every table's ``SHOW CREATE TABLE`` is replayed with
  ``FOREIGN_KEY_CHECKS=0`` and the template's rows are copied with ``INSERT ... SELECT``.

PostgreSQL and MySQL need an admin URL in ``CINDER_PROMOTE_TEST_PG_URL`` /
``CINDER_PROMOTE_TEST_MYSQL_URL`` (``scripts/servers env`` prints them). Database names carry the
process id, a per-process token and a counter, so several test processes can share one server.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]
CINDER_VENV_SCRIPT = REPO_ROOT / "scripts" / "cinder-venv"

PG_URL_ENV = "CINDER_PROMOTE_TEST_PG_URL"
MYSQL_URL_ENV = "CINDER_PROMOTE_TEST_MYSQL_URL"
DIALECTS = ("sqlite", "postgresql", "mysql")

# Names of databases this module creates: <prefix>_<pid>_<token>[_<n>].
_TEMPLATE_PREFIX = "cinder_tmpl"
_DB_PREFIX = "cpt"
_NAME_RE = re.compile(r"^(?:cinder_tmpl|cpt)_(\d+)_[0-9a-f]{8}(?:_[a-z]*\d+)?$")

_venv_lock = threading.Lock()
_venv_path: Path | None = None


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def cinder_venv() -> Path:
    """Build (once per process; the script itself is idempotent) and return Cinder's venv."""
    global _venv_path
    with _venv_lock:
        if _venv_path is None:
            proc = subprocess.run(
                ["bash", str(CINDER_VENV_SCRIPT)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                timeout=1800,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"scripts/cinder-venv failed (exit {proc.returncode}):\n"
                    f"{_tail(proc.stdout + proc.stderr)}"
                )
            lines = [line for line in proc.stdout.splitlines() if line.strip()]
            if not lines:
                raise RuntimeError("scripts/cinder-venv printed no venv path")
            path = Path(lines[-1].strip())
            if not (path / "bin" / "cinder-manage").exists():
                raise RuntimeError(f"scripts/cinder-venv returned {path}, which has no bin/cinder-manage")
            _venv_path = path
        return _venv_path


def _conf_value(value: str) -> str:
    # oslo.config substitutes $name in values; a literal $ is written $$.
    return str(value).replace("$", "$$")


def db_sync(url: str, workdir: Path) -> None:
    """Create Cinder's schema in the (existing, empty) database at ``url`` with ``cinder-manage db sync``."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "cinder.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"state_path = {_conf_value(str(workdir))}\n"
        f"log_dir = {_conf_value(str(workdir))}\n"
        "\n"
        "[database]\n"
        f"connection = {_conf_value(url)}\n"
        # Fail fast instead of oslo.db's default 10 retries of 10 s each.
        "max_retries = 2\n"
        "retry_interval = 1\n"
        "\n"
        "[oslo_concurrency]\n"
        f"lock_path = {_conf_value(str(workdir))}\n"
    )
    venv = cinder_venv()
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"  # eventlet's deprecation banner
    env.pop("PYTHONPATH", None)
    log = workdir / "cinder-manage.log"
    log_size = log.stat().st_size if log.exists() else 0
    try:
        proc = subprocess.run(
            [str(venv / "bin" / "cinder-manage"), "--config-file", str(conf), "db", "sync"],
            cwd=str(workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"cinder-manage db sync timed out after {exc.timeout} s for {_safe(url)}") from exc
    if proc.returncode != 0:
        logged = ""
        if log.exists():
            with log.open(errors="replace") as fh:
                fh.seek(log_size)
                logged = fh.read()
        raise RuntimeError(
            f"cinder-manage db sync failed (exit {proc.returncode}) for {_safe(url)}:\n"
            f"{_tail(proc.stdout)}\n--- {log} ---\n{_tail(logged)}"
        )


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # pragma: no cover - only for messages
        return "<url>"


def url_with_credentials(url: str, user: str, password: str | None) -> str:
    """``url`` with its user name and password replaced."""
    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SchemaFactory:
    """Hands out fresh databases holding Cinder's schema (see the module docstring)."""

    dialect: str = ""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir).resolve()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._token = f"{os.getpid()}_{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._template_ready = False
        self._created: list[str] = []  # names (or paths) of databases created, template excluded
        self.template_name = f"{_TEMPLATE_PREFIX}_{self._token}"

    # -- public API -------------------------------------------------------------------------

    def new_database(self) -> str:
        """URL of a fresh database holding exactly what ``cinder-manage db sync`` created."""
        with self._lock:
            if not self._template_ready:
                self._build_template()
                self._template_ready = True
            name = self._next_name()
            self._created.append(name)  # before creating: a half-made copy is dropped too
            return self._copy_template(name)

    def empty_database(self) -> str:
        """URL of a fresh database with no tables at all."""
        with self._lock:
            name = self._next_name("empty")
            self._created.append(name)
            return self._create_empty(name)

    url_with_credentials = staticmethod(url_with_credentials)

    def drop_all(self) -> None:
        """Drop every database this factory created, the template included."""
        with self._lock:
            names = list(self._created)
            self._created.clear()
            for name in names:
                self._drop(name)
            if self._template_ready:
                self._drop_template()
                self._template_ready = False
            self._close()

    # -- for subclasses ---------------------------------------------------------------------

    def _next_name(self, kind: str = "") -> str:
        return f"{_DB_PREFIX}_{self._token}_{kind}{next(self._counter)}"

    def _build_template(self) -> None:
        raise NotImplementedError

    def _copy_template(self, name: str) -> str:
        raise NotImplementedError

    def _create_empty(self, name: str) -> str:
        raise NotImplementedError

    def _drop(self, name: str) -> None:
        raise NotImplementedError

    def _drop_template(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _workdir(self, what: str) -> Path:
        path = self.cache_dir / f"{what}-{self._token}"
        path.mkdir(parents=True, exist_ok=True)
        return path


class SqliteSchemaFactory(SchemaFactory):
    dialect = "sqlite"

    def _path(self, name: str) -> Path:
        return self.cache_dir / f"{name}.db"

    @staticmethod
    def _url(path: Path) -> str:
        return f"sqlite:///{path}"  # absolute path: sqlite:////abs/path

    def _build_template(self) -> None:
        path = self._path(self.template_name)
        path.unlink(missing_ok=True)
        sqlite3.connect(path).close()
        db_sync(self._url(path), self._workdir("sync-sqlite"))

    def _copy_template(self, name: str) -> str:
        path = self._path(name)
        shutil.copyfile(self._path(self.template_name), path)
        return self._url(path)

    def _create_empty(self, name: str) -> str:
        path = self._path(name)
        path.unlink(missing_ok=True)
        sqlite3.connect(path).close()
        return self._url(path)

    def _remove(self, path: Path) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def _drop(self, name: str) -> None:
        self._remove(self._path(name))

    def _drop_template(self) -> None:
        self._remove(self._path(self.template_name))


class _ServerSchemaFactory(SchemaFactory):
    env_var = ""

    def __init__(self, cache_dir: Path, admin_url: str | None = None) -> None:
        super().__init__(cache_dir)
        admin_url = admin_url or os.environ.get(self.env_var)
        if not admin_url:
            raise RuntimeError(
                f"{self.env_var} is not set: start the servers with scripts/servers start "
                f"and export what it prints"
            )
        self.admin_url = make_url(admin_url)
        self._engine = self._make_engine()
        self._drop_stale()

    def _make_engine(self) -> sa.Engine:
        raise NotImplementedError

    def _db_url(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def _list_databases(self) -> list[str]:
        raise NotImplementedError

    def _drop_stale(self) -> None:
        """Drop databases left by test processes of this module that no longer run."""
        try:
            names = self._list_databases()
        except Exception:
            return
        for name in names:
            m = _NAME_RE.match(name)
            if m and not _pid_alive(int(m.group(1))):
                try:
                    if name.startswith(_TEMPLATE_PREFIX):
                        self._drop_template_named(name)
                    else:
                        self._drop(name)
                except Exception:
                    pass

    def _drop_template(self) -> None:
        self._drop_template_named(self.template_name)

    def _drop_template_named(self, name: str) -> None:
        self._drop(name)

    def _close(self) -> None:
        self._engine.dispose()


class PostgresSchemaFactory(_ServerSchemaFactory):
    dialect = "postgresql"
    env_var = PG_URL_ENV

    def _make_engine(self) -> sa.Engine:
        return sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=4)

    def _exec(self, sql: str, **params) -> None:
        with self._engine.connect() as conn:
            conn.execute(sa.text(sql), params)

    def _list_databases(self) -> list[str]:
        with self._engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())

    def _build_template(self) -> None:
        name = self.template_name
        self._exec(f'CREATE DATABASE "{name}"')
        db_sync(self._db_url(name), self._workdir("sync-postgresql"))
        # Nobody (autovacuum included) may be connected to a template while it is copied.
        self._exec(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')

    def _copy_template(self, name: str) -> str:
        deadline = time.monotonic() + 30
        while True:
            try:
                self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}" STRATEGY FILE_COPY')
                break
            except sa.exc.OperationalError as exc:
                # "source database ... is being accessed by other users": wait for it to go.
                if "being accessed by other users" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return self._db_url(name)

    def _create_empty(self, name: str) -> str:
        self._exec(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
        return self._db_url(name)

    def _drop(self, name: str) -> None:
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _drop_template_named(self, name: str) -> None:
        with self._engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists:
                conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false'))
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class MysqlSchemaFactory(_ServerSchemaFactory):
    dialect = "mysql"
    env_var = MYSQL_URL_ENV

    def __init__(self, cache_dir: Path, admin_url: str | None = None) -> None:
        self._ddl: list[tuple[str, str]] = []  # (table, CREATE TABLE statement)
        self._tables_with_rows: list[str] = []
        self._conn: sa.Connection | None = None
        super().__init__(cache_dir, admin_url)

    def _make_engine(self) -> sa.Engine:
        return sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=4)

    def _connection(self) -> sa.Connection:
        # One connection for all the copying (kept open between calls).
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._engine.connect()
        return self._conn

    def _exec(self, sql: str, **params):
        return self._connection().execute(sa.text(sql), params)

    def _list_databases(self) -> list[str]:
        return list(self._exec("SHOW DATABASES").scalars())

    def _build_template(self) -> None:
        name = self.template_name
        self._exec(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        db_sync(self._db_url(name), self._workdir("sync-mysql"))
        tables = list(
            self._exec(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = :db AND table_type = 'BASE TABLE' ORDER BY table_name",
                db=name,
            ).scalars()
        )
        ddl = []
        with_rows = []
        for table in tables:
            create = self._exec(f"SHOW CREATE TABLE `{name}`.`{table}`").one()[1]
            ddl.append((table, create))
            if self._exec(f"SELECT 1 FROM `{name}`.`{table}` LIMIT 1").first() is not None:
                with_rows.append(table)
        self._ddl = ddl
        self._tables_with_rows = with_rows

    def _copy_template(self, name: str) -> str:
        conn = self._connection()
        tmpl = self.template_name
        # The raw DB-API cursor: no bind-parameter parsing of the replayed DDL (":" or "%" in it).
        cur = conn.connection.cursor()
        try:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            cur.execute(f"USE `{name}`")
            cur.execute("SET SESSION FOREIGN_KEY_CHECKS = 0")
            # Cinder keeps a sentinel row with id 0 in `workers`: copy it as 0, not as a new id.
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
            for _table, create in self._ddl:
                cur.execute(create)
            for table in self._tables_with_rows:
                cur.execute(f"INSERT INTO `{name}`.`{table}` SELECT * FROM `{tmpl}`.`{table}`")
        except Exception:
            cur.close()
            self._reset_connection()
            raise
        else:
            cur.execute("SET SESSION FOREIGN_KEY_CHECKS = 1")
            cur.execute("SET SESSION sql_mode = DEFAULT")
            cur.execute(f"USE `{self.admin_url.database or 'mysql'}`")
            cur.close()
        return self._db_url(name)

    def _reset_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _create_empty(self, name: str) -> str:
        self._exec(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        return self._db_url(name)

    def _drop(self, name: str) -> None:
        # A connection a test left open (an open transaction holds metadata locks) would make
        # DROP DATABASE wait: end those connections first, like PostgreSQL's WITH (FORCE).
        ids = self._exec(
            "SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()", db=name
        ).scalars()
        for conn_id in list(ids):
            try:
                self._exec(f"KILL CONNECTION {int(conn_id)}")
            except sa.exc.DBAPIError:
                pass  # already gone
        self._exec("SET SESSION lock_wait_timeout = 60")
        self._exec(f"DROP DATABASE IF EXISTS `{name}`")

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        super()._close()


def make_factory(dialect: str, cache_dir: Path, admin_url: str | None = None) -> SchemaFactory:
    """A factory for ``dialect`` in {"sqlite", "postgresql", "mysql"}; databases and sync files go
    under ``cache_dir`` (SQLite) / on the server named by the admin URL (env var unless given)."""
    if dialect == "sqlite":
        return SqliteSchemaFactory(cache_dir)
    if dialect == "postgresql":
        return PostgresSchemaFactory(cache_dir, admin_url)
    if dialect == "mysql":
        return MysqlSchemaFactory(cache_dir, admin_url)
    raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
