"""`check`: replication state that contradicts itself; exit 1 when anything is found."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..check import CheckReport, run_check
from ..errors import EXIT_REFUSED
from ..survey.backends import survey_backends
from .drivers import SITE_PACKAGES_HELP, render_backends
from .errors import handled
from .help import Command
from .render import OutputFormat, console, new_table, print_json
from .state import state


@handled
def check_command(
    ctx: typer.Context,
    site_packages: Annotated[Optional[str], typer.Option("--site-packages", help=SITE_PACKAGES_HELP, show_default=False)] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Find replication state out of sync with itself, with the command that would fix each finding.

    Cluster members that disagree with their cluster, volumes or groups whose
    replication status contradicts their service's, services stuck in a
    transitional status while stopped, stale fences, and services up while an
    offline promotion runs on them. Exit 1 when anything is found. With a
    cinder.conf that lists enabled_backends, also says for each backend
    whether its volume_driver implements update_host_replication (not a
    finding: a driver without it is how Cinder ships).
    """
    cli = state(ctx)
    report = run_check(cli.engine(), service_down_time=cli.settings().service_down_time)
    backends = survey_backends(cli.backends(), site_packages)
    if output is OutputFormat.json:
        data = report.to_json()
        if backends:
            data["backends"] = [b.to_json() for b in backends]
        print_json(cli.json(data))
    else:
        render_check(report)
        render_backends(backends)
    if report.findings:
        raise typer.Exit(EXIT_REFUSED)


def render_check(report: CheckReport) -> None:
    out = console()
    if not report.findings:
        out.print("no findings: the replication state is consistent")
        return
    table = new_table(f"{len(report.findings)} finding(s)", "code", "finding", "fix")
    for f in report.findings:
        table.add_row(f.code, f.message, f.command)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("check", cls=Command)(check_command)
