"""`status`: services and clusters with their replication state."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..fence import Fence
from ..status import StatusReport, collect
from ..survey.backends import survey_backends
from .drivers import SITE_PACKAGES_HELP, render_backends
from .errors import handled
from .render import OutputFormat, console, counts, new_table, print_json, show
from .state import state


@handled
def status_command(
    ctx: typer.Context,
    backend_host: Annotated[Optional[str], typer.Option("--backend-host", help="Only this volume service (a clustered one shows its cluster).")] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="Only this cluster and its members.")] = None,
    site_packages: Annotated[Optional[str], typer.Option("--site-packages", help=SITE_PACKAGES_HELP, show_default=False)] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
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
        print_json(data)
    else:
        render_status(report)
        render_backends(backends)


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f}s"


def _fence(fence: Fence | None) -> str:
    return "-" if fence is None else fence.describe()


def render_status(report: StatusReport) -> None:
    out = console()
    table = new_table("Services", "host", "cluster", "state", "heartbeat", "disabled", "frozen",
                      "replication", "active backend", "fence", "volumes", "groups")
    for s in report.services:
        r = s.row
        disabled = show(bool(r.disabled)) + (f" ({r.disabled_reason})" if r.disabled_reason else "")
        table.add_row(r.host, show(r.cluster_name), "up" if s.up else "down", _age(s.heartbeat_age_s), disabled,
                      show(bool(r.frozen)), show(r.replication_status), show(r.active_backend_id), _fence(s.fence),
                      counts(s.volumes), counts(s.groups))
    out.print(table)
    if report.clusters:
        table = new_table("Clusters", "name", "members", "state", "heartbeat", "disabled", "frozen",
                          "replication", "active backend", "fence", "volumes", "groups")
        for c in report.clusters:
            cr = c.row
            disabled = show(bool(cr.disabled)) + (f" ({cr.disabled_reason})" if cr.disabled_reason else "")
            table.add_row(cr.name, ", ".join(c.members) or "-", "up" if c.up else "down", _age(c.heartbeat_age_s),
                          disabled, show(bool(cr.frozen)), show(cr.replication_status), show(cr.active_backend_id),
                          _fence(c.fence), counts(c.volumes), counts(c.groups))
        out.print(table)


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
