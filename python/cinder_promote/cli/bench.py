"""`bench startup`: time the startup hook by phase on a scratch database."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..drivers import parse_options
from ..engine import ENGINES
from ..errors import UsageError
from .errors import handled
from .help import Command, Group
from .render import OutputFormat, console, new_table, print_json

bench_app = typer.Typer(help="Benchmarks you can rerun: see docs/benchmarks.md.", no_args_is_help=True, cls=Group)


@handled
def startup_command(
    ctx: typer.Context,
    volumes: Annotated[int, typer.Option("--volumes", min=1, help="Volumes to seed on the benchmark's service.")] = 10000,
    groups: Annotated[int, typer.Option("--groups", min=0, help="Groups to seed.")] = 100,
    db_url: Annotated[Optional[str], typer.Option("--db-url", help="A scratch Cinder database (default: a temporary SQLite file).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="native, or reference (the pure-Python twin).")] = "native",
    chart: Annotated[Optional[str], typer.Option("--chart", help="Write a PNG chart of the phases here.")] = None,
    memory: Annotated[bool, typer.Option("--memory", help="Sample the resident memory while the hook runs (JSON and chart).")] = False,
    driver: Annotated[Optional[str], typer.Option("--driver", help="Time this driver's hook, as module:Class \\[default: the reference driver].", show_default=False)] = None,
    driver_option: Annotated[Optional[list[str]], typer.Option("--driver-option", help="key=value passed to the driver's constructor; repeatable.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Seed volumes and groups, then time the startup hook end to end and by phase."""
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    from .. import bench  # the hook and the database layer: not imported for --help

    result = bench.startup(volumes=volumes, groups=groups, db_url=db_url, engine_name=engine,
                           memory=memory, driver_spec=driver, driver_options=parse_options(driver_option or []))
    if chart:
        bench.write_chart(result, chart)
    if output is OutputFormat.json:
        print_json(result.to_json())
        return
    out = console()
    table = new_table(f"{volumes} volumes + {groups} groups on {result.database_version}, {engine} engine,"
                      f" {result.driver}",
                      "phase", "seconds", "share")
    for phase, seconds in result.phases_s.items():
        table.add_row(phase, f"{seconds:.3f}", f"{100 * seconds / result.total_s:.0f}%")
    table.add_row("total", f"{result.total_s:.3f}", f"{result.rows_per_s:,.0f} rows/s")
    out.print(table)
    if result.memory is not None:
        peaks = result.memory.peak_by_phase()
        out.print("resident memory peak by phase (MiB): "
                  + ", ".join(f"{phase} {rss / 2**20:,.0f}" for phase, rss in peaks.items()))
    machine = result.machine()
    out.print(f"machine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']};"
              f" seeding took {result.seed_s:.1f}s" + (f"; chart written to {chart}" if chart else ""))


def register(app: typer.Typer) -> None:
    bench_app.command("startup", cls=Command)(startup_command)
    app.add_typer(bench_app, name="bench")
