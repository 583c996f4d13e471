"""`demo`: the seed's disaster on an embedded SQLite database, and its repair."""

from __future__ import annotations

import sys
import threading
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from .. import demo as story
from ..config import DEFAULT_SERVICE_DOWN_TIME
from ..db.connect import open_engine
from ..errors import Interrupted, Refused
from ..reset import build_request, reset_active_backend
from ..check import run_check
from ..offline import run_offline
from ..status import collect
from .check import render_check
from .errors import handled
from .help import Command
from .hook import render_hook
from .render import console
from .reset import render_reset
from .status import render_status


def _step(title: str, command: str | None = None) -> None:
    out = console()
    out.print()
    out.rule(f"[bold]{title}")
    if command:
        out.print(f"$ cinder-promote --db-url $DB {command}")


def _reset(engine: Engine, **options: object) -> None:
    defaults: dict[str, object] = dict(backend_host=None, cluster=None, replication_status=None,
                                       enable_replication=False, active_backend_id=None,
                                       enable_service=False, dry_run=False)
    defaults.update(options)
    request = build_request(**defaults)  # type: ignore[arg-type]
    render_reset(reset_active_backend(engine, request, service_down_time=DEFAULT_SERVICE_DOWN_TIME))


@handled
def demo_command(
    ctx: typer.Context,
    db_path: Annotated[str, typer.Option("--db-path", help="Where to write the demo's SQLite database. An existing file is replaced only when it is an earlier demo database; anything else is refused and left untouched.")] = "cinder-promote-demo.sqlite",
    volumes: Annotated[int, typer.Option("--volumes", min=1, help="Volumes on the failed-over backends.")] = 3000,
    groups: Annotated[int, typer.Option("--groups", min=0, help="Groups on the failed-over backends.")] = 300,
    disaster_only: Annotated[bool, typer.Option("--disaster-only", help="Only build the disaster, for following the admin guide by hand.")] = False,
    keep_running: Annotated[bool, typer.Option("--keep-running", help=f"Build nothing: keep the running service ({story.HEALTHY}) of the demo database at --db-path up, refreshing its heartbeat every {story.HEARTBEAT_S} s as its cinder-volume would, until Ctrl-C. Without it, that service shows down {DEFAULT_SERVICE_DOWN_TIME} s after the demo was built.")] = False,
) -> None:
    """Build Cinder's database on embedded SQLite with the seed's disaster, then promote backend B."""
    out = console()
    if keep_running:
        print(f"keeping {story.HEALTHY} up in {db_path}: its heartbeat every {story.HEARTBEAT_S} s; Ctrl-C stops",
              file=sys.stderr, flush=True)
        try:
            story.keep_running(db_path, stop=threading.Event().wait)
        except Interrupted:
            pass  # Ctrl-C is how this one ends
        return
    db = story.build(db_path, volumes=volumes, groups=groups)
    out.print(f"DB={db.url}  ({db.volumes} volumes, {db.groups} groups, Cinder 29.0.0 schema)")
    out.print(story.__doc__.split("\n\n")[1].replace("\n", " "))
    if disaster_only:
        out.print(f"Now follow docs/admin-guide.md with: export CINDER_PROMOTE_DB_URL={db.url}")
        out.print(f"{story.HEALTHY} plays a running service for {DEFAULT_SERVICE_DOWN_TIME} s; to keep it up while you"
                  f" follow the guide, run in another terminal: cinder-promote demo --keep-running --db-path {db_path}")
        return
    engine = open_engine(db.url)
    try:
        _step("1. The disaster: Cinder says failed-over to backend-b", "status")
        render_status(collect(engine, service_down_time=DEFAULT_SERVICE_DOWN_TIME))

        _step("2. A running service is refused, with every reason, and nothing is written",
              f"reset-active-backend --backend-host {story.HEALTHY} --enable-replication")
        try:
            _reset(engine, backend_host=story.HEALTHY, enable_replication=True)
        except Refused as exc:
            out.print(f"refused (exit {exc.exit_code}): {exc.message}")
            for line in exc.details:
                out.print(f"  - {line}")

        _step("3. Promote B on the standalone backend: it now replicates to C",
              f"db reset_active_backend --backend-host {story.STANDALONE} --enable-replication")
        _reset(engine, backend_host=story.STANDALONE, enable_replication=True)

        _step("4. Promote the active-active cluster: the cluster row and every member together",
              f"reset-active-backend --cluster {story.CLUSTER} --enable-replication")
        _reset(engine, cluster=story.CLUSTER, enable_replication=True)

        _step("5. check: the volumes and groups still say failed-over; the driver's hook will fix them", "check")
        render_check(run_check(engine, service_down_time=DEFAULT_SERVICE_DOWN_TIME))

        _step("5b. Running the reset again changes nothing",
              f"reset-active-backend --cluster {story.CLUSTER} --enable-replication")
        _reset(engine, cluster=story.CLUSTER, enable_replication=True)

        driver = "cinder_promote.drivers.reference:ReferenceDriver"
        for number, selector, name in (("6", "--backend-host", story.STANDALONE), ("7", "--cluster", story.CLUSTER)):
            _step(f"{number}. The services start: the startup hook lets the driver pair every volume with C",
                  f"update-host-replication {selector} {name} --driver {driver} --driver-option replication_target=backend-c")
            standalone = selector == "--backend-host"
            render_hook(run_offline(engine, driver, {"replication_target": "backend-c"},
                                    backend_host=name if standalone else None, cluster=None if standalone else name,
                                    service_down_time=DEFAULT_SERVICE_DOWN_TIME))

        _step("8. B is the primary and replicates to C; the admin now thaws and re-enables the services", "status")
        render_status(collect(engine, service_down_time=DEFAULT_SERVICE_DOWN_TIME))
        _step("9. Nothing contradicts itself any more", "check")
        render_check(run_check(engine, service_down_time=DEFAULT_SERVICE_DOWN_TIME))
    finally:
        engine.dispose()
    out.print()
    out.print(f"Explore it yourself: cinder-promote --db-url {db.url} status")


def register(app: typer.Typer) -> None:
    app.command("demo", cls=Command)(demo_command)
