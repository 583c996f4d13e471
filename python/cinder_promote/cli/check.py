"""`check`: replication state that contradicts itself; exit 1 when anything is found."""

from __future__ import annotations

from typing import Annotated

import typer

from ..check import CheckReport, run_check
from ..errors import EXIT_REFUSED
from .errors import handled
from .help import Command
from .render import OutputFormat, console, new_table, print_json
from .state import state


@handled
def check_command(
    ctx: typer.Context,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Find replication state out of sync with itself, with the command that would fix each finding.

    Cluster members that disagree with their cluster, volumes or groups whose
    replication status contradicts their service's, services stuck in a
    transitional status while stopped, stale fences, and services up while an
    offline promotion runs on them. Exit 1 when anything is found.
    """
    cli = state(ctx)
    report = run_check(cli.engine(), service_down_time=cli.settings().service_down_time)
    if output is OutputFormat.json:
        print_json(cli.json(report.to_json()))
    else:
        render_check(report)
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
