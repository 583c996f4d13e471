"""The command line: `cinder-promote [global options] COMMAND ...`.

Global options go before the command, as with cinder-manage. Each command
module registers itself; commands are thin: parse, call one core function,
render, and let `errors.handled` map failures to exit codes.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Optional

import typer

from .. import __version__
from ..db import watch
from . import bench, check, demo, drivers, hook, journal, patch, reset, status
from .help import Group
from .state import CliState

app = typer.Typer(
    name="cinder-promote",
    help="Promote a Cinder replication target after a disaster, and keep Cinder's database in sync with it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks with locals would show passwords
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=Group,
)
db_app = typer.Typer(help="cinder-manage's `db` category: `db reset_active_backend` works unchanged.", no_args_is_help=True,
                     cls=Group)
app.add_typer(db_app, name="db")


def _version(value: bool) -> None:
    if value:
        print(f"cinder-promote {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config_file: Annotated[Optional[list[str]], typer.Option("--config-file", help="A cinder.conf to read; repeatable, later files win (oslo.config semantics).")] = None,
    config_dir: Annotated[Optional[str], typer.Option("--config-dir", help="A directory of *.conf files, read after the config files.")] = None,
    db_url: Annotated[Optional[str], typer.Option("--db-url", help="The database URL, in Cinder's form. Which database, first match wins: --db-url; the \\[database] connection of --config-file/--config-dir given here; the CINDER_PROMOTE_DB_URL environment variable; the cinder.conf found by oslo.config's default search (/etc/cinder/cinder.conf).", show_default=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log connections, statements (secrets masked) and their timings on stderr, and show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    ctx.obj = CliState(config_files=list(config_file or []), config_dir=config_dir, db_url=db_url, debug=debug)
    watch.set_notice(lambda message: print(f"cinder-promote: {message}", file=sys.stderr, flush=True))
    if debug:
        # Ours at DEBUG (connections, statements with their timings, secrets masked); libraries' warnings only.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("cinder_promote").setLevel(logging.DEBUG)


reset.register(app, db_app)
status.register(app)
hook.register(app)
check.register(app)
journal.register(app)
bench.register(app)
demo.register(app)
patch.register(app)
drivers.register(app)


def main() -> None:
    app()
