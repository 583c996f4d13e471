"""`reset-active-backend`, also spelled `db reset_active_backend` as in cinder-manage."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ..reset import ResetResult, build_request, reset_active_backend
from ..survey.backends import backend_of, survey_backends
from .drivers import SITE_PACKAGES_HELP
from .errors import handled
from .help import Command
from .render import OutputFormat, console, new_table, print_json, show
from .state import state


@handled(after_interrupt="nothing was written; run the same command again when ready")
def reset_active_backend_command(
    ctx: typer.Context,
    backend_host: Annotated[Optional[str], typer.Option("--backend-host", help="The volume service, host@backend; a clustered service means its whole cluster.")] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="The cluster, name@backend: the cluster row and all its live members.")] = None,
    replication_status: Annotated[Optional[str], typer.Option("--replication-status", help="The new replication status \\[default: disabled].", show_default=False)] = None,
    enable_replication: Annotated[bool, typer.Option("--enable-replication", help="Same as --replication-status enabled. Without it and without --replication-status, the status becomes disabled.")] = False,
    active_backend_id: Annotated[Optional[str], typer.Option("--active-backend-id", help="The new active backend id \\[default: none, stored as NULL].", show_default=False)] = None,
    enable_service: Annotated[bool, typer.Option("--enable-service", help="Also re-enable the services (and cluster); by default they stay disabled.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show what would change; write nothing. Without it, the rows are written.")] = False,
    site_packages: Annotated[Optional[str], typer.Option("--site-packages", help=SITE_PACKAGES_HELP, show_default=False)] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Reset the replication state of a stopped, disabled, frozen service or cluster.

    Every precondition is checked first and every failure is reported; the
    rows are then written in one transaction of compare-and-swap updates, and
    a journal entry records them. The service's heartbeat is never written.
    When cinder.conf configures the backend and its volume_driver does not
    implement update_host_replication, a note on stderr says what to do by
    hand after the service starts (the reset is done all the same).
    """
    request = build_request(
        backend_host=backend_host, cluster=cluster, replication_status=replication_status,
        enable_replication=enable_replication, active_backend_id=active_backend_id,
        enable_service=enable_service, dry_run=dry_run,
    )
    cli = state(ctx)
    result = reset_active_backend(cli.engine(), request, service_down_time=cli.settings().service_down_time)
    if output is OutputFormat.json:
        print_json(cli.json(result.to_json()))
    else:
        render_reset(result)
    if any(row.changed for row in result.rows):
        say_manual_steps(result, cli.backends(), site_packages)


def say_manual_steps(result: ResetResult, backends: list, site_packages: str | None) -> None:
    """Once, on stderr: what the admin must do by hand when the backend's driver lacks the hook."""
    backend = backend_of(result.target.name, backends)
    if backend is None:
        return
    steps = survey_backends([backend], site_packages)[0].manual_steps()
    if steps:
        print(f"note: {steps}", file=sys.stderr)


def render_reset(result: ResetResult) -> None:
    out = console()
    table = new_table(None, "table", "id", "host / name", "column", "before", "after")
    for row in result.rows:
        for column, after in row.after.items():
            before = row.before[column]
            mark = "" if before == after else " *"
            table.add_row(row.table, str(row.id), row.name, column, show(before), show(after) + mark)
    out.print(table)
    out.print(result.message)


def register(app: typer.Typer, db_app: typer.Typer) -> None:
    app.command("reset-active-backend", cls=Command)(reset_active_backend_command)
    db_app.command("reset_active_backend", cls=Command)(reset_active_backend_command)
    db_app.command("reset-active-backend", cls=Command)(reset_active_backend_command)
