"""`undo JOURNAL_ID`: restore what a reset (or an undo) changed.

The same compare-and-swap as the reset: each row must still hold exactly what
the journal says was written (and a service must not have reported since it
was read), or nothing is written. The undo is journaled itself, so it can be
undone in turn.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from .db import journal, queries
from .db.connect import lost_race, retry_lost_races
from .errors import ConcurrentChange, Refused, TargetNotFound
from .models import ClusterRow, ServiceRow, utcnow
from .reset import OPERATION as RESET, ResetResult, RowChange, holder_name
from .target import Target, running_services

OPERATION = "undo"
UNDOABLE = (RESET, OPERATION)


def _values(values: dict[str, Any]) -> str:
    """Column values as an operator reads them: `replication_status=enabled, active_backend_id=NULL`."""
    return ", ".join(f"{k}={'NULL' if v is None else v}" for k, v in values.items())


def undo(engine: Engine, journal_id: int, *, service_down_time: int, dry_run: bool = False) -> ResetResult:
    now = utcnow()
    with engine.connect() as conn:
        entry = journal.get(conn, journal_id)
        if entry is None:
            raise TargetNotFound(f"no journal entry {journal_id}; nothing was written")
        if entry.operation not in UNDOABLE:
            raise Refused(f"journal {journal_id} is {entry.operation!r}: only {' and '.join(UNDOABLE)} can be undone;"
                          " nothing was written")
        if entry.state != journal.DONE:
            raise Refused(f"journal {journal_id} is {entry.state!r}, not done: it changed nothing to undo")
        later = journal.undone_by(conn, journal_id)
        if later is not None:
            raise Refused(f"journal {journal_id} was already undone by journal {later.id}; nothing was written")
        current: list[ServiceRow | ClusterRow] = []
        for item in entry.after:
            read = queries.service_by_id if item["table"] == "services" else queries.cluster_by_id
            row = read(conn, item["id"])
            if row is None:
                raise Refused(f"{item['table'][:-1]} {item['name']!r} (id {item['id']}) no longer exists;"
                              " nothing was written")
            current.append(row)
    services = tuple(r for r in current if isinstance(r, ServiceRow))
    cluster = next((r for r in current if isinstance(r, ClusterRow)), None)
    target = Target(entry.target_kind, entry.target, cluster, services)
    problems = running_services(target, now, service_down_time)
    if problems:
        raise Refused(f"refused to undo journal {journal_id}: {len(problems)} precondition(s) failed; nothing was written",
                      details=problems)
    rows = []
    for before, after, row in zip(entry.before, entry.after, current):
        expected: dict[str, Any] = dict(after["values"])
        if isinstance(row, ServiceRow):
            expected["updated_at"] = row.updated_at
        now_values = {k: getattr(row, k) for k in after["values"]}
        rows.append(RowChange(after["table"], after["id"], after["name"], now_values, dict(before["values"]), expected))
    written = {id(r): {k: r.expected[k] for k in r.before} for r in rows}
    drift = [r for r in rows if r.before != written[id(r)]]
    if drift:
        raise ConcurrentChange(
            f"cannot undo journal {journal_id}: {len(drift)} row(s) changed since; nothing was written",
            details=[f"{r.table[:-1]} {r.name!r} (id {r.id}) now holds {_values(r.before)}; journal {journal_id} wrote"
                     f" {_values(written[id(r)])}" for r in drift],
        )
    if dry_run:
        return ResetResult(target, True, False, None, rows, f"dry run: journal {journal_id} would be undone",
                           operation=OPERATION)

    def write() -> int:
        with engine.begin() as conn:
            for r in rows:
                if not queries.compare_and_swap(conn, r.table, r.id, r.expected, r.after):
                    raise ConcurrentChange(f"{r.table[:-1]} {r.name!r} (id {r.id}) changed while undoing;"
                                           " rolled back, nothing was written")
            return journal.insert(
                conn, now=now, operation=OPERATION, target_kind=entry.target_kind, target=entry.target,
                state=journal.DONE, holder=holder_name(), undo_of=journal_id,
                before=[{"table": r.table, "id": r.id, "name": r.name, "values": r.before} for r in rows],
                after=[{"table": r.table, "id": r.id, "name": r.name, "values": r.after} for r in rows],
                counts={"rows": len(rows)},
            )

    try:
        new_id = retry_lost_races(write, f"the undo of journal {journal_id}")
    except Exception as exc:
        if lost_race(exc):
            raise ConcurrentChange(f"another writer changed {target.label} while undoing; nothing was written") from exc
        raise
    return ResetResult(target, False, True, new_id, rows, f"journal {journal_id} was undone (journal {new_id})",
                       operation=OPERATION)
