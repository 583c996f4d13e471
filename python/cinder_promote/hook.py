"""`update_host_replication`: the startup hook (SPEC sections 5 and 6).

Right after a driver's `do_setup` and `check_for_setup_error`, the hook

1. fences the service (or its cluster) with a compare-and-swap to `updating`
   and a journal lease, or takes over a stale fence, or finds a live one and
   leaves the work to its holder;
2. loads the backend's not-deleted volumes and groups (Cinder's host matching,
   pools included);
3. calls `driver.update_host_replication(context, replication_status,
   active_backend_id, volumes, groups)` with the status from before the fence;
4. validates and plans the answer in the native module (GIL released);
5. writes every update and releases the fence in one transaction.

Any failure after the fence releases it to `error` and journals why; nothing
of the driver's answer is written. A driver without the method: nothing
happens at all.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from . import engine as core
from .db import bulk, journal, queries
from .db.connect import database_message, fast_engine, fast_paths_enabled, is_database_error, lost_race, retry_lost_races
from .errors import (CinderPromoteError, ConcurrentChange, DatabaseUnavailable, DriverAnswerError, HookFailed,
                     Interrupted)
from .fence import OPERATION, Busy, Lease, LeaseKeeper, acquire, wait_until_released
from .models import utcnow
from .target import Target, resolve

LOG = logging.getLogger(__name__)

HOOK_METHOD = "update_host_replication"
DEFAULT_LEASE_SECONDS = 120.0
# Groups of identical updates at least this large become set-based UPDATEs;
# smaller ones cost less as rows of the column-wise path.
MIN_GROUP = 32
PHASES = ("fence", "load", "driver", "plan", "apply")

Progress = Callable[[str, str], None]  # (phase, message)


@dataclass
class HookResult:
    target_kind: str
    target: str
    outcome: str  # "done", "no-hook" (the driver has no method), "fenced" (another holder did it)
    journal_id: int | None = None  # ours; for "fenced", the holder's entry
    changed: bool = False  # False when the driver's answer matched the database: nothing was written
    # What the driver's service update set, validated (empty when it returned none): only
    # then does its replication_status replace the one Cinder derives from the driver's stats.
    service_update: dict[str, Any] = field(default_factory=dict)
    status_before: str | None = None
    status_after: str | None = None
    active_backend_id: str | None = None
    volumes_updated: int = 0
    groups_updated: int = 0
    volumes_loaded: int = 0
    groups_loaded: int = 0
    taken_over_from: int | None = None
    # How it was done: the database driver of the load and write (e.g. "mysqldb" for a
    # mysql+pymysql URL with mysqlclient installed), and the tables whose identical
    # update was one UPDATE by host or cluster after the exact-rows proof.
    database_driver: str | None = None
    written_by_owner: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": OPERATION, "target_kind": self.target_kind, "target": self.target,
            "outcome": self.outcome, "journal_id": self.journal_id, "changed": self.changed,
            "service_update": self.service_update, "status_before": self.status_before,
            "status_after": self.status_after, "active_backend_id": self.active_backend_id,
            "volumes": {"loaded": self.volumes_loaded, "updated": self.volumes_updated},
            "groups": {"loaded": self.groups_loaded, "updated": self.groups_updated},
            "taken_over_from": self.taken_over_from,
            "paths": {"database_driver": self.database_driver, "written_by_owner": self.written_by_owner},
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "message": self.message,
        }


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Timer:
    def __init__(self, result: HookResult, progress: Progress | None) -> None:
        self.result, self.progress = result, progress

    def phase(self, name: str, message: str = "") -> _Phase:
        return _Phase(self, name, message)

    def say(self, phase: str, message: str) -> None:
        if self.progress is not None:
            self.progress(phase, message)


class _Phase:
    def __init__(self, timer: _Timer, name: str, message: str) -> None:
        self.timer, self.name, self.message = timer, name, message

    def __enter__(self) -> None:
        self.start = time.perf_counter()
        if self.message:
            self.timer.say(self.name, self.message)

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.start
        self.timer.result.timings[self.name] = self.timer.result.timings.get(self.name, 0.0) + elapsed


def update_host_replication(
    engine: Engine,
    driver: Any,
    *,
    host: str | None = None,
    cluster: str | None = None,
    context: Any = None,
    holder: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    wait_for_fence: float = 0.0,
    progress: Progress | None = None,
) -> HookResult:
    """Run the startup hook for the service `host` or the cluster `cluster`.

    Blocking: inside an eventlet service call it off the hub (Cinder wraps it in tpool).
    """
    hook = getattr(driver, HOOK_METHOD, None)
    with engine.connect() as conn:
        target = resolve(conn, backend_host=host if cluster is None else None, cluster=cluster)
    result = HookResult(target.kind, target.name, "no-hook")
    if hook is None:
        result.message = f"the driver has no {HOOK_METHOD}(); nothing to do"
        return result
    timer = _Timer(result, progress)
    holder = holder or default_holder()

    with timer.phase("fence", f"taking the fence on {target.label}"):
        outcome = acquire(engine, target, holder=holder, lease_seconds=lease_seconds)
    released = False
    if isinstance(outcome, Busy) and wait_for_fence > 0:
        timer.say("fence", f"{target.label} is fenced: {outcome.fence.describe()}; waiting for its holder")
        released = wait_until_released(engine, target, wait_for_fence)
        if not released:
            # Gone stale while we waited (its holder died): take it over and do the work.
            # Still live after the wait: Busy again, and the caller goes on without it.
            with timer.phase("fence", f"taking the fence on {target.label}"):
                outcome = acquire(engine, target, holder=holder, lease_seconds=lease_seconds)
    if isinstance(outcome, Busy):
        result.outcome = "fenced"
        result.journal_id = outcome.fence.journal_ids[0] if outcome.fence.journal_ids else None
        result.message = (f"{target.label} is fenced: {outcome.fence.describe()}; its holder runs the driver"
                          + ("; the fence has since been released" if released else
                             f"; still held after waiting {wait_for_fence:g} s" if wait_for_fence > 0 else ""))
        return result
    lease = outcome
    result.journal_id, result.taken_over_from = lease.journal_id, lease.taken_over_from
    result.status_before = lease.status_before
    try:
        with LeaseKeeper(engine, lease) as keeper, queries.records_spared_by_collector():
            # The fence and its lease stay on the caller's engine; the bulk load and write may
            # use a faster database driver on the same database (MariaDB/MySQL: mysqlclient).
            bulk_engine = fast_engine(engine)
            try:
                _work(bulk_engine or engine, hook, lease, target, context, timer, result, keeper)
            finally:
                if bulk_engine is not None:
                    bulk_engine.dispose()
    except BaseException as exc:
        # Guarded by the journal entry: a fence taken over meanwhile is left to its new holder.
        released = release_on_failure(engine, lease, exc)
        fence_note = (f"the fence was released to 'error' (journal {lease.journal_id})" if released else
                      f"the fence could not be released: it stays until its lease expires (journal {lease.journal_id})")
        if isinstance(exc, CinderPromoteError) and not isinstance(exc, DriverAnswerError):
            raise
        if isinstance(exc, DriverAnswerError):
            raise HookFailed(f"{target.label}: {exc.message}; {fence_note}", details=exc.details) from exc
        if is_database_error(exc):
            raise DatabaseUnavailable(
                f"{target.label}: database error: {database_message(engine, exc)}; rolled back, nothing of the"
                f" driver's answer was written; {fence_note}"
            ) from exc
        if isinstance(exc, Exception):
            raise HookFailed(
                f"{target.label}: the driver's {HOOK_METHOD}() raised {type(exc).__name__}: {exc}; nothing was"
                f" written, {fence_note}"
            ) from exc
        raise
    result.outcome = "done"
    if result.changed:
        result.message = (f"{target.label}: {result.volumes_updated} volume(s) and {result.groups_updated} group(s)"
                          f" updated; replication_status {result.status_after!r} (journal {lease.journal_id})")
    else:
        result.message = (f"{target.label}: the driver's answer matches the database; nothing was written"
                          f" (replication_status {result.status_after!r}, journal {lease.journal_id} '{journal.UNCHANGED}')")
    return result


def _work(engine: Engine, hook: Callable[..., Any], lease: Lease, target: Target, context: Any,
          timer: _Timer, result: HookResult, keeper: LeaseKeeper) -> None:
    cluster_name = target.cluster.name if target.cluster is not None else None
    host = None if cluster_name is not None else target.name
    result.database_driver = engine.dialect.driver
    with timer.phase("load", f"loading volumes and groups ({engine.dialect.driver})"), engine.connect() as conn:
        volumes = queries.load_volumes(conn, host=host, cluster_name=cluster_name, first=core.VOLUME_KEYS)
        groups = queries.load_groups(conn, host=host, cluster_name=cluster_name, first=core.GROUP_KEYS)
    result.volumes_loaded, result.groups_loaded = len(volumes), len(groups)
    with timer.phase("driver", f"calling the driver with {len(volumes)} volume(s) and {len(groups)} group(s)"):
        answer = hook(context, lease.status_before, lease.active_backend_id, volumes, groups)
    with timer.phase("plan", "validating and planning the driver's answer"):
        service_update, volume_updates, group_updates = _unpack(answer)
        try:
            plan = core.plan_updates(
                service_update, volume_updates, group_updates,
                _current_values(volumes, core.VOLUME_KEYS), _current_values(groups, core.GROUP_KEYS),
                bulk.max_params(engine), MIN_GROUP,
            )
        except DriverAnswerError as exc:
            raise DriverAnswerError(exc.message, _explain_unknown_ids(engine, exc.details)) from None
    del volumes, groups, answer, volume_updates, group_updates
    result.service_update = dict(plan["service"])
    status_after = plan["service"].get("replication_status", lease.status_before)
    backend_after = plan["service"].get("active_backend_id", lease.active_backend_id)
    result.changed = bool(plan["volumes"]["count"] or plan["groups"]["count"]
                          or (status_after, backend_after) != (lease.status_before, lease.active_backend_id))
    with timer.phase("apply", f"writing {plan['volumes']['count']} volume and {plan['groups']['count']} group update(s)"):
        result.written_by_owner = _apply(engine, plan, lease, target, status_after, backend_after, timer, keeper,
                                         changed=result.changed,
                                         loaded={"volumes": result.volumes_loaded, "groups": result.groups_loaded})
    result.status_after, result.active_backend_id = status_after, backend_after
    result.volumes_updated, result.groups_updated = plan["volumes"]["count"], plan["groups"]["count"]


def _current_values(records: list[Any], keys: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """id -> a tuple that starts with the record's values of `keys`, which the planner
    compares with the driver's (an equal value is not written).

    The load lays those columns out first in each record, so the record itself is that
    tuple: no tuple per volume to make (85 ms at 100,000 volumes). Otherwise (a column
    converted when read) they are read column by column from the records' tuples at C
    speed: an attribute of a record goes through its class's `__getattr__` hook, several
    times slower at 100,000 volumes."""
    if not records:
        return {}
    cls = type(records[0])  # the records of one load share their class

    def converted(name: str) -> bool:  # when read (models.record_type)
        return isinstance(cls.__dict__.get(name), property)

    def column(name: str) -> Iterator[Any]:
        if converted(name):
            return map(cls._read[name], records)
        return map(tuple.__getitem__, records, itertools.repeat(cls._index[name]))

    if cls.COLUMNS[:len(keys)] == keys and not any(map(converted, keys)):
        return dict(zip(column("id"), records))
    return dict(zip(column("id"), zip(*map(column, keys))))


def _unpack(answer: Any) -> tuple[Any, Any, Any]:
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        raise DriverAnswerError(
            "the driver's answer was refused: 1 problem(s); nothing was written",
            [f"the answer: expected (service_update, volume_updates, group_updates), got {type(answer).__name__}"
             + (f" of length {len(answer)}" if isinstance(answer, (tuple, list)) else "")],
        )
    return answer[0], answer[1], answer[2]


# The planner's line for an id that is not a live row of this backend (planner.rs,
# _reference.py); the id is everything between the quotes, quotes inside it included.
_NOT_OURS = re.compile(r"(volume|group)_updates\[\d+\]: (?:volume|group) '(.*)' is not a live (?:volume|group) of this backend")


def _not_ours(line: str) -> tuple[str, str] | None:
    """(table, id) of a planner line about an id that is not ours, else None."""
    match = _NOT_OURS.fullmatch(line)
    return None if match is None else (f"{match.group(1)}s", match.group(2))


def _explain_unknown_ids(engine: Engine, details: list[str]) -> list[str]:
    """Add to 'not a live volume of this backend' lines why: deleted, elsewhere, or absent."""
    wanted: dict[str, list[str]] = {"volumes": [], "groups": []}
    for line in details:
        if (found := _not_ours(line)) is not None:
            wanted[found[0]].append(found[1])
    if not any(wanted.values()):
        return details
    try:
        with engine.connect() as conn:
            why = {t: queries.describe_ids(conn, t, ids) for t, ids in wanted.items() if ids}
    except Exception:  # noqa: BLE001 - the explanation is a courtesy; the refusal stands without it
        return details
    explained = []
    for line in details:
        found = _not_ours(line)
        reason = why.get(found[0], {}).get(found[1]) if found is not None else None
        explained.append(f"{line} ({reason})" if reason else line)
    return explained


def write_plan(writer: bulk.Writer, plan: dict[str, Any], say: Callable[[str], None] | None = None,
               owner: queries.Owner | None = None, loaded: Mapping[str, int] | None = None) -> list[str]:
    """Write the volumes and groups of a plan in the writer's transaction.

    With `owner` (the target's host or cluster), a table whose every update is one
    identical update is written by one UPDATE of the owner's rows when the writer
    proves that those are exactly the named rows (`Writer.update_set_of_owner`);
    otherwise, and without `owner`, by id chunks. `loaded` (rows loaded per table) spares
    the attempt, an UPDATE of the owner's rows rolled back, when fewer rows were named.

    Returns the tables written by owner. Raises ConcurrentChange when fewer rows
    were written than planned (a row was deleted meanwhile): the caller's
    transaction then rolls back.
    """
    by_owner_tables = []
    for table_name in ("volumes", "groups"):
        part = plan[table_name]
        written = 0
        sets = part["sets"]
        by_owner = None
        if owner is not None and sets and not part["rows"] and all(c["values"] == sets[0]["values"] for c in sets):
            ids = [i for chunk in sets for i in chunk["ids"]]
            if loaded is None or len(ids) == loaded[table_name]:
                by_owner = writer.update_set_of_owner(table_name, sets[0]["values"], ids, owner)
            if say is not None:
                say(f"{table_name}: " + ("the named rows are exactly the target's: one UPDATE by "
                                         + ("cluster" if owner.cluster_name is not None else "host")
                                         if by_owner is not None else
                                         "the named rows are not exactly the target's: writing them by id"))
        if by_owner is not None:
            written, sets = by_owner, []
            by_owner_tables.append(table_name)
        for chunk in sets:
            written += writer.update_set(table_name, chunk["values"], chunk["ids"])
            if say is not None:
                say(f"{table_name}: {written}/{part['count']} written")
        partitions: dict[tuple[str, ...], list[tuple[list[str], list[list[Any]]]]] = {}
        for chunk in part["rows"]:
            partitions.setdefault(tuple(chunk["columns"]), []).append((chunk["ids"], chunk["values"]))
        for columns, chunks in partitions.items():
            if say is not None:
                say(f"{table_name}: writing {sum(len(ids) for ids, _ in chunks)} row(s) with distinct values"
                    f" ({', '.join(columns)})")
            written += writer.update_rows(table_name, list(columns), chunks)
            if say is not None:
                say(f"{table_name}: {written}/{part['count']} written")
        if written != part["count"]:
            raise ConcurrentChange(
                f"{part['count'] - written} of the {table_name} to update changed (deleted?) while the driver"
                f" worked; rolled back, nothing was written"
            )
    return by_owner_tables


def _apply(engine: Engine, plan: dict[str, Any], lease: Lease, target: Target, status_after: str | None,
           backend_after: str | None, timer: _Timer, keeper: LeaseKeeper, *, changed: bool,
           loaded: Mapping[str, int] | None = None) -> list[str]:
    after = {"replication_status": status_after, "active_backend_id": backend_after,
             "set_by_driver": sorted(plan["service"])}
    cluster_name = target.cluster.name if target.cluster is not None else None
    owner = (queries.Owner(None if cluster_name is not None else target.name, cluster_name)
             if fast_paths_enabled() and bulk.proves_exact_rows(engine) else None)

    def write() -> list[str]:
        now = utcnow()
        with bulk.transaction(engine, rows=bool(plan["volumes"]["count"] or plan["groups"]["count"])) as writer:
            by_owner = write_plan(writer, plan, lambda message: timer.say("apply", message), owner, loaded)
            if keeper.lost or not journal.finish(
                writer, lease.journal_id, lease.holder, state=journal.DONE if changed else journal.UNCHANGED,
                now=now, after=after,
                counts={kind: plan[kind]["count"] for kind in ("volumes", "groups")}
                | {f"{kind}_unchanged": plan[kind].get("unchanged", 0) for kind in ("volumes", "groups")},
            ):
                raise ConcurrentChange(
                    f"the fence on {target.label} was taken over while this process worked (its lease expired);"
                    f" rolled back, nothing was written"
                )
            values = {"replication_status": status_after, "active_backend_id": backend_after}
            if not queries.set_replication(writer, lease.table, lease.row_id, expected_status=core.FENCE_STATUS,
                                           values=values):
                raise ConcurrentChange(f"the fence on {target.label} was cleared by someone else; rolled back")
            if target.cluster is not None:
                queries.update_members(writer, target.cluster.name, values)
            if not changed:
                journal.prune_unchanged(writer, operation=OPERATION, target_kind=target.kind, target=target.name,
                                        keep_id=lease.journal_id)
            timer.say("apply", "committing")
        return by_owner

    try:
        # All or nothing, so a write that lost a race (a deadlock, or a Galera
        # certification failure at COMMIT) is simply written again from the plan.
        return retry_lost_races(write, f"the write of {target.label}")
    except Exception as exc:
        if lost_race(exc):
            raise ConcurrentChange(f"another writer changed {target.label} while committing; rolled back") from exc
        raise


def release_on_failure(engine: Engine, lease: Lease, exc: BaseException) -> bool:
    """Release the fence to `error` and journal why, if the fence is still ours; True when released."""
    reason = exc.message if isinstance(exc, (CinderPromoteError, Interrupted)) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, CinderPromoteError) and exc.details:
        reason += "\n" + "\n".join(exc.details)

    def release() -> bool:
        with engine.begin() as conn:
            if not journal.finish(conn, lease.journal_id, lease.holder, state=journal.FAILED, now=utcnow(),
                                  error=reason):
                return False
            return queries.set_replication(conn, lease.table, lease.row_id, expected_status=core.FENCE_STATUS,
                                           values={"replication_status": "error"})

    try:
        return retry_lost_races(release, f"the release of the fence on {lease.target.label}")
    except Exception as release_error:  # noqa: BLE001 - the original failure matters more; the lease expires anyway
        LOG.warning("could not release the fence of journal %s to 'error': %s", lease.journal_id,
                    database_message(engine, release_error))
        LOG.debug("the release failed with", exc_info=True)
        return False
