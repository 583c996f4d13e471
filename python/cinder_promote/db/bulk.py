"""Bulk writes of a plan, in one transaction, the fastest way each database allows.

- identical updates: one set-based `UPDATE ... WHERE id IN (...)` per id chunk (PostgreSQL:
  `id = ANY(array)`); on MariaDB/MySQL one UPDATE of the host's rows when they are proved to
  be exactly the named ones (`Writer.update_set_of_owner`);
- distinct updates, column-wise:
  - PostgreSQL: asyncpg binary COPY into a temporary table, then one `UPDATE ... FROM`;
  - MariaDB/MySQL: a temporary table filled by LOAD DATA LOCAL INFILE (multi-row INSERTs
    where the server or client refuses it), then one `UPDATE ... JOIN`;
  - SQLite: one prepared `UPDATE ... WHERE id = ?` run for every row by sqlite3's executemany.
Never one round trip per row. Every statement's row count is checked by the caller.
On PostgreSQL a table the write grew by more than a tenth is analyzed before COMMIT.

`transaction(engine)` yields a `Writer`: for PostgreSQL it drives an asyncpg
connection (through SQLAlchemy's asyncpg dialect) from a private event loop,
so the caller's code stays synchronous and runs the same on every database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .queries import Owner, driver_statement, owned_by, owned_ids
from .schema import groups, volumes

LOG = logging.getLogger(__name__)
TABLES = {"volumes": volumes, "groups": groups}
_temp_names = itertools.count(1)

# asyncpg and PostgreSQL's protocol: at most 32767 bind parameters per statement.
_PG_MAX_PARAMS = 32767
_MYSQL_MAX_PARAMS = 65535
# Databases whose identical updates select rows by owner after the exact-rows proof.
_PROVED_BY_OWNER = {"mysql"}

# Added to the SET list of PostgreSQL's bulk UPDATEs, whose WHERE already asks for
# `deleted = false`: the value cannot change (a row deleted meanwhile fails that WHERE
# when PostgreSQL re-reads it, and is not written), but naming the column tells the
# executor that the keys of the three indexes that hold it, (deleted, host),
# (deleted, project_id) and (service_uuid, deleted), may have changed. PostgreSQL then
# skips the "bottom-up deletion" pass it otherwise runs each time a leaf page of those
# duplicate-heavy indexes fills up: a pass that visits heap pages looking for dead
# versions, and finds none, since the old versions are this very transaction's. On a
# freshly loaded table (no room for HOT updates) that pass was a fifth of the UPDATE's
# time at 100,000 volumes; with it skipped, the UPDATE takes about 15% less (benches/
# test_write.py). HOT updates are unaffected: PostgreSQL compares the values, and this
# one is unchanged.
_PG_KEYS_TOUCHED = "deleted = false"

# For the write transaction only (SET LOCAL, on a connection of its own). With the
# defaults (8 MB, 4 MB) the COPY's temporary table (about 13 MB per 100,000 rows)
# spills out of the session's local buffers and the UPDATE's hash join runs in two
# batches through temporary files; both are allocated as used, not up front. The
# UPDATE of 100,000 volumes took 4-9% less (alternating pairs on asyncpg alone).
_PG_WRITE_SETTINGS = ("temp_buffers = '256MB'", "work_mem = '64MB'")

# PostgreSQL estimates a table's rows from its last ANALYZE (or VACUUM), scaled by the
# table's size now. Rewriting every volume of a table with no room on its pages puts the
# new row versions on new pages: the table doubles, and so does the estimate until
# autovacuum analyzes it, a minute or more later. Cinder's own load of the volumes right
# after the hook was then costed past PostgreSQL's JIT thresholds (jit_inline_above_cost,
# jit_optimize_above_cost): 1.19 s instead of 0.55 s at 100,000 volumes, 1.25 s of CPU
# spent compiling. So before COMMIT the hook analyzes a table its write grew by more than
# a tenth (autovacuum's own analyze scale factor). One column is enough: ANALYZE of any
# column counts the table's rows and pages, and `deleted`, which the write leaves as it
# was, costs least: 0.04 s at 100,000 volumes against 0.16 s for every column, whose
# statistics are left to autovacuum. Inside the transaction ANALYZE counts this
# transaction's new row versions as the live rows.
_PG_GROWN = ("SELECT c.relpages > 0 AND pg_relation_size(c.oid) > 1.1 * c.relpages * current_setting('block_size')::int"
             " FROM pg_class AS c WHERE c.oid = '{table}'::regclass")
_PG_ANALYZE_LOCK_TIMEOUT = "1s"  # a VACUUM or ANALYZE of the table running elsewhere: skip rather than wait


def max_params(engine: Engine) -> int:
    """The bind-parameter limit of one statement on this database (read, not assumed, on SQLite)."""
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        probe = sqlite3.connect(":memory:")
        try:
            return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        finally:
            probe.close()
    return _PG_MAX_PARAMS if backend == "postgresql" else _MYSQL_MAX_PARAMS


def proves_exact_rows(engine: Engine) -> bool:
    """Whether identical updates go by host (or cluster) after the exact-rows proof
    (`Writer.update_set_of_owner`) on this database, rather than always by id chunks.

    MariaDB/MySQL (and Galera): naming 100,000 ids cost about 3x the UPDATE by host
    itself, and InnoDB's locking read also locks the host's range against inserts.
    PostgreSQL: an `id = ANY($1)` array already writes as fast as the UPDATE by host
    (benches/test_write.py), so the proof's read would only add. SQLite: see
    docs/decisions.md.
    """
    return engine.url.get_backend_name() in _PROVED_BY_OWNER


def uses_asyncpg(engine: Engine) -> bool:
    if engine.url.get_backend_name() != "postgresql":
        return False
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return False
    return True


class Executes(Protocol):
    """What the small write helpers (journal, compare-and-swap) need: a SQLAlchemy
    Connection, or the Writer of the hook's write transaction."""

    def execute(self, statement: Any, params: Any = None, /) -> Any: ...


