"""`drivers`: every replicating volume driver of the installed Cinder, and whether it implements
update_host_replication; `--bug-reports DIR` writes a ready-to-file bug per family lacking it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import TargetNotFound
from ..survey import DriverFacts, Survey, collect
from ..survey.backends import BackendDriver
from ..survey.bug_reports import bug_reports, write_bug_reports
from .errors import handled
from .help import Command
from .render import OutputFormat, console, new_table, print_json, show

SITE_PACKAGES_HELP = ("The site-packages folder that holds cinder/ (its venv's Python runs the survey)"
                      " \\[default: the Cinder this Python imports].")


@handled
def drivers_command(
    ctx: typer.Context,
    site_packages: Annotated[Optional[str], typer.Option("--site-packages", help=SITE_PACKAGES_HELP, show_default=False)] = None,
    driver: Annotated[Optional[list[str]], typer.Option("--driver", help="Only this class, as cinder.conf's volume_driver names it (module.Class); repeatable.")] = None,
    no_import: Annotated[bool, typer.Option("--no-import", help="Read the drivers' source only; import no driver module.")] = False,
    bug_reports_dir: Annotated[Optional[Path], typer.Option("--bug-reports", help="Write one Markdown bug report per driver family lacking the hook into this folder.", file_okay=False)] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Survey every replicating volume driver of the installed Cinder: does it implement update_host_replication?

    Imports each module of cinder/volume/drivers in Cinder's own Python (or reads its source with
    ast when it does not import) and reports, for every driver class that replicates, where its
    failover_host, failover/failover_completed (active-active) and failover_replication (group
    replication) come from, own or inherited, and whether it implements update_host_replication.
    Exit 0; 1 when a --driver class is not found or --bug-reports would overwrite a file it did not
    write; 3 when no Cinder is found.
    """
    survey = collect(site_packages=site_packages, drivers=driver or [], tree=not driver, use_import=not no_import)
    missing = [n for n in survey.named if isinstance(n, str)]
    if bug_reports_dir is not None:
        reports = bug_reports(survey)
        written = write_bug_reports(reports, bug_reports_dir)
        if output is OutputFormat.json:
            print_json({"cinder": survey.to_json()["cinder"], "bug_reports": [
                {"family": r.family.name, "file": str(p), "title": r.title,
                 "drivers": [d.driver for d in r.family.drivers]} for r, p in zip(reports, written)]})
        else:
            for path in written:
                print(path)
    elif output is OutputFormat.json:
        data = survey.to_json()
        if driver:
            data["named"] = [n if isinstance(n, str) else n.to_json() for n in survey.named]
        print_json(data)
    else:
        render_survey(survey)
    if missing:
        raise TargetNotFound("some drivers could not be surveyed", details=missing)


def render_survey(survey: Survey) -> None:
    out = console()
    facts = list(survey.drivers) + [n for n in survey.named if isinstance(n, DriverFacts)]
    family_of = {d.driver: f.name for f in survey.families() for d in f.drivers}
    table = new_table(None, "driver", "family", "failover_host", "active-active", "group replication",
                      "update_host_replication", "how")
    for d in facts:
        table.add_row(d.driver, family_of.get(d.driver, "-"), show(d.implements("failover_host")),
                      show(d.active_active), show(d.group_replication), "ready" if d.ready else "no",
                      d.how + (f" ({d.import_error})" if d.import_error else ""))
    out.print(table)
    patched = "patched" if survey.hook_in_base else "not patched"
    out.print(f"cinder {survey.cinder_version or '(version unknown)'} ({patched}) in {survey.cinder_dir}")
    if survey.drivers:
        families = survey.families()
        out.print(f"{len(survey.drivers)} replicating driver classes in {len(families)} families;"
                  f" {sum(d.ready for d in survey.drivers)} implement update_host_replication,"
                  f" {sum(not f.ready for f in families)} families need a bug report (--bug-reports DIR)")


def render_backends(backends: list[BackendDriver]) -> None:
    """The configured backends' drivers (for check and status)."""
    if not backends:
        return
    table = new_table("Configured backends", "backend", "host", "volume_driver", "update_host_replication",
                      "after a promotion")
    for b in backends:
        ready = "unknown" if b.ready is None else "ready" if b.ready else "no"
        table.add_row(b.backend.name, b.backend.host, b.backend.volume_driver, ready, b.summary)
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("drivers", cls=Command)(drivers_command)
