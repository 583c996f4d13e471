"""`history` and `undo`: the journal of what cinder-promote did."""

from __future__ import annotations

from typing import Annotated

import typer

from ..db import journal
from ..undo import undo
from .errors import handled
from .help import Command
from .render import OutputFormat, console, new_table, print_json, show
from .reset import render_reset
from .state import state


def _summary(entry: journal.JournalEntry) -> str:
    if entry.error:
        return entry.error.splitlines()[0]
    if entry.undo_of is not None:
        return f"undid journal {entry.undo_of}"
    if entry.state == journal.UNCHANGED:
        return "the driver's answer matched the database: nothing written (latest such start)"
    if entry.operation == "update-host-replication" and entry.counts:
        return f"{entry.counts.get('volumes', 0)} volume(s), {entry.counts.get('groups', 0)} group(s)"
    if isinstance(entry.after, list):
        return "; ".join(f"{r['name']}: {r['values'].get('replication_status')}" for r in entry.after)
    return ""


# The columns of the fenced row that a startup-hook entry records; its other keys describe the run.
_HOOK_COLUMNS = ("replication_status", "active_backend_id")


def rows_of(entry: journal.JournalEntry, side: object) -> list[dict] | None:
    """`before`/`after` in one shape for every entry: the rows, each with its table, name and column values.

    A reset or an undo records its rows so already; a startup hook records the
    fenced row's values (and facts about the run, kept beside them) in a mapping.
    """
    if side is None or isinstance(side, list):
        return side
    if not isinstance(side, dict):
        return [{"value": side}]
    row = {"table": "clusters" if entry.target_kind == "cluster" else "services", "name": entry.target,
           "values": {k: side[k] for k in _HOOK_COLUMNS if k in side}}
    return [row | {k: v for k, v in side.items() if k not in _HOOK_COLUMNS}]


def entry_json(entry: journal.JournalEntry) -> dict:
    return {
        "id": entry.id, "created_at": entry.created_at.isoformat(), "updated_at": entry.updated_at.isoformat(),
        "operation": entry.operation, "target_kind": entry.target_kind, "target": entry.target,
        "state": entry.state, "holder": entry.holder,
        "lease_expires_at": None if entry.lease_expires_at is None else entry.lease_expires_at.isoformat(),
        "status_before": entry.status_before, "before": rows_of(entry, entry.before),
        "after": rows_of(entry, entry.after),
        "counts": entry.counts, "error": entry.error, "undo_of": entry.undo_of,
    }


@handled
def history_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many entries, newest first.")] = 50,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """List the journal: every reset, undo and startup-hook run, newest first."""
    cli = state(ctx)
    engine = cli.engine()
    with engine.connect() as conn:
        entries = journal.entries(conn, limit=limit)
    if output is OutputFormat.json:
        print_json(cli.json({"entries": [entry_json(e) for e in entries]}))
        return
    table = new_table("Journal", "id", "when (UTC)", "operation", "target", "state", "holder", "summary")
    for e in entries:
        table.add_row(str(e.id), f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.operation, f"{e.target_kind} {e.target}",
                      e.state, show(e.holder), _summary(e))
    console().print(table)
    if not entries:
        console().print("the journal is empty")


@handled(after_interrupt="nothing was written; run the same undo again when ready")
def undo_command(
    ctx: typer.Context,
    journal_id: Annotated[int, typer.Argument(help="The journal entry of the reset to undo.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show what would change; write nothing.")] = False,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Restore what a reset changed, refused if the rows changed since."""
    cli = state(ctx)
    result = undo(cli.engine(), journal_id, service_down_time=cli.settings().service_down_time, dry_run=dry_run)
    if output is OutputFormat.json:
        print_json(cli.json(result.to_json()))
    else:
        render_reset(result)


def register(app: typer.Typer) -> None:
    app.command("history", cls=Command)(history_command)
    app.command("undo", cls=Command)(undo_command)
