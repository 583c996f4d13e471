"""`cinder-patch-status`: is the installed Cinder carrying the cinder_patch/ series?"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..cinder_integration import CINDER_VERSION, CinderPatchStatus, patch_status
from ..errors import EXIT_REFUSED
from .errors import handled
from .help import Command
from .render import OutputFormat, console, new_table, print_json


@handled
def cinder_patch_status_command(
    ctx: typer.Context,
    site_packages: Annotated[Optional[str], typer.Option("--site-packages", help="The folder that holds cinder/ (a venv's site-packages) \\[default: the Cinder this Python imports].", show_default=False)] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Check whether an installed Cinder is patched to run cinder-promote.

    Looks for each patch of the series (cinder_patch/series) in the installed
    `cinder` package without importing it. Exit 0 when Cinder 29.0.0 carries
    every patch, 1 when it carries none or only some, or is another version,
    3 when no Cinder is found.
    """
    status = patch_status(site_packages)
    if output is OutputFormat.json:
        print_json(status.to_json())
    else:
        render_status(status)
    if not status.fully_patched or status.version != CINDER_VERSION:
        raise typer.Exit(EXIT_REFUSED)


def render_status(status: CinderPatchStatus) -> None:
    out = console()
    out.print(f"cinder {status.version or '(version unknown)'} in {status.cinder_dir}")
    table = new_table(None, "patch", "applied", "missing")
    for p in status.patches:
        table.add_row(p.patch, "yes" if p.applied else "no", "\n".join(p.missing) or "-")
    out.print(table)
    if status.version != CINDER_VERSION:
        out.print(f"the series is for cinder {CINDER_VERSION}, not {status.version or 'this unknown version'}")
    out.print(f"cinder is {status.state}")


def register(app: typer.Typer) -> None:
    app.command("cinder-patch-status", cls=Command)(cinder_patch_status_command)
