"""The SQL of our one table, the journal (SPEC section 6).

It is created on first use, outside any transaction (DDL commits implicitly
on MySQL). Two processes creating it at once is fine: the loser sees it there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .schema import inserted_id, journal

if TYPE_CHECKING:
    from .bulk import Executes

RUNNING, DONE, FAILED, TAKEN_OVER = "running", "done", "failed", "taken-over"
# A startup hook whose answer changed nothing: only the newest such entry of a
# target is kept, so a hundred plain restarts leave one line, not a hundred.
UNCHANGED = "unchanged"


@dataclass(frozen=True)
class JournalEntry:
    id: int
    created_at: datetime
    updated_at: datetime
    operation: str
    target_kind: str
    target: str
    state: str
    holder: str | None
    lease_expires_at: datetime | None
    status_before: str | None
    before: Any
    after: Any
    counts: Any
    error: str | None
    undo_of: int | None

    def lease_is_live(self, now: datetime) -> bool:
        return self.state == RUNNING and self.lease_expires_at is not None and self.lease_expires_at > now


def exists(conn: Connection) -> bool:
    return sa.inspect(conn).has_table(journal.name)


def ensure_table(engine: Engine) -> None:
    with engine.connect() as conn:
        if exists(conn):
            return
    try:
        with engine.begin() as conn:
            journal.create(conn, checkfirst=True)
    except DBAPIError:
        with engine.connect() as conn:
            if not exists(conn):
                raise


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _entry(row: sa.Row) -> JournalEntry:
    m = row._mapping
    return JournalEntry(
        id=m["id"], created_at=m["created_at"], updated_at=m["updated_at"], operation=m["operation"],
        target_kind=m["target_kind"], target=m["target"], state=m["state"], holder=m["holder"],
        lease_expires_at=m["lease_expires_at"], status_before=m["status_before"],
        before=_load(m["before_json"]), after=_load(m["after_json"]), counts=_load(m["counts_json"]),
        error=m["error"], undo_of=m["undo_of"],
    )


def insert(
    conn: Connection, *, now: datetime, operation: str, target_kind: str, target: str, state: str,
    holder: str | None = None, lease_expires_at: datetime | None = None, status_before: str | None = None,
    before: Any = None, after: Any = None, counts: Any = None, error: str | None = None,
    undo_of: int | None = None,
) -> int:
    result = conn.execute(
        journal.insert().values(
            created_at=now, updated_at=now, operation=operation, target_kind=target_kind, target=target,
            state=state, holder=holder, lease_expires_at=lease_expires_at, status_before=status_before,
            before_json=_dump(before), after_json=_dump(after), counts_json=_dump(counts), error=error,
            undo_of=undo_of,
        )
    )
    return inserted_id(result)


def running_entries(conn: Connection, target_kind: str, target: str) -> list[JournalEntry]:
    """Entries still marked running on a target, newest first; none when there is no journal yet."""
    if not exists(conn):
        return []
    query = (
        sa.select(journal)
        .where(journal.c.target_kind == target_kind, journal.c.target == target, journal.c.state == RUNNING)
        .order_by(journal.c.id.desc())
    )
    return [_entry(r) for r in conn.execute(query)]


def mark_taken_over(conn: Connection, entry_ids: list[int], now: datetime, reason: str) -> None:
    if entry_ids:
        conn.execute(
            journal.update()
            .where(journal.c.id.in_(entry_ids), journal.c.state == RUNNING)
            .values(state=TAKEN_OVER, updated_at=now, error=reason)
        )


def entries(conn: Connection, *, limit: int | None = None) -> list[JournalEntry]:
    if not exists(conn):
        return []
    query = sa.select(journal).order_by(journal.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_entry(r) for r in conn.execute(query)]


def _held_by(entry_id: int, holder: str) -> list[sa.ColumnElement[bool]]:
    return [journal.c.id == entry_id, journal.c.state == RUNNING, journal.c.holder == holder]


def take_over(conn: Connection, entry: JournalEntry, now: datetime, by: str, *, expired: bool = True) -> bool:
    """Mark a stale running entry taken over, only if it is still exactly as read.

    `expired=False` is for a holder known to be dead (its process is gone from this host).
    """
    conditions = [journal.c.id == entry.id, journal.c.state == RUNNING,
                  journal.c.lease_expires_at == entry.lease_expires_at]
    if expired:
        conditions.append(journal.c.lease_expires_at <= now)
    why = "lease expired" if expired else f"holder {entry.holder} is dead"
    result = conn.execute(
        journal.update().where(*conditions).values(state=TAKEN_OVER, updated_at=now, error=f"{why}; taken over by {by}")
    )
    return result.rowcount == 1


def renew(conn: Connection, entry_id: int, holder: str, lease_expires_at: datetime, now: datetime) -> bool:
    result = conn.execute(
        journal.update().where(*_held_by(entry_id, holder)).values(lease_expires_at=lease_expires_at, updated_at=now)
    )
    return result.rowcount == 1


def finish(
    conn: Executes, entry_id: int, holder: str, *, state: str, now: datetime,
    after: Any = None, counts: Any = None, error: str | None = None,
) -> bool:
    """End a running entry we hold; False when it is no longer ours (taken over)."""
    result = conn.execute(
        journal.update()
        .where(*_held_by(entry_id, holder))
        .values(state=state, updated_at=now, lease_expires_at=None, after_json=_dump(after),
                counts_json=_dump(counts), error=error)
    )
    return result.rowcount == 1


def prune_unchanged(conn: Executes, *, operation: str, target_kind: str, target: str, keep_id: int) -> int:
    """Delete the target's older `unchanged` entries of `operation`; the number deleted."""
    result = conn.execute(
        journal.delete().where(journal.c.operation == operation, journal.c.target_kind == target_kind,
                               journal.c.target == target, journal.c.state == UNCHANGED, journal.c.id != keep_id)
    )
    return result.rowcount


def get(conn: Connection, entry_id: int) -> JournalEntry | None:
    if not exists(conn):
        return None
    row = conn.execute(sa.select(journal).where(journal.c.id == entry_id)).first()
    return None if row is None else _entry(row)


def undone_by(conn: Connection, entry_id: int) -> JournalEntry | None:
    """The successful undo of an entry, if any."""
    row = conn.execute(
        sa.select(journal).where(journal.c.undo_of == entry_id, journal.c.state == DONE).order_by(journal.c.id)
    ).first()
    return None if row is None else _entry(row)
