"""The floor methods: the fastest known way of each database to write the
same updates, written straight on the database driver (SERVERS.md, "Bulk-update
floors"), without cinder-promote. Each `prepare_*` connects (not timed) and
returns the function to time, which writes every row in one transaction and
returns the number of rows written.

Distinct values per row (`rows`: id, then one value per column):
- SQLite: `UPDATE ... FROM (VALUES ...)` in chunks of the bind limit; and executemany.
- PostgreSQL: asyncpg binary COPY into a temporary table, then one `UPDATE ... FROM`
  ("copy"); the same with `deleted = false` added to the SET list of an UPDATE whose
  WHERE already asks for it, which spares PostgreSQL the bottom-up deletion passes
  in the indexes holding `deleted` (see `_PG_KEYS_TOUCHED` in db/bulk.py), and a
  temporary table without primary key nor ANALYZE ("copy-keys"); and
  `UPDATE ... FROM unnest($1::text[], ...)`.
- MariaDB: a temporary table filled by multi-row INSERTs (PyMySQL's executemany
  batches them; "temp-table"), the same through mysqlclient ("temp-table-mysqlclient"),
  or by LOAD DATA LOCAL INFILE through mysqlclient ("load-data"), then one `UPDATE ... JOIN`.
The same value for every row: one set-based UPDATE by host ("set-based"), and
UPDATE ... WHERE id IN the named ids ("by-ids": chunks of the bind limit; on
PostgreSQL one `id = ANY($1)` array), which is what the hook must do: it
writes exactly the rows the driver named (SPEC section 5), not a host; on
PostgreSQL also "by-ids-keys", the same with `deleted = false` in the SET list.
On MariaDB two other ways of naming the ids in one set-based UPDATE: a MEMORY
temporary table of the ids joined to volumes ("by-ids-temp"), and the ids as
one JSON array joined through `JSON_TABLE` ("by-ids-json").

The read floors (`prepare_read`, below) are the hook's load on the database driver alone.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

Rows = list[tuple[Any, ...]]
Runner = Callable[[], int]

HOST_WHERE = "deleted = {false} AND (host = '{host}' OR host LIKE '{host}#%')"


def without_collector(run: Runner) -> Runner:
    """A floor is the database and its driver alone: Python's cyclic collector, which the
    rows a floor makes would set off over the whole of the bench's large process, is off
    while it runs (the hook pauses it for its loads too)."""
    def floor() -> int:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return run()
        finally:
            if enabled:
                gc.enable()

    return floor


def _sqlite_path(url: str) -> str:
    return sa.engine.make_url(url).database or ""


def prepare_sqlite(url: str, method: str, columns: list[str], rows: Rows, host: str, same: dict[str, str] | None = None) -> Runner:
    conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def run() -> int:
        written = 0
        try:
            conn.execute("BEGIN")
            if same is not None and method == "by-ids":
                sets = ", ".join(f"{c} = ?" for c in same)
                size = limit - len(same)
                for start in range(0, len(rows), size):
                    ids = [r[0] for r in rows[start:start + size]]
                    written += conn.execute(f"UPDATE volumes SET {sets} WHERE deleted = 0 AND id IN"
                                            f" ({', '.join('?' * len(ids))})", (*same.values(), *ids)).rowcount
            elif same is not None:
                sets = ", ".join(f"{c} = ?" for c in same)
                written = conn.execute(f"UPDATE volumes SET {sets} WHERE " + HOST_WHERE.format(false=0, host=host),
                                       tuple(same.values())).rowcount
            elif method == "values":
                size = limit // (len(columns) + 1)
                sets = ", ".join(f"{c} = v.column{i + 2}" for i, c in enumerate(columns))
                one = "(" + ", ".join("?" * (len(columns) + 1)) + ")"
                for start in range(0, len(rows), size):
                    chunk = rows[start:start + size]
                    written += conn.execute(
                        f"UPDATE volumes SET {sets} FROM (VALUES {', '.join([one] * len(chunk))}) AS v"
                        f" WHERE volumes.id = v.column1 AND volumes.deleted = 0",
                        tuple(itertools.chain.from_iterable(chunk))).rowcount
            else:  # executemany
                sets = ", ".join(f"{c} = ?" for c in columns)
                conn.executemany(f"UPDATE volumes SET {sets} WHERE id = ? AND deleted = 0",
                                 [(*r[1:], r[0]) for r in rows])
                written = len(rows)
            conn.execute("COMMIT")
        finally:
            conn.close()
        return written

    return without_collector(run)


def prepare_postgresql(url: str, method: str, columns: list[str], rows: Rows, host: str, same: dict[str, str] | None = None) -> Runner:
    import asyncpg

    u = sa.engine.make_url(url)
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                                                   database=u.database))

    async def work() -> int:
        async with conn.transaction():
            if same is not None and method in ("by-ids", "by-ids-keys"):
                sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(same))
                sets += ", deleted = false" if method == "by-ids-keys" else ""
                status = await conn.execute(f"UPDATE volumes SET {sets} WHERE id = ANY($1::varchar[]) AND deleted = false",
                                            [r[0] for r in rows], *same.values())
            elif same is not None:
                sets = ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(same))
                status = await conn.execute(f"UPDATE volumes SET {sets} WHERE " + HOST_WHERE.format(false="false", host=host),
                                            *same.values())
            elif method == "copy":
                await conn.execute(f"CREATE TEMP TABLE floor_rows (id varchar(36) PRIMARY KEY, "
                                   f"{', '.join(f'{c} text' for c in columns)}) ON COMMIT DROP")
                await conn.copy_records_to_table("floor_rows", records=rows, columns=["id", *columns])
                await conn.execute("ANALYZE floor_rows")
                sets = ", ".join(f"{c} = u.{c}" for c in columns)
                status = await conn.execute(f"UPDATE volumes AS t SET {sets} FROM floor_rows AS u"
                                            f" WHERE t.id = u.id AND t.deleted = false")
            elif method == "copy-keys":
                await conn.execute(f"CREATE TEMP TABLE floor_rows (id varchar(36), "
                                   f"{', '.join(f'{c} text' for c in columns)}) ON COMMIT DROP")
                await conn.copy_records_to_table("floor_rows", records=rows, columns=["id", *columns])
                sets = ", ".join(f"{c} = u.{c}" for c in columns)
                status = await conn.execute(f"UPDATE volumes AS t SET {sets}, deleted = false FROM floor_rows AS u"
                                            f" WHERE t.id = u.id AND t.deleted = false")
            else:  # unnest
                arrays = [list(col) for col in zip(*rows)]
                names = ", ".join(["id", *columns])
                unnest = ", ".join(f"${i + 1}::text[]" for i in range(len(arrays)))
                sets = ", ".join(f"{c} = u.{c}" for c in columns)
                status = await conn.execute(f"UPDATE volumes AS t SET {sets} FROM unnest({unnest}) AS u({names})"
                                            f" WHERE t.id = u.id AND t.deleted = false", *arrays)
        return int(status.split()[-1])

    def run() -> int:
        try:
            return loop.run_until_complete(work())
        finally:
            loop.run_until_complete(conn.close())
            loop.close()

    return without_collector(run)


def prepare_mysql(url: str, method: str, columns: list[str], rows: Rows, host: str, same: dict[str, str] | None = None) -> Runner:
    u = sa.engine.make_url(url)
    kw = dict(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", database=u.database,
              charset="utf8mb4", autocommit=False)
    if method in ("temp-table-mysqlclient", "load-data"):
        import MySQLdb

        conn: Any = MySQLdb.connect(local_infile=1, **kw)
    else:
        import pymysql

        conn = pymysql.connect(**kw)

    def run() -> int:
        try:
            with conn.cursor() as cur:
                if same is not None and method == "by-ids":
                    sets = ", ".join(f"{c} = %s" for c in same)
                    size, written = 65535 - len(same), 0
                    for start in range(0, len(rows), size):
                        ids = [r[0] for r in rows[start:start + size]]
                        written += cur.execute(f"UPDATE volumes SET {sets} WHERE deleted = 0 AND id IN"
                                               f" ({', '.join(['%s'] * len(ids))})", (*same.values(), *ids))
                elif same is not None and method == "by-ids-temp":
                    cur.execute("CREATE TEMPORARY TABLE floor_ids (PRIMARY KEY (id)) ENGINE=MEMORY"
                                " SELECT id FROM volumes WHERE 1 = 0")
                    cur.executemany("INSERT INTO floor_ids (id) VALUES (%s)", [r[:1] for r in rows])
                    sets = ", ".join(f"t.{c} = %s" for c in same)
                    written = cur.execute(f"UPDATE volumes t JOIN floor_ids k ON t.id = k.id SET {sets}"
                                          " WHERE t.deleted = 0", tuple(same.values()))
                    cur.execute("DROP TEMPORARY TABLE floor_ids")
                elif same is not None and method == "by-ids-json":
                    # The column's character set is the key's, or the join could not use it.
                    sets = ", ".join(f"t.{c} = %s" for c in same)
                    written = cur.execute(
                        "UPDATE JSON_TABLE(%s, '$[*]' COLUMNS (id VARCHAR(36) CHARACTER SET utf8mb3 PATH '$')) AS j"
                        f" JOIN volumes t ON t.id = j.id SET {sets} WHERE t.deleted = 0",
                        (json.dumps([r[0] for r in rows]), *same.values()))
                elif same is not None:
                    sets = ", ".join(f"{c} = %s" for c in same)
                    where = HOST_WHERE.format(false=0, host=host).replace("%", "%%")
                    written = cur.execute(f"UPDATE volumes SET {sets} WHERE {where}", tuple(same.values()))
                else:  # temp-table (PyMySQL), temp-table-mysqlclient, load-data (mysqlclient)
                    cols = ", ".join(["id", *columns])
                    cur.execute(f"CREATE TEMPORARY TABLE floor_rows (PRIMARY KEY (id)) SELECT {cols} FROM volumes WHERE 1 = 0")
                    if method == "load-data":
                        # The bench's values hold no tab, newline or backslash: written as they are.
                        with tempfile.TemporaryDirectory() as folder:
                            path = os.path.join(folder, "rows.tsv")
                            with open(path, "w", encoding="utf-8") as out:
                                out.write("".join("\t".join(r) + "\n" for r in rows))
                            cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE floor_rows CHARACTER SET utf8mb4"
                                        f" ({cols})")
                    else:
                        cur.executemany(f"INSERT INTO floor_rows ({cols}) VALUES ({', '.join(['%s'] * (len(columns) + 1))})",
                                        rows)
                    sets = ", ".join(f"t.{c} = u.{c}" for c in columns)
                    written = cur.execute(f"UPDATE volumes t JOIN floor_rows u ON t.id = u.id SET {sets} WHERE t.deleted = 0")
                    cur.execute("DROP TEMPORARY TABLE floor_rows")
            conn.commit()
            return int(written)
        finally:
            conn.close()

    return without_collector(run)


# -- read floors ----------------------------------------------------------------------------------
# The hook's load, on the database driver alone: every column of the host's live volumes, pools
# included, by id, fetched into the driver's own row tuples (no records, no SQLAlchemy).
# - SQLite: sqlite3 (timestamps stay text, as the hook's records keep them).
# - PostgreSQL: psycopg2 (text protocol, every column typecast), and asyncpg (binary protocol).
# - MariaDB: PyMySQL; mysqlclient; mysqlclient without its DATETIME converter
#   ("mysqlclient-raw-datetime": the text kept, as the hook's load reads it).

READ_SQL = "SELECT * FROM volumes WHERE {where} ORDER BY id"


def prepare_read(dialect: str, url: str, method: str, host: str) -> Runner:
    u = sa.engine.make_url(url)
    if dialect == "sqlite":
        conn: Any = sqlite3.connect(_sqlite_path(url))
        sql = READ_SQL.format(where=HOST_WHERE.format(false=0, host=host))
    elif method == "asyncpg":
        import asyncpg

        loop = asyncio.new_event_loop()
        aconn = loop.run_until_complete(asyncpg.connect(host=u.host, port=u.port, user=u.username,
                                                        password=u.password, database=u.database))
        sql = READ_SQL.format(where=HOST_WHERE.format(false="false", host=host))

        def run_asyncpg() -> int:
            try:
                return len(loop.run_until_complete(aconn.fetch(sql)))
            finally:
                loop.run_until_complete(aconn.close())
                loop.close()

        return without_collector(run_asyncpg)
    elif dialect == "postgresql":
        import psycopg2

        conn = psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database)
        sql = READ_SQL.format(where=HOST_WHERE.format(false="false", host=host))
    else:
        kw = dict(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", database=u.database,
                  charset="utf8mb4")
        sql = READ_SQL.format(where=HOST_WHERE.format(false=0, host=host))
        if method == "pymysql":
            import pymysql

            conn = pymysql.connect(**kw)
            sql = sql.replace("%", "%%")
        else:
            import MySQLdb
            from MySQLdb.constants import FIELD_TYPE
            from MySQLdb.converters import conversions

            conv = dict(conversions)
            if method == "mysqlclient-raw-datetime":
                conv.pop(FIELD_TYPE.DATETIME)
            conn = MySQLdb.connect(conv=conv, **kw)
            sql = sql.replace("%", "%%")

    def run() -> int:
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            return len(cursor.fetchall())
        finally:
            conn.close()

    return without_collector(run)


READ_METHODS = {"sqlite": ["sqlite3"], "postgresql": ["psycopg2", "asyncpg"],
                "mysql": ["pymysql", "mysqlclient", "mysqlclient-raw-datetime"]}

# The fastest read and distinct-values write of each database in the read and write benches
# (docs/benchmarks.md): the hook bench measures these two beside each of its rounds.
BEST_READ = {"sqlite": "sqlite3", "postgresql": "psycopg2", "mysql": "mysqlclient-raw-datetime"}
BEST_WRITE = {"sqlite": "executemany", "postgresql": "copy-keys", "mysql": "load-data"}

PREPARE = {"sqlite": prepare_sqlite, "postgresql": prepare_postgresql, "mysql": prepare_mysql}
METHODS = {"sqlite": ["values", "executemany"], "postgresql": ["copy", "copy-keys", "unnest"],
           "mysql": ["temp-table", "temp-table-mysqlclient", "load-data"]}
SAME_METHODS = ["set-based", "by-ids"]
SAME_METHODS_OF = {"postgresql": [*SAME_METHODS, "by-ids-keys"], "mysql": [*SAME_METHODS, "by-ids-temp", "by-ids-json"]}
