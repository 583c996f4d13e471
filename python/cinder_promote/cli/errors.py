"""The one mapping from failures to messages and exit codes.

Data goes to stdout, diagnostics to stderr. `--debug` adds the traceback;
locals are never shown, because URLs hold passwords. Exit codes: 0 done,
1 refused, 2 usage, 3 configuration or database, 70 a bug of cinder-promote,
128 + N killed by signal N (130 SIGINT, 143 SIGTERM), 141 the reader closed
the pipe (as SIGPIPE would).
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar, overload

import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..db.connect import mask_text
from ..errors import EXIT_BUG, EXIT_SIGNAL_BASE, EXIT_UNREACHABLE, CinderPromoteError, Interrupted
from .render import OutputFormat, print_json
from .signals import interruptible
from .state import CliState, state

F = TypeVar("F", bound=Callable[..., Any])

PROG = "cinder-promote"
EXIT_BROKEN_PIPE = EXIT_SIGNAL_BASE + 13  # SIGPIPE's number: what a shell shows for `yes | head`
# What an interrupted command left, and what to run next, unless the command says better.
NOTHING_WRITTEN = "nothing was written; run `cinder-promote status` to see the state"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _secret_free(text: str, cli: CliState | None) -> str:
    for url in cli.known_urls() if cli is not None else []:
        text = mask_text(text, url)
    return text


def report(exc: BaseException, cli: CliState | None, *, after_interrupt: str = NOTHING_WRITTEN) -> tuple[int, str, list[str]]:
    """Print a failure as the operator should see it; return its exit code, message and details."""
    if cli is not None and cli.debug:
        _say(_secret_free("".join(traceback.format_exception(exc)), cli))
    details: list[str] = []
    if isinstance(exc, Interrupted):
        code, message = exc.exit_code, f"{exc.message}: rolled back; {after_interrupt}"
    elif isinstance(exc, CinderPromoteError):
        code, message, details = exc.exit_code, exc.message, exc.details
    elif isinstance(exc, (DBAPIError, SQLAlchemyError)):
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        code, message = EXIT_UNREACHABLE, f"database error: {_secret_free(first, cli)}; the transaction was rolled back"
    else:
        code = EXIT_BUG
        message = (f"unexpected {type(exc).__name__}: {_secret_free(str(exc), cli)}: this is a bug of cinder-promote;"
                   " any open transaction was rolled back (rerun with --debug for the traceback)")
    _say(f"{PROG}: {'error: ' if not isinstance(exc, Interrupted) else ''}{message}")
    for line in details:
        _say(f"  - {line}")
    return code, message, details


def _quiet_broken_pipe() -> int:
    """The reader went away (`... | head`): say nothing, and keep Python's exit-time flush from failing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


@overload
def handled(func: F) -> F: ...
@overload
def handled(*, after_interrupt: str) -> Callable[[F], F]: ...


def handled(func: F | None = None, *, after_interrupt: str = NOTHING_WRITTEN) -> Any:
    """Run a command, turning every failure into its message and exit code.

    Every command takes the Typer context as `ctx`: it holds the global options.
    SIGINT and SIGTERM become `Interrupted` while it runs; `after_interrupt`
    says what the interruption left and what to run next. With `--format json`
    a failure is also a JSON object on stdout.
    """
    if func is None:
        return functools.partial(_handled, after_interrupt=after_interrupt)
    return _handled(func, after_interrupt=after_interrupt)


def _handled(func: F, *, after_interrupt: str) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx")
        cli = state(ctx) if ctx is not None else None
        try:
            with interruptible():
                value = func(*args, **kwargs)
                sys.stdout.flush()  # a closed pipe shows here, not in Python's exit-time flush
            return value
        except (typer.Exit, typer.Abort):
            raise
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise typer.Exit(_fail(exc, cli, kwargs, after_interrupt)) from None
            raise typer.Exit(_quiet_broken_pipe()) from None
        except (Exception, Interrupted) as exc:  # noqa: BLE001 - this is the one place that maps failures
            raise typer.Exit(_fail(exc, cli, kwargs, after_interrupt)) from None

    return wrapper  # type: ignore[return-value]


def _fail(exc: BaseException, cli: CliState | None, kwargs: dict[str, Any], after_interrupt: str) -> int:
    code, message, details = report(exc, cli, after_interrupt=after_interrupt)
    if kwargs.get("output") is OutputFormat.json:
        data: dict[str, Any] = {"error": {"exit_code": code, "message": message, "details": details}}
        if cli is not None and cli.database is not None:
            data = {"database": cli.database, **data}
        try:
            print_json(data)
            sys.stdout.flush()
        except BrokenPipeError:
            return _quiet_broken_pipe()
    return code