class Writer:
    """One open transaction: `execute` for ordinary statements, plus the bulk paths."""

    def __init__(self, execute: Callable[[Any], Any], backend: str, copy: Callable[..., None] | None = None,
                 native: Callable[..., int] | None = None, local_infile: bool = False) -> None:
        self._execute = execute
        self.backend = backend
        self._local_infile = local_infile  # MySQL: LOAD DATA LOCAL INFILE allowed on this connection
        self._copy = copy
        self._native = native  # asyncpg: a statement with $n parameters, its row count
        self._written: set[str] = set()  # tables with rows written (see analyze_grown)

    def execute(self, statement: Any, params: Any = None) -> Any:
        """Run a statement; the result has `rowcount` (and `inserted_primary_key` for inserts)."""
        return self._execute(statement) if params is None else self._execute((statement, params))

    def update_set(self, table_name: str, values: dict[str, Any], ids: Sequence[str]) -> int:
        self._written.add(table_name)
        if self._native is not None:
            # One array parameter instead of an IN list of thousands: nothing to render, parse or plan per id.
            sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(values))
            return self._native(f"UPDATE {table_name} SET {sets}, {_PG_KEYS_TOUCHED} WHERE id = ANY($1::varchar[])"
                                f" AND deleted = false", list(ids), *values.values())
        if self.backend in ("sqlite", "mysql"):
            # Written out rather than compiled: SQLAlchemy renders an IN list of thousands of
            # parameters one by one, which costs more than the UPDATE.
            mark = "?" if self.backend == "sqlite" else "%s"
            sets = ", ".join(f"{c} = {mark}" for c in values)
            sql = f"UPDATE {table_name} SET {sets} WHERE deleted = 0 AND id IN ({', '.join([mark] * len(ids))})"
            return self._execute(("raw", sql, (*values.values(), *ids))).rowcount
        table = TABLES[table_name]
        statement = sa.update(table).where(table.c.id.in_(list(ids)), table.c.deleted == sa.false()).values(**values)
        return self.execute(statement).rowcount

    def update_set_of_owner(self, table_name: str, values: dict[str, Any], ids: Sequence[str], owner: Owner) -> int | None:
        """Identical values for exactly the rows `ids`, written by one UPDATE that selects the
        owner's live rows (its host or cluster, pools included) instead of naming every id,
        when it is proved that those are exactly `ids` (SPEC section 5, amended): a locking
        read of the owner's live ids in this transaction, under the UPDATE's own locks,
        compared as a set with `ids`.

        The UPDATE runs first, under a savepoint, and the proof follows it, as the UPDATE by
        host alone (the floor) would take its locks: on InnoDB (REPEATABLE READ, MariaDB's
        and MySQL's default) the UPDATE locks every row it writes and the gaps of the
        `(deleted, host)` range, so no volume can be created, moved into or deleted from it
        until COMMIT. The locking read (`LOCK IN SHARE MODE`) then sees the latest rows and
        this transaction's own writes: every row the UPDATE wrote is among the ids it reads,
        so when those ids are the named ids as a set and the UPDATE wrote as many rows as
        were named, it wrote exactly the named rows. Proving first with `FOR UPDATE` created
        each row's lock twice (the read's, then the UPDATE's): 0.28 s of 0.71 s at 100,000
        volumes, where the read after the UPDATE takes about 0.1 s (docs/decisions.md).

        On Galera a row that another node inserts meanwhile cannot be applied into the
        locked range: it aborts this transaction (a lost race, written again) or comes after
        its commit, untouched. Under READ COMMITTED, which locks no gaps, a row inserted after
        the UPDATE shows in the read and fails the proof. Failed: rolled back to the
        savepoint, and None: nothing is written, and the caller names the ids in chunks.

        A driver that names only some of the owner's rows would pay the UPDATE and its
        rollback: the hook does not come here when it named fewer rows than were loaded
        (`hook.write_plan`).
        """
        table = TABLES[table_name]
        named = set(ids)
        if len(named) != len(ids):  # an id twice: the list is not the owner's rows
            return None
        self._execute(("raw", "SAVEPOINT cinder_promote_by_owner", ()))
        update = sa.update(table).where(owned_by(table, owner), table.c.deleted == sa.false()).values(**values)
        written = self.execute(update).rowcount
        # The set of the locked ids equal to the named ids, and as many rows written as named:
        # the rows written (all among the locked ids) are exactly the named rows.
        if written != len(named) or self._execute(("ids", owned_ids(table, owner).with_for_update(read=True))) != named:
            self._execute(("raw", "ROLLBACK TO SAVEPOINT cinder_promote_by_owner", ()))
            return None
        self._execute(("raw", "RELEASE SAVEPOINT cinder_promote_by_owner", ()))
        return int(written)

    def update_rows(self, table_name: str, columns: list[str], chunks: Sequence[tuple[list[str], list[list[Any]]]]) -> int:
        """Distinct values per row: `chunks` of (ids, column-wise values), all with `columns`."""
        self._written.add(table_name)
        if self.backend == "postgresql" and self._copy is not None:
            return self._rows_by_copy(table_name, columns, chunks)
        if self.backend == "mysql":
            return self._rows_by_temp_table(table_name, columns, chunks)
        return self._rows_by_executemany(table_name, columns, chunks)

    def analyze_grown(self) -> None:
        """PostgreSQL, just before COMMIT: ANALYZE each table the write grew by more than a tenth
        (see _PG_GROWN). Under a savepoint: a table being vacuumed or analyzed elsewhere, or any
        other error of it, only skips it, with a warning; the write itself commits."""
        if self.backend != "postgresql":
            return
        for table_name in sorted(self._written):
            if not self._execute(("raw", _PG_GROWN.format(table=table_name), ())).scalar():
                continue
            self._execute(("raw", "SAVEPOINT cinder_promote_analyze", ()))
            try:
                self._execute(("raw", f"SET LOCAL lock_timeout = '{_PG_ANALYZE_LOCK_TIMEOUT}'", ()))
                self._execute(("raw", f"ANALYZE {table_name} (deleted)", ()))
            except sa.exc.DBAPIError as exc:
                self._execute(("raw", "ROLLBACK TO SAVEPOINT cinder_promote_analyze", ()))
                LOG.warning("%s not analyzed after the write, which grew it (PostgreSQL's estimate of its rows stays"
                            " high until autovacuum analyzes it): %s", table_name, exc.orig)
            else:
                self._execute(("raw", "RELEASE SAVEPOINT cinder_promote_analyze", ()))

    # -- per database ---------------------------------------------------------

    def _rows_by_temp_table(self, table_name: str, columns: list[str], chunks: Sequence[tuple[list[str], list[list[Any]]]]) -> int:
        temp = f"cinder_promote_rows_{next(_temp_names)}"
        cols = ", ".join(["id", *columns])
        # CREATE ... SELECT copies the column types and collations, so the join uses volumes' primary key;
        # CREATE/DROP TEMPORARY TABLE do not commit the transaction on MySQL.
        self._execute(("raw", f"CREATE TEMPORARY TABLE {temp} (PRIMARY KEY (id)) SELECT {cols} FROM {table_name} WHERE 1 = 0", ()))
        drop = ("raw", f"DROP TEMPORARY TABLE IF EXISTS {temp}", ())
        try:
            if not (self._local_infile and self._load_data(temp, ["id", *columns], chunks)):
                insert = f"INSERT INTO {temp} ({cols}) VALUES ({', '.join(['%s'] * (len(columns) + 1))})"
                for ids, values in chunks:
                    self._execute(("many", insert, list(zip(ids, *values))))
            sets = ", ".join(f"t.{c} = u.{c}" for c in columns)
            written = self._execute(("raw", f"UPDATE {table_name} t JOIN {temp} u ON t.id = u.id SET {sets} WHERE t.deleted = 0", ())).rowcount
        except BaseException:
            # The connection may be gone (a killed server): the first error is the one to report.
            with contextlib.suppress(Exception):
                self._execute(drop)
            raise
        self._execute(drop)
        return written

    def _load_data(self, temp: str, columns: list[str], chunks: Sequence[tuple[list[str], list[list[Any]]]]) -> bool:
        """Fill `temp` with LOAD DATA LOCAL INFILE from a private temporary file: about 0.6 s less than
        multi-row INSERTs for 100,000 rows of three columns (docs/decisions.md). False, with nothing
        loaded, when the server refuses LOCAL (its `local_infile` is off): the caller INSERTs."""
        with tempfile.TemporaryDirectory(prefix="cinder-promote-") as folder:
            path = os.path.join(folder, "rows.tsv")
            with open(path, "w", encoding="utf-8", newline="") as out:
                for ids, values in chunks:
                    fields = [_tsv_column(ids), *map(_tsv_column, values)]
                    out.write("".join("\t".join(row) + "\n" for row in zip(*fields)))
            quoted = path.replace("\\", "\\\\").replace("'", "\\'")
            try:
                self._execute(("raw", f"LOAD DATA LOCAL INFILE '{quoted}' INTO TABLE {temp} CHARACTER SET utf8mb4"
                                      f" ({', '.join(columns)})", ()))
            except sa.exc.DBAPIError as exc:
                if _mysql_code(exc) not in _LOCAL_INFILE_REFUSED:
                    raise
                LOG.info("the server refuses LOAD DATA LOCAL INFILE (%s): the rows go by INSERT", exc.orig)
                return False
        return True

    def _rows_by_copy(self, table_name: str, columns: list[str], chunks: Sequence[tuple[list[str], list[list[Any]]]]) -> int:
        temp = f"cinder_promote_rows_{next(_temp_names)}"
        column_defs = ", ".join(f"{c} text" for c in columns)
        # No primary key: the planner has refused any id named twice, and an index on the
        # temporary table would only slow the COPY down (the UPDATE hashes it anyway).
        self._execute(("raw", f"CREATE TEMP TABLE {temp} (id varchar(36), {column_defs}) ON COMMIT DROP", ()))
        assert self._copy is not None
        # One COPY for every chunk: COPY has no parameter limit, and the records
        # are made as asyncpg encodes them, so only its buffer is ever in memory.
        records = itertools.chain.from_iterable(zip(ids, *values) for ids, values in chunks)
        self._copy(temp, ["id", *columns], records)
        # No ANALYZE (60 ms at 100,000 rows): a table never analyzed is estimated from its
        # size on disk, which gives a nested loop over volumes' primary key for a few rows
        # and the same hash join as after ANALYZE for many (EXPLAIN at 1 to 100,000 rows).
        sets = ", ".join(f"{c} = u.{c}" for c in columns)
        result = self._execute(("raw", f"UPDATE {table_name} AS t SET {sets}, {_PG_KEYS_TOUCHED} FROM {temp} AS u "
                                       f"WHERE t.id = u.id AND t.deleted = false", ()))
        self._execute(("raw", f"DROP TABLE {temp}", ()))
        return result.rowcount

    def _rows_by_executemany(self, table_name: str, columns: list[str], chunks: Sequence[tuple[list[str], list[list[Any]]]]) -> int:
        # SQLite, and PostgreSQL without asyncpg: one prepared UPDATE by primary key, run for every
        # row by the driver's executemany. On SQLite, 4-14% faster than `UPDATE ... FROM (VALUES ...)`
        # per chunk in the write benches (docs/decisions.md). sqlite3 and psycopg2 both sum the
        # rows written by each step into the row count that the caller checks.
        mark, false = ("?", "0") if self.backend == "sqlite" else ("%s", "false")
        sets = ", ".join(f"{c} = {mark}" for c in columns)
        sql = f"UPDATE {table_name} SET {sets} WHERE id = {mark} AND deleted = {false}"
        rows = [row for ids, values in chunks for row in zip(*values, ids)]
        return self._execute(("many", sql, rows)).rowcount


