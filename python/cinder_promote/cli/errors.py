"""The one mapping from failures to messages and exit codes (SPEC section 4).

Data goes to stdout, diagnostics to stderr. `--debug` adds the traceback;
locals are never shown, because URLs hold passwords.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..db.connect import mask_text
from ..errors import EXIT_REFUSED, EXIT_UNREACHABLE, CinderPromoteError
from .state import CliState, state

F = TypeVar("F", bound=Callable[..., Any])

PROG = "cinder-promote"


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def report(exc: BaseException, state: CliState | None) -> int:
    """Print a failure as the operator should see it and return its exit code."""

    def _secret_free(text: str) -> str:
        for url in state.known_urls() if state is not None else []:
            text = mask_text(text, url)
        return text

    if state is not None and state.debug:
        _say(_secret_free("".join(traceback.format_exception(exc))))
    if isinstance(exc, CinderPromoteError):
        _say(f"{PROG}: error: {exc.message}")
        for line in exc.details:
            _say(f"  - {line}")
        return exc.exit_code
    if isinstance(exc, (DBAPIError, SQLAlchemyError)):
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        _say(f"{PROG}: error: database error: {_secret_free(first)}; the transaction was rolled back")
        return EXIT_UNREACHABLE
    _say(f"{PROG}: error: unexpected {type(exc).__name__}: {_secret_free(str(exc))} (rerun with --debug for the traceback)")
    return EXIT_REFUSED


def handled(func: F) -> F:
    """Run a command, turning every failure into its message and exit code.

    Every command takes the Typer context as `ctx`: it holds the global options.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - this is the one place that maps failures
            ctx = kwargs.get("ctx")
            raise typer.Exit(report(exc, state(ctx) if ctx is not None else None)) from None

    return wrapper  # type: ignore[return-value]
