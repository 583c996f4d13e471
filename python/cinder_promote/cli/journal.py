"""`history` and `undo`: the journal of what cinder-promote did."""

from __future__ import annotations

from typing import Annotated

import typer

from ..db import journal
from ..undo import undo
from .errors import handled
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


def entry_json(entry: journal.JournalEntry) -> dict:
    return {
        "id": entry.id, "created_at": entry.created_at.isoformat(), "updated_at": entry.updated_at.isoformat(),
        "operation": entry.operation, "target_kind": entry.target_kind, "target": entry.target,
        "state": entry.state, "holder": entry.holder,
        "lease_expires_at": None if entry.lease_expires_at is None else entry.lease_expires_at.isoformat(),
        "status_before": entry.status_before, "before": entry.before, "after": entry.after,
        "counts": entry.counts, "error": entry.error, "undo_of": entry.undo_of,
    }


@handled
def history_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many entries, newest first.")] = 50,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """List the journal: every reset, undo and startup-hook run, newest first."""
    engine = state(ctx).engine()
    with engine.connect() as conn:
        entries = journal.entries(conn, limit=limit)
    if output is OutputFormat.json:
        print_json({"entries": [entry_json(e) for e in entries]})
        return
    table = new_table("Journal", "id", "when (UTC)", "operation", "target", "state", "holder", "summary")
    for e in entries:
        table.add_row(str(e.id), f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.operation, f"{e.target_kind} {e.target}",
                      e.state, show(e.holder), _summary(e))
    console().print(table)
    if not entries:
        console().print("the journal is empty")


@handled
def undo_command(
    ctx: typer.Context,
    journal_id: Annotated[int, typer.Argument(help="The journal entry of the reset to undo.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show what would change; write nothing.")] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Restore what a reset changed, refused if the rows changed since."""
    cli = state(ctx)
    result = undo(cli.engine(), journal_id, service_down_time=cli.settings().service_down_time, dry_run=dry_run)
    if output is OutputFormat.json:
        print_json(result.to_json())
    else:
        render_reset(result)


def register(app: typer.Typer) -> None:
    app.command("history")(history_command)
    app.command("undo")(undo_command)
