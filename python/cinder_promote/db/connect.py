"""Opening Cinder's database from Cinder's own connection URL.

Every failure to reach or recognise the database becomes a
`DatabaseUnavailable` (exit 3) with a one-line reason; the password never
appears in it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from ..errors import ConfigError, DatabaseUnavailable
from . import watch
from .schema import CINDER_TABLES

LOG = logging.getLogger(__name__)
T = TypeVar("T")


_SHIPPED_DRIVERS = {
    "mysql": "mysql+pymysql", "mysql+mysqldb": "mysql+pymysql", "mariadb": "mysql+pymysql",
    "mariadb+mysqldb": "mysql+pymysql", "mariadb+pymysql": "mysql+pymysql",
    "postgresql": "postgresql+psycopg2", "postgresql+asyncpg": "postgresql+psycopg2",
}


def parse_url(raw: str) -> URL:
    """Parse a Cinder connection URL, with the driver we ship for its database."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"invalid database URL {mask_text(raw, raw)!r}: expected Cinder's form, "
                          "for example mysql+pymysql://user:password@host/cinder") from None
    # Every URL form Cinder accepts names a database; we speak to it through the drivers we
    # ship and test: PyMySQL for MariaDB/MySQL (mysql://, mysql+mysqldb://), psycopg2 for
    # PostgreSQL's synchronous engine (postgresql+asyncpg:// would need an async engine; the
    # bulk writer uses asyncpg on PostgreSQL whatever the URL says).
    shipped = _SHIPPED_DRIVERS.get(url.drivername)
    if shipped is not None:
        url = url.set(drivername=shipped)
    return url


def masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def mask_text(text: str, raw_url: str) -> str:
    """Remove the password of `raw_url` from `text`, whatever form it took."""
    try:
        password = make_url(raw_url).password
    except ArgumentError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def _engine_options(url: URL) -> dict:
    backend = url.get_backend_name()
    if backend == "postgresql" and url.get_driver_name() == "psycopg2":
        # One round trip per row otherwise (SERVERS.md, pitfalls).
        return {"executemany_mode": "values_plus_batch", "connect_args": {"connect_timeout": 10}}
    if backend == "mysql" and url.get_driver_name() == "mysqldb":
        # LOCAL lets the hook's write fill its temporary table with LOAD DATA (db/bulk.py). A client
        # with it on sends a file the server names in a LOAD DATA reply: only Cinder's own server,
        # which holds every secret of the deployment already, is ever connected to.
        return {"connect_args": {"connect_timeout": 10, "local_infile": 1}}
    if backend == "mysql":
        return {"connect_args": {"connect_timeout": 10}} if url.get_driver_name() == "pymysql" else {}
    if backend == "sqlite":
        # Wait for a concurrent writer's lock rather than fail at once; the
        # compare-and-swap then decides who won.
        return {"connect_args": {"timeout": watch.SQLITE_BUSY_TIMEOUT_S}}
    return {}


def open_engine(raw_url: str, *, require_cinder: bool = True) -> Engine:
    """Connect to the database at `raw_url` and check that it holds Cinder's tables."""
    url = parse_url(raw_url)
    shown = masked(url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        if path and path != ":memory:" and not path.startswith("file:") and not os.path.exists(path):
            # sqlite3 would create an empty file and we would then call it "not Cinder's".
            raise DatabaseUnavailable(f"cannot open database {shown}: the file {path} does not exist")
    try:
        engine = _create_engine(url)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"cannot use database {shown}: no driver for {url.drivername!r} ({_one_line(exc)})") from None
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {shown}: {mask_text(_one_line(exc), raw_url)}") from None
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
    except (DBAPIError, SQLAlchemyError) as exc:
        engine.dispose()
        raise DatabaseUnavailable(f"cannot reach database {shown}: {mask_text(_one_line(exc), raw_url)}") from None
    missing = [t.name for t in CINDER_TABLES if t.name not in present]
    if require_cinder and missing:
        engine.dispose()
        raise DatabaseUnavailable(
            f"database {shown} is not a Cinder database: missing table(s) {', '.join(missing)}"
            " (run cinder-manage db sync, or check [database] connection)"
        )
    return engine


def private_engine(engine: Engine) -> Engine:
    """An engine of its own (no shared pool) on the same database, for a helper thread.

    An in-memory SQLite database exists only in its engine: that one is shared.
    """
    if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return engine
    return _create_engine(engine.url, poolclass=sa.pool.NullPool)


# Set to "off" (or 0, false, no) to make the hook use only the driver of the URL and the
# portable statements: no mysqlclient in place of PyMySQL, no UPDATE by host after the
# exact-rows proof (docs/decisions.md). For comparisons and for a suspected fast-path bug.
FAST_PATHS_ENV = "CINDER_PROMOTE_FAST_PATHS"
_warned_no_mysqlclient = False


def fast_paths_enabled() -> bool:
    return os.environ.get(FAST_PATHS_ENV, "on").strip().lower() not in ("0", "off", "false", "no")