# LOAD DATA LOCAL refused: local_infile off on the server (1148; MariaDB 4166; MySQL 8 3948) or client (2068).
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 4166}
# What LOAD DATA's default format (FIELDS TERMINATED BY '\t' ESCAPED BY '\\', LINES TERMINATED BY '\n')
# must see escaped in a value.
_TSV_SPECIAL = ("\\", "\t", "\n", "\0")
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\0": "\\0"})


def _tsv_column(values: Sequence[str | None]) -> Sequence[str]:
    """One column of values (strings or None, as the planner allows) as LOAD DATA fields.

    Escaping is per value only in a column that needs it: one scan of the joined column
    finds out (ids and most driver values never do)."""
    present = [v for v in values if v is not None]
    joined = "\1".join(present)
    if any(c in joined for c in _TSV_SPECIAL):
        return ["\\N" if v is None else v.translate(_TSV_ESCAPES) for v in values]
    if len(present) == len(values):
        return present
    return ["\\N" if v is None else v for v in values]


def _mysql_code(exc: sa.exc.DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _sync_executor(conn: Connection) -> Callable[[Any], Any]:
    def run(item: Any) -> Any:
        if isinstance(item, tuple) and item and item[0] == "ids":
            # The first column of a query as a set, read on the driver's own cursor (no SQLAlchemy rows).
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(*driver_statement(conn, item[1].compile(dialect=conn.dialect)))
                return {row[0] for row in cursor.fetchall()}
            finally:
                cursor.close()
        if isinstance(item, tuple) and item and item[0] == "raw":
            return conn.exec_driver_sql(item[1], item[2]) if item[2] else conn.exec_driver_sql(item[1])
        if isinstance(item, tuple) and item and item[0] == "many":
            return conn.exec_driver_sql(item[1], item[2])
        if isinstance(item, tuple):
            return conn.execute(item[0], item[1])
        return conn.execute(item)

    return run


@contextmanager
def transaction(engine: Engine, *, rows: bool = True) -> Iterator[Writer]:
    """One transaction for the whole write phase; committed when the block ends without error.

    `rows=False`: no volume or group is written, only the service and the journal, on the
    engine's own connection: the asyncpg connection costs about 20 ms to open and close, a
    tenth of a restart's hook at 10,000 volumes."""
    backend = engine.url.get_backend_name()
    if rows and uses_asyncpg(engine):
        with _asyncpg_transaction(engine) as writer:
            yield writer
        return
    with engine.begin() as conn:
        # mysqlclient engines of db/connect.py allow LOAD DATA LOCAL; on another one the client refuses it
        # and the rows go by INSERT.
        writer = Writer(_sync_executor(conn), backend, local_infile=backend == "mysql" and engine.dialect.driver == "mysqldb")
        yield writer
        writer.analyze_grown()


@contextmanager
def _asyncpg_transaction(engine: Engine) -> Iterator[Writer]:
    from sqlalchemy.ext.asyncio import create_async_engine  # only on PostgreSQL: 0.1 s of imports

    url = engine.url.set(drivername="postgresql+asyncpg")
    loop = asyncio.new_event_loop()
    async_engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    run = loop.run_until_complete
    try:
        aconn = run(async_engine.connect())
        try:
            raw = run(aconn.get_raw_connection()).driver_connection
            assert raw is not None
            run(aconn.begin())
            # SQLAlchemy's asyncpg adapter sends BEGIN with the first statement it runs; the COPY and
            # the array UPDATEs go to asyncpg directly and must not run before it, in autocommit.
            for setting in _PG_WRITE_SETTINGS:
                run(aconn.exec_driver_sql(f"SET LOCAL {setting}"))
            if not raw.is_in_transaction():  # pragma: no cover - a change in SQLAlchemy's adapter
                raise RuntimeError("the asyncpg connection did not start the write transaction")

            def execute(item: Any) -> Any:
                if isinstance(item, tuple) and item and item[0] == "raw":
                    return run(aconn.exec_driver_sql(item[1], item[2] or None))
                if isinstance(item, tuple):
                    return run(aconn.execute(item[0], item[1]))
                return run(aconn.execute(item))

            def in_transaction() -> None:
                if not raw.is_in_transaction():  # pragma: no cover - never: see above
                    raise RuntimeError("the asyncpg connection is outside the write transaction")

            def copy(table: str, columns: list[str], records: Iterable[tuple[Any, ...]]) -> None:
                in_transaction()
                run(raw.copy_records_to_table(table, records=records, columns=columns))

            def native(sql: str, *args: Any) -> int:
                in_transaction()
                status = run(raw.execute(sql, *args))  # "UPDATE <count>"
                return int(status.rsplit(" ", 1)[-1])

            writer = Writer(execute, "postgresql", copy, native)
            try:
                yield writer
                writer.analyze_grown()
            except BaseException:
                run(aconn.rollback())
                raise
            run(aconn.commit())
        finally:
            run(aconn.close())
    finally:
        run(async_engine.dispose())
        loop.close()
