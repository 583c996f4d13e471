"""Saying so when the database makes us wait (a lock held by another transaction).

A statement or COMMIT that has not returned after `NOTICE_AFTER_S` seconds is
announced, with how long the database will wait for a lock, and again every
`REPEAT_S` seconds: never 30 silent seconds. One watcher thread per process
checks the statements in flight; the statements themselves pay two dict
operations each. The notice goes to `set_notice`'s callback (the command line
prints it on stderr) or, by default, to the log (inside Cinder).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..native_threads import native_threading

LOG = logging.getLogger(__name__)
NOTICE_AFTER_S = 1.5
REPEAT_S = 10.0
SQLITE_BUSY_TIMEOUT_S = 30

_notice: Callable[[str], None] = LOG.warning
_in_flight: dict[int, tuple[float, str, list[float]]] = {}  # id(dbapi connection) -> (start, what it waits on, last notice)
_watcher: Any = None
_threading = native_threading()
_lock = _threading.Lock()


def set_notice(callback: Callable[[str], None]) -> None:
    global _notice
    _notice = callback


def watch(engine: Engine) -> None:
    """Announce this engine's long waits."""
    limit = _lock_limit(engine)
    sa.event.listen(engine, "before_cursor_execute", lambda conn, *a: _start(conn, limit))
    sa.event.listen(engine, "after_cursor_execute", lambda conn, *a: _stop(conn))
    sa.event.listen(engine, "handle_error", lambda context: _stop(context.connection))
    # COMMIT waits too (SQLite takes its write lock there at the latest); it ends when the
    # connection goes back to the pool or runs its next statement.
    sa.event.listen(engine, "commit", lambda conn: _start(conn, limit))
    sa.event.listen(engine, "checkin", lambda dbapi_connection, _record: _in_flight.pop(id(dbapi_connection), None))


def _lock_limit(engine: Engine) -> str:
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        return f"SQLite waits up to {SQLITE_BUSY_TIMEOUT_S} s for another writer's lock"
    if backend == "mysql":
        return "MariaDB/MySQL waits up to innodb_lock_wait_timeout (50 s by default) for a row lock"
    if backend == "postgresql":
        return "PostgreSQL waits until the lock is released (lock_timeout is 0 by default)"
    return "the database decides how long"


def _key(conn: Any) -> int | None:
    try:
        return id(conn.connection.dbapi_connection) if conn is not None else None
    except Exception:  # noqa: BLE001 - a closed or invalidated connection: nothing to watch
        return None


def _start(conn: Any, limit: str) -> None:
    key = _key(conn)
    if key is None:
        return
    _in_flight[key] = (time.monotonic(), limit, [0.0])
    _ensure_watcher()


def _stop(conn: Any) -> None:
    key = _key(conn)
    if key is not None:
        _in_flight.pop(key, None)


def _ensure_watcher() -> None:
    global _watcher
    if _watcher is not None:
        return
    with _lock:
        if _watcher is None:
            _watcher = _threading.Thread(target=_watch_loop, name="cinder-promote-waits", daemon=True)
            _watcher.start()


def _watch_loop() -> None:
    while True:
        time.sleep(0.25)
        now = time.monotonic()
        for start, limit, last in list(_in_flight.values()):
            waited = now - start
            if waited >= NOTICE_AFTER_S and now - last[0] >= REPEAT_S:
                last[0] = now
                try:
                    _notice(f"waiting for the database for {waited:.0f} s: another transaction may hold a lock on"
                            f" these rows ({limit}); Ctrl-C gives up, rolling back as soon as the database answers")
                except Exception:  # noqa: BLE001 - a notice must never break the watcher
                    pass
