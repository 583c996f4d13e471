"""The SQL on Cinder's tables: finding services and clusters, counting volumes
and groups, and compare-and-swap writes. Cinder's semantics throughout:
soft delete, host matching with pools, LIKE wildcards matched literally.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import VOLUME_BINARY, ClusterRow, GroupRecord, Record, ServiceRow, VolumeRecord, record_type
from ..native_threads import native_threading
from .schema import clusters, groups, services, volumes

if TYPE_CHECKING:
    from .bulk import Executes

_SERVICE_COLUMNS = [getattr(services.c, f) for f in ServiceRow.__dataclass_fields__]
_CLUSTER_COLUMNS = [getattr(clusters.c, f) for f in ClusterRow.__dataclass_fields__]


def host_matches(column: sa.ColumnElement, value: str, *, pools: bool = True) -> sa.ColumnElement[bool]:
    """Cinder's host matching: `X`, `X#pool`, and `X@backend...` when X has no '@'.

    `startswith(autoescape=True)` escapes '%' and '_' so that they match themselves.
    """
    alternatives = [column == value]
    if pools:
        alternatives.append(column.startswith(value + "#", autoescape=True))
    if "@" not in value:
        alternatives.append(column.startswith(value + "@", autoescape=True))
    return sa.or_(*alternatives)


def _not_deleted(table: sa.Table) -> sa.ColumnElement[bool]:
    # Exactly Cinder's filter, so that the (deleted, host) index serves it.
    return table.c.deleted == sa.false()


def _service(row: sa.Row) -> ServiceRow:
    return ServiceRow(**row._mapping)


def _cluster(row: sa.Row) -> ClusterRow:
    return ClusterRow(**row._mapping)


def volume_services(conn: Connection, host: str | None = None) -> list[ServiceRow]:
    """Live cinder-volume services, all of them or those matching `host`."""
    query = sa.select(*_SERVICE_COLUMNS).where(services.c.binary == VOLUME_BINARY, _not_deleted(services))
    if host is not None:
        query = query.where(host_matches(services.c.host, host, pools=False))
    return [_service(r) for r in conn.execute(query.order_by(services.c.host, services.c.id))]


def cluster_members(conn: Connection, cluster_name: str) -> list[ServiceRow]:
    query = sa.select(*_SERVICE_COLUMNS).where(
        services.c.binary == VOLUME_BINARY, _not_deleted(services), services.c.cluster_name == cluster_name
    )
    return [_service(r) for r in conn.execute(query.order_by(services.c.host, services.c.id))]


def volume_clusters(conn: Connection, name: str | None = None) -> list[ClusterRow]:
    """Live cinder-volume clusters, all of them or those matching `name`."""
    query = sa.select(*_CLUSTER_COLUMNS).where(clusters.c.binary == VOLUME_BINARY, _not_deleted(clusters))
    if name is not None:
        query = query.where(host_matches(clusters.c.name, name, pools=False))
    return [_cluster(r) for r in conn.execute(query.order_by(clusters.c.name, clusters.c.id))]


def replication_counts(conn: Connection, table_name: str) -> list[tuple[str | None, str | None, str | None, int]]:
    """(host, cluster_name, replication_status, count) of the live volumes or groups.

    One grouped scan; the caller folds pools into their service or cluster.
    """
    table = {"volumes": volumes, "groups": groups}[table_name]
    query = (
        sa.select(table.c.host, table.c.cluster_name, table.c.replication_status, sa.func.count())
        .where(_not_deleted(table))
        .group_by(table.c.host, table.c.cluster_name, table.c.replication_status)
    )
    return [tuple(r) for r in conn.execute(query)]


def lost_but_replicating(conn: Connection) -> list[tuple[str | None, str | None, str]]:
    """(host, cluster_name, id) of live volumes in status `error` whose replication_status is `enabled`.

    Cinder's failover leaves a volume it could not bring over in `error`; one that still
    claims to replicate was re-enabled by something that did not look at the array.
    """
    query = (
        sa.select(volumes.c.host, volumes.c.cluster_name, volumes.c.id)
        .where(_not_deleted(volumes), volumes.c.status == "error", volumes.c.replication_status == "enabled")
        .order_by(volumes.c.host, volumes.c.id)
    )
    return [tuple(r) for r in conn.execute(query)]


def _equals(column: sa.Column, value: Any) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def compare_and_swap(
    conn: Executes, table_name: str, row_id: int, expected: Mapping[str, Any], new: Mapping[str, Any]
) -> bool:
    """`UPDATE table SET new WHERE id = row_id AND <every expected value still holds>`.

    True when the row was written. This is Cinder's `conditional_update`:
    safe on Galera, where SELECT ... FOR UPDATE is not.
    """
    table = {"services": services, "clusters": clusters}[table_name]
    conditions = [table.c.id == row_id, _not_deleted(table)]
    conditions += [_equals(table.c[name], value) for name, value in expected.items()]
    result = conn.execute(sa.update(table).where(*conditions).values(**new))
    return result.rowcount == 1


def member_ids(conn: Connection, cluster_name: str) -> list[int]:
    query = sa.select(services.c.id).where(
        services.c.binary == VOLUME_BINARY, _not_deleted(services), services.c.cluster_name == cluster_name
    )
    return sorted(r[0] for r in conn.execute(query))


def _owned_by(table: sa.Table, *, host: str | None, cluster_name: str | None) -> sa.ColumnElement[bool]:
    """Cinder's `_get_my_resources` filter: by cluster_name when clustered, else by host (pools included)."""
    if cluster_name is not None:
        return host_matches(table.c.cluster_name, cluster_name)
    assert host is not None
    return host_matches(table.c.host, host)


