"""`status`: services and clusters with their replication state."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from ..errors import UsageError
from ..fence import Fence
from ..status import StatusReport, collect
from ..survey.backends import survey_backends
from .drivers import SITE_PACKAGES_HELP, render_backends
from .errors import handled
from .help import Command
from .render import OutputFormat, console, counts, new_table, print_json, show
from .state import state


@handled
def status_command(
    ctx: typer.Context,
    backend_host: Annotated[Optional[str], typer.Option("--backend-host", help="Only this volume service (a clustered one shows its cluster).")] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="Only this cluster and its members.")] = None,
    site_packages: Annotated[Optional[str], typer.Option("--site-packages", help=SITE_PACKAGES_HELP, show_default=False)] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Show every cinder-volume service and cluster with its replication state.

    Up or down (Cinder's heartbeat rule), heartbeat age, disabled, frozen,
    replication status, active backend, the fence if any, and the counts of
    its volumes and groups by replication status. With a cinder.conf that
    lists enabled_backends, also each backend's volume_driver and whether it
    implements update_host_replication.
    """
    if backend_host is not None and cluster is not None:
        raise UsageError("give at most one of --backend-host and --cluster")
    cli = state(ctx)
    report = collect(cli.engine(), service_down_time=cli.settings().service_down_time,
                     backend_host=backend_host, cluster=cluster)
    backends = survey_backends(cli.backends(), site_packages)
    if output is OutputFormat.json:
        data = report.to_json()
        if backends:
            data["backends"] = [b.to_json() for b in backends]
        print_json(cli.json(data))
    else:
        render_status(report)
        render_backends(backends)


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f}s"


def _fence(fence: Fence | None) -> str:
    return "-" if fence is None else fence.describe()


# Below this width the tables would fold host names across lines: one block per row instead.
TABLE_MIN_WIDTH = 140


def _disabled(row) -> str:  # type: ignore[no-untyped-def]
    return show(bool(row.disabled)) + (f" ({row.disabled_reason})" if row.disabled_reason else "")


def render_status(report: StatusReport) -> None:
    out = console()
    if out.width < TABLE_MIN_WIDTH:
        _render_blocks(report)
        return
    table = new_table("Services", "host", "cluster", "state", "heartbeat", "disabled", "frozen",
                      "replication", "active backend", "fence", "volumes", "groups")
    for s in report.services:
        r = s.row
        table.add_row(r.host, show(r.cluster_name), "up" if s.up else "down", _age(s.heartbeat_age_s), _disabled(r),
                      show(bool(r.frozen)), show(r.replication_status), show(r.active_backend_id), _fence(s.fence),
                      counts(s.volumes), counts(s.groups))
    out.print(table)
    if report.clusters:
        table = new_table("Clusters", "name", "members", "state", "heartbeat", "disabled", "frozen",
                          "replication", "active backend", "fence", "volumes", "groups")
        for c in report.clusters:
            cr = c.row
            table.add_row(cr.name, ", ".join(c.members) or "-", "up" if c.up else "down", _age(c.heartbeat_age_s),
                          _disabled(cr), show(bool(cr.frozen)), show(cr.replication_status),
                          show(cr.active_backend_id), _fence(c.fence), counts(c.volumes), counts(c.groups))
        out.print(table)


def _render_blocks(report: StatusReport) -> None:
    """A narrow terminal: each service and cluster as a few labelled lines; words are never split."""
    out = console()
    rows: list[tuple[str, str, Any, bool, float | None, Fence | None, dict[str, int], dict[str, int], str]]
    rows = [("service", s.row.host, s.row, s.up, s.heartbeat_age_s, s.fence, s.volumes, s.groups,
             f"cluster {show(s.row.cluster_name)}") for s in report.services]
    rows += [("cluster", c.row.name, c.row, c.up, c.heartbeat_age_s, c.fence, c.volumes, c.groups,
              f"members {', '.join(c.members) or '-'}") for c in report.clusters]
    for kind, name, r, up, age, fence, volumes, groups, relation in rows:
        out.print(f"[bold]{escape(kind)} {escape(name)}[/bold]: {'up' if up else 'down'}, heartbeat {_age(age)},"
                  f" {escape(relation)}")
        for line in (f"  frozen {show(bool(r.frozen))}; disabled {_disabled(r)}",
                     f"  replication {show(r.replication_status)}; active backend {show(r.active_backend_id)};"
                     f" fence {_fence(fence)}",
                     f"  volumes {counts(volumes)}; groups {counts(groups)}"):
            out.print(line, markup=False)


def register(app: typer.Typer) -> None:
    app.command("status", cls=Command)(status_command)
