"""Statements in flight: say so when the database makes us wait, and log them under `--debug`.

A statement or COMMIT that has not returned after `NOTICE_AFTER_S` seconds is
announced (a lock held by another transaction, most often), with how long the
database will wait, and again every `REPEAT_S` seconds: never 30 silent
seconds. One watcher thread per process checks the statements in flight; each
statement pays two dict operations. The notice goes to `set_notice`'s callback
(the command line prints it on stderr) or, by default, to the log (inside Cinder).

With this module's logger at DEBUG (`--debug`), every connection and every
statement is logged with its duration and its bind values, secrets masked.
"""

from __future__ import annotations

import logging
import re
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
# Bind values never logged: provider_auth holds CHAP secrets, the rest by name.
_SECRET = re.compile(r"auth|password|secret|token", re.I)
_SHOWN_CHARS = 400

_notice: Callable[[str], None] = LOG.warning
_in_flight: dict[int, tuple[float, str, list[float]]] = {}  # id(DBAPI connection) -> (start, limit, [last notice])
_watcher: Any = None
_threading = native_threading()
_lock = _threading.Lock()


def set_notice(callback: Callable[[str], None]) -> None:
    global _notice
    _notice = callback


def watch(engine: Engine) -> None:
    """Announce this engine's long waits, and log its statements at DEBUG."""
    limit = _lock_limit(engine)
    shown = engine.url.render_as_string(hide_password=True)
    sa.event.listen(engine, "connect", lambda _dbapi, _record: LOG.debug("connected to %s", shown))
    sa.event.listen(engine, "before_cursor_execute", lambda conn, *a: _start(conn, limit))
    sa.event.listen(engine, "after_cursor_execute", _after)
    sa.event.listen(engine, "handle_error", _failed)
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


def _stop(conn: Any) -> float | None:
    key = _key(conn)
    started = _in_flight.pop(key, None) if key is not None else None
    return None if started is None else time.monotonic() - started[0]


def _failed(context: Any) -> None:
    # Returns None: a value returned from handle_error would replace the exception.
    _stop(context.connection)


def _after(conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    elapsed = _stop(conn)
    if LOG.isEnabledFor(logging.DEBUG):
        LOG.debug("%.4f s  %s  %s", elapsed or 0.0, _short(" ".join(statement.split())),
                  _binds(parameters, context, executemany))


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + f"... ({len(text)} chars)"


def _binds(parameters: Any, context: Any, executemany: bool) -> str:
    if executemany:
        return f"[{len(parameters)} parameter sets]"
    if isinstance(parameters, dict):
        named = parameters
    else:
        names = getattr(getattr(context, "compiled", None), "positiontup", None) or []
        values = list(parameters or ())
        named = dict(zip(names, values)) if len(names) == len(values) else {str(i): v for i, v in enumerate(values)}
    return _short(repr({k: "***" if _SECRET.search(str(k)) else v for k, v in named.items()}))


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