class Owner(NamedTuple):
    """Whose volumes and groups the hook works on: a service's host, or a cluster's name."""

    host: str | None
    cluster_name: str | None


def owned_by(table: sa.Table, owner: Owner) -> sa.ColumnElement[bool]:
    return _owned_by(table, host=owner.host, cluster_name=owner.cluster_name)


def owned_ids(table: sa.Table, owner: Owner) -> sa.Select:
    """The ids of the owner's live rows, as the hook loaded them."""
    return sa.select(table.c.id).where(_not_deleted(table), owned_by(table, owner))


# Rows are fetched this many at a time (a server-side cursor where the
# database has one), so that the driver's buffers never hold the whole table.
LOAD_BATCH = 10_000


_cursor_names = itertools.count(1)
# Database drivers whose rows are read straight from their cursor: psycopg2
# gives every column its Python type; sqlite3 gives timestamps as text and
# booleans as integers, PyMySQL and mysqlclient booleans as integers, which
# the records convert when a column is read.
_RAW_DRIVERS = ("psycopg2", "pysqlite", "pymysql", "mysqldb")


def _driver_batches(conn: Connection, query: sa.Select) -> Iterator[Sequence[Any]]:
    """The rows of `query` as the database driver's tuples, at most LOAD_BATCH at a
    time, without building SQLAlchemy rows (a third of the load on 100,000 volumes)."""
    compiled = query.compile(dialect=conn.dialect)
    raw = conn.connection.driver_connection
    assert raw is not None
    if conn.dialect.driver == "psycopg2":
        yield from _fetched_ahead(raw, str(compiled), compiled.params)
        return
    # sqlite3 steps through the result as rows are fetched; PyMySQL and mysqlclient do with their
    # unbuffered cursors (which hold the connection until the last row is read or the cursor closed, below).
    if conn.dialect.driver == "pymysql":
        from pymysql.cursors import SSCursor

        cursor = raw.cursor(SSCursor)
    elif conn.dialect.driver == "mysqldb":
        yield from _mysqldb_batches(raw, *driver_statement(conn, compiled))
        return
    else:
        cursor = raw.cursor()
    cursor.execute(*driver_statement(conn, compiled))
    try:
        while rows := cursor.fetchmany(LOAD_BATCH):
            yield rows
    finally:
        cursor.close()


def _mysqldb_batches(raw: Any, sql: str, params: Any) -> Iterator[Sequence[Any]]:
    """mysqlclient's unbuffered cursor, with DATETIME columns left as the server sent them.

    mysqlclient parses rows in C but each DATETIME through a Python function: six per
    volume, 40% of its load of 100,000 volumes. Without that converter it hands over
    the text (bytes), which the records parse when the column is read (`_mysql_datetime`),
    as they do SQLite's text timestamps. Only this cursor's rows: the converter comes
    back when it closes.
    """
    from MySQLdb.constants import FIELD_TYPE
    from MySQLdb.cursors import SSCursor

    converter = raw.converter
    raw.converter = {k: v for k, v in converter.items() if k != FIELD_TYPE.DATETIME}
    cursor = raw.cursor(SSCursor)
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(LOAD_BATCH):
            yield rows
    finally:
        cursor.close()
        raw.converter = converter


