"""`update-host-replication`: the startup hook, offline."""

from __future__ import annotations

import sys
import threading
import time
from typing import Annotated, Optional

import typer

from ..drivers import parse_options
from ..hook import DEFAULT_LEASE_SECONDS, PHASES, HookResult
from ..offline import run_offline
from .errors import handled
from .help import Command
from .render import OutputFormat, console, new_table, print_json
from .state import state


class _ProgressLines:
    """Progress on stderr: a line per step, so that logs and pipes see it too.

    A step that stays silent (the driver working on its array) gets a line
    every `TICK_S` seconds with the time it has taken so far.
    """

    TICK_S = 5.0

    def __init__(self) -> None:
        self._step = ("", 0.0)
        self._done = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)

    def __enter__(self) -> _ProgressLines:
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._ticker.join()

    def __call__(self, phase: str, message: str) -> None:
        self._step = (phase, time.monotonic())
        print(f"[{phase}] {message}", file=sys.stderr, flush=True)

    def _tick(self) -> None:
        said = ("", 0.0)
        while not self._done.wait(0.5):
            phase, since = self._step
            now = time.monotonic()
            last = said[1] if said[0] == phase and said[1] >= since else since
            if phase and now - last >= self.TICK_S:
                said = (phase, now)
                print(f"[{phase}] still working: {now - since:.0f} s", file=sys.stderr, flush=True)


@handled(after_interrupt="nothing of the driver's answer was written (a fence taken was released to 'error');"
                         " run `cinder-promote check`: it says what to run next")
def update_host_replication_command(
    ctx: typer.Context,
    driver: Annotated[str, typer.Option("--driver", help="The driver, as module:Class.")],
    backend_host: Annotated[Optional[str], typer.Option("--backend-host", help="The stopped volume service, host@backend.")] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="The stopped cluster: the hook runs once for all its members.")] = None,
    driver_option: Annotated[Optional[list[str]], typer.Option("--driver-option", help="key=value passed to the driver's constructor; repeatable.")] = None,
    lease_seconds: Annotated[float, typer.Option("--lease-seconds", min=1, help="The fence's lease; renewed while working.")] = DEFAULT_LEASE_SECONDS,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines on stderr.")] = False,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format: table for people, json for scripts.")] = OutputFormat.table,
) -> None:
    """Run the startup hook update_host_replication offline for a stopped service or cluster.

    Fences the target, loads its volumes and groups, calls the driver, validates
    and plans its answer, writes it in one transaction and releases the fence.
    """
    cli = state(ctx)
    progress = _ProgressLines()
    with progress:
        result = run_offline(
            cli.engine(), driver, parse_options(driver_option or []), backend_host=backend_host, cluster=cluster,
            service_down_time=cli.settings().service_down_time, lease_seconds=lease_seconds,
            progress=None if quiet else progress,
        )
    if output is OutputFormat.json:
        print_json(cli.json(result.to_json()))
    else:
        render_hook(result)


def render_hook(result: HookResult) -> None:
    out = console()
    table = new_table(None, "phase", "seconds")
    for phase in PHASES:
        if phase in result.timings:
            table.add_row(phase, f"{result.timings[phase]:.3f}")
    out.print(table)
    out.print(result.message)


def register(app: typer.Typer) -> None:
    app.command("update-host-replication", cls=Command)(update_host_replication_command)