def fast_engine(engine: Engine) -> Engine | None:
    """An engine for the hook's bulk load and write on the same database through a faster
    database driver, or None to keep `engine`'s.

    MariaDB/MySQL through PyMySQL (`mysql+pymysql://`, Cinder's usual URL): the same URL with
    mysqlclient (MySQLdb, libmariadb's C protocol and row parsing: the load of 100,000 volumes
    in well under half of PyMySQL's time). SQLAlchemy turns the URL's host, port, user,
    password, database, `charset` and `ssl_*` arguments into the same connect arguments for
    both drivers (its PyMySQL dialect is its mysqlclient dialect's), so the server, the
    credentials, TLS and the character set are the operator's. When mysqlclient is not
    installed, or refuses an argument of the URL, PyMySQL is kept and one line says so.
    The caller disposes of the engine.
    """
    global _warned_no_mysqlclient
    url = engine.url
    if url.get_backend_name() != "mysql" or url.get_driver_name() != "pymysql" or not fast_paths_enabled():
        return None
    if importlib.util.find_spec("MySQLdb") is None:
        if not _warned_no_mysqlclient:
            _warned_no_mysqlclient = True
            LOG.warning("mysqlclient (MySQLdb) is not installed: the startup hook reads and writes %s through"
                        " PyMySQL, which parses rows in pure Python (pip install 'cinder-promote[mysql]')",
                        masked(url))
        return None
    fast = _create_engine(url.set(drivername="mysql+mysqldb"), poolclass=sa.pool.NullPool)
    try:
        fast.connect().close()
    except Exception as exc:  # noqa: BLE001 - PyMySQL still works: the fast path is an optimisation
        fast.dispose()
        LOG.warning("mysqlclient could not connect to %s (%s): the startup hook keeps PyMySQL", masked(url),
                    mask_text(_one_line(exc), url.render_as_string(hide_password=False)))
        return None
    return fast


def _create_engine(url: URL, **options) -> Engine:
    engine = sa.create_engine(url, **_engine_options(url), **options)
    watch.watch(engine)
    if url.get_backend_name() == "mysql":
        sa.event.listen(engine, "connect", _causal_reads_on_galera)
    return engine


def _causal_reads_on_galera(dbapi_connection, _record) -> None:
    """On a Galera node, make every read of the session wait for what the cluster committed.

    Otherwise a read through one node can miss a commit made through another a
    moment ago (SERVERS.md), and a compare-and-swap would start from stale rows.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT @@wsrep_on")
        if str(cursor.fetchone()[0]).upper() in ("1", "ON"):
            cursor.execute("SET SESSION wsrep_sync_wait = 1")
    except Exception:  # noqa: BLE001 - a MySQL without wsrep variables: nothing to do
        pass
    finally:
        cursor.close()


# Errors that mean "another transaction got there first": MySQL/Galera deadlock
# (1213) and lock wait timeout (1205), PostgreSQL serialization failure and
# deadlock, SQLite's busy lock.
_MYSQL_RACE_CODES = {1205, 1213}
_PG_RACE_STATES = {"40001", "40P01"}


def is_database_error(exc: BaseException) -> bool:
    """An error of the database or of its connection: SQLAlchemy's, or asyncpg's on the COPY path."""
    return isinstance(exc, DBAPIError) or type(exc).__module__.startswith("asyncpg")


def lost_race(exc: BaseException) -> bool:
    if not is_database_error(exc):
        return False
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_RACE_CODES:
        return True
    if getattr(orig, "pgcode", None) in _PG_RACE_STATES or getattr(orig, "sqlstate", None) in _PG_RACE_STATES:
        return True
    return "database is locked" in str(orig)


# Retries of a transaction that lost a race, shaped like Cinder's writes under
# oslo.db's wrap_db_retry(max_retries=5, retry_on_deadlock=True): five retries,
# doubling intervals with a cap. Ours start at 50 ms rather than 1 s (with jitter):
# the transactions are a few rows, and every member of a cluster waits on them
# at startup (docs/decisions.md).
RACE_ATTEMPTS = 6
_FIRST_DELAY, _MAX_DELAY = 0.05, 1.0


def race_backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 0)."""
    return min(_MAX_DELAY, _FIRST_DELAY * 2 ** attempt) * random.uniform(0.5, 1.0)


def retry_lost_races(work: Callable[[], T], what: str, attempts: int = RACE_ATTEMPTS) -> T:
    """Run `work` (one whole transaction) again while it loses races, at most `attempts` times.

    A lost race is a deadlock, a lock wait timeout or a Galera certification
    failure, raised by any statement or by COMMIT: the transaction was rolled
    back, so running it again from the start is safe. The last failure is raised.
    """
    for attempt in range(attempts):
        try:
            return work()
        except Exception as exc:
            if not lost_race(exc) or attempt == attempts - 1:
                raise
            LOG.info("%s lost a race (%s); retrying", what, _one_line(exc))
            time.sleep(race_backoff(attempt))
    raise AssertionError("unreachable")


def database_message(engine: Engine, exc: BaseException) -> str:
    """The first line of a database error, without the password of `engine`'s URL."""
    return mask_text(_one_line(exc), engine.url.render_as_string(hide_password=False))