def _mysql_datetime(value: bytes | None) -> datetime | None:
    """A DATETIME as MySQL sends it in text (`2026-01-02 03:04:05[.ffffff]`); None for
    NULL and for what is not a date (MySQL's zero date), as mysqlclient's own converter gives."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.decode("ascii"))
    except ValueError:
        return None


def driver_statement(conn: Connection, compiled: Any) -> tuple[str, Any]:
    """A compiled statement as the database driver's SQL text and parameters:
    positional (sqlite3's qmark, mysqlclient's format) or named (PyMySQL's pyformat)."""
    params = (tuple(compiled.params[name] for name in compiled.positiontup or ()) if compiled.positional
              else compiled.params)
    return str(compiled), params


def _fetched_ahead(raw: Any, sql: str, params: Any) -> Iterator[Sequence[Any]]:
    """psycopg2: a server-side cursor read half a LOAD_BATCH per FETCH, the next
    FETCH running in a thread while this batch becomes Python objects.

    With one FETCH at a time the two cores took turns: the server produced a batch
    (index scan, text output, sending) while the client waited, then the client
    typecast it while the server waited. psycopg2 releases the GIL while it waits
    for a result and while libpq parses it, so the thread's FETCH overlaps the
    typecasting (about 0.4 s instead of 0.6 s for 100,000 volumes). Two cursors take
    turns on the one connection, which psycopg2 allows from two threads; a cursor
    is typecast only once its FETCH has returned. The driver's buffers hold at most
    two half batches: the one being typecast and the one arriving.
    """
    name = f"cinder_promote_load_{next(_cursor_names)}"
    control = raw.cursor()
    control.execute(f"DECLARE {name} NO SCROLL CURSOR WITHOUT HOLD FOR {sql}", params)
    fetch = f"FETCH FORWARD {max(1, LOAD_BATCH // 2)} FROM {name}"
    cursors = (raw.cursor(), raw.cursor())
    turn = 0
    ahead = _InThread(cursors[turn].execute, fetch)
    try:
        while True:
            ahead.result()
            cursor = cursors[turn]
            if cursor.rowcount <= 0:
                break
            turn ^= 1
            ahead = _InThread(cursors[turn].execute, fetch)
            rows = cursor.fetchall()
            yield rows
            del rows
    finally:
        # Never leave a FETCH running on the connection, whatever happened.
        ahead.result(reraise=False)
        from psycopg2.extensions import TRANSACTION_STATUS_INTRANS

        if raw.info.transaction_status == TRANSACTION_STATUS_INTRANS:
            control.execute(f"CLOSE {name}")
        for cursor in (control, *cursors):
            cursor.close()


class _InThread:
    """`call(*args)` in a native thread (one, even under eventlet); `result()` waits for it."""

    def __init__(self, call: Any, *args: Any) -> None:
        self._error: BaseException | None = None
        self._thread = native_threading().Thread(target=self._run, args=(call, args), daemon=True,
                                                  name="cinder-promote-fetch")
        self._thread.start()

    def _run(self, call: Any, args: tuple[Any, ...]) -> None:
        try:
            call(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def result(self, *, reraise: bool = True) -> None:
        self._thread.join()
        if reraise and self._error is not None:
            error, self._error = self._error, None
            raise error


def _load(conn: Connection, table: sa.Table, base: type[Record], host: str | None, cluster_name: str | None,
          first: tuple[str, ...]) -> list[Any]:
    columns = [*(table.c[name] for name in first), *(c for c in table.c if c.name not in first)]
    query = sa.select(*columns).where(_not_deleted(table), _owned_by(table, host=host, cluster_name=cluster_name))
    query = query.order_by(table.c.id)
    names = tuple(c.name for c in columns)
    dialect = conn.dialect
    if dialect.driver in _RAW_DRIVERS:
        stored = {c.name: p for c in columns if (p := c.type.dialect_impl(dialect).result_processor(dialect, None))}
        if dialect.driver == "mysqldb":  # DATETIME columns as text: see _mysqldb_batches
            stored.update({c.name: _mysql_datetime for c in columns if isinstance(c.type, sa.DateTime)})
        cls = record_type(base, names, stored)
        batches = _driver_batches(conn, query)
    else:  # SQLAlchemy's rows, streamed (a server-side cursor where the driver has one)
        cls = record_type(base, names)
        batches = conn.execution_options(stream_results=True, yield_per=LOAD_BATCH).execute(query).partitions()
    records: list[Any] = []
    with _collector_paused():
        for rows in batches:
            records.extend(map(tuple.__new__, itertools.repeat(cls), rows))
    return records


# Set by `records_spared_by_collector` for the loads made inside it.
_SPARE_LOADED: ContextVar[list[bool] | None] = ContextVar("cinder_promote_spare_loaded", default=None)


# A collector threshold never reached (the largest C int).
_NEVER = 2**31 - 1


@contextmanager
def records_spared_by_collector() -> Iterator[None]:
    """Around the hook's work: what the loads inside make is kept out of Python's
    cyclic garbage collector until the block ends.

    Records are tracked containers, so the collector would run again and again
    while a load piles them up, each full pass walking every record made so far,
    and again while the driver builds its answer (one new container per volume):
    about 0.5 s of the hook's 3.5 s at 100,000 volumes. So every load runs with
    the collector paused (its records hold only strings, numbers, booleans,
    timestamps and None: they can make no reference cycle) and, inside this block,
    ends with `gc.freeze()`, which sets everything that exists aside at no cost:
    the collector keeps working on what the driver makes, without walking the
    records again. `gc.unfreeze()` when the block ends gives it all back. Left
    alone when the process froze objects of its own or runs without the collector.
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    frozen: list[bool] = []
    token = _SPARE_LOADED.set(frozen)
    thresholds = gc.get_threshold()
    # Only the youngest generation is collected while the hook runs (cycles a driver makes
    # and drops are still freed). A full collection now would measure the oldest generation
    # without the frozen objects and keep that size as the mark for the next one; a
    # collection of the middle one would move the hook's short-lived objects (the driver's
    # answer) into the oldest and count them as its growth. Either way Cinder's volume
    # manager, loading every volume right after the hook, ran one more full collection of
    # everything than without the hook: +0.25 s of a 2.1 s start at 10,000 volumes.
    gc.set_threshold(thresholds[0], _NEVER, _NEVER)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        _SPARE_LOADED.reset(token)
        if frozen:
            gc.unfreeze()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a load makes its records (see above):
    0.95 s against 0.65 s for 100,000 volumes. What another thread makes meanwhile
    is found when the collector runs again."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        spare = _SPARE_LOADED.get()
        if spare is not None:
            # Before the collector comes back: re-enabled first, its next pass would
            # walk every new record once more (70 ms at 100,000 volumes).
            gc.freeze()
            spare.append(True)
        gc.enable()


def load_volumes(conn: Connection, *, host: str | None, cluster_name: str | None,
                 first: tuple[str, ...] = ()) -> list[VolumeRecord]:
    """The backend's live volumes, by id, as records (see `models.Record`).

    The columns named in `first` come first in each record's tuple, the others in the
    table's order: the hook hands its records to the planner as the rows' current values,
    which the planner reads from the start of each tuple."""
    return _load(conn, volumes, VolumeRecord, host, cluster_name, first)


def load_groups(conn: Connection, *, host: str | None, cluster_name: str | None,
                first: tuple[str, ...] = ()) -> list[GroupRecord]:
    return _load(conn, groups, GroupRecord, host, cluster_name, first)


def describe_ids(conn: Connection, table_name: str, ids: list[str]) -> dict[str, str]:
    """Why ids are not ours: deleted, on which host, or absent. For error messages only."""
    table = {"volumes": volumes, "groups": groups}[table_name]
    found = {}
    for row in conn.execute(sa.select(table.c.id, table.c.host, table.c.deleted).where(table.c.id.in_(ids))):
        found[row.id] = "it is deleted" if row.deleted else f"it belongs to host {row.host!r}"
    return {i: found.get(i, "no such id") for i in ids}


def set_replication(
    conn: Executes, table_name: str, row_id: int, *, expected_status: str | None, values: Mapping[str, Any]
) -> bool:
    """Fence and release: a compare-and-swap on replication_status alone."""
    return compare_and_swap(conn, table_name, row_id, {"replication_status": expected_status}, values)


def update_members(conn: Executes, cluster_name: str, values: Mapping[str, Any]) -> int:
    query = (
        sa.update(services)
        .where(services.c.binary == VOLUME_BINARY, _not_deleted(services), services.c.cluster_name == cluster_name)
        .values(**values)
    )
    return conn.execute(query).rowcount


def service_by_id(conn: Connection, row_id: int) -> ServiceRow | None:
    row = conn.execute(sa.select(*_SERVICE_COLUMNS).where(services.c.id == row_id, _not_deleted(services))).first()
    return None if row is None else _service(row)


def cluster_by_id(conn: Connection, row_id: int) -> ClusterRow | None:
    row = conn.execute(sa.select(*_CLUSTER_COLUMNS).where(clusters.c.id == row_id, _not_deleted(clusters))).first()
    return None if row is None else _cluster(row)
