"""The exceptions of cinder-promote, and the exit code each one maps to.

The command line turns every one of these into a one-line message on stderr
and its exit code (SPEC section 4); nothing else decides exit codes.
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
# A bug: an exception that is none of ours (sysexits' EX_SOFTWARE), so that 1 keeps meaning "refused".
EXIT_BUG = 70
# Killed by a signal, the Unix convention: 128 + the signal's number (130 SIGINT, 143 SIGTERM).
EXIT_SIGNAL_BASE = 128


class CinderPromoteError(Exception):
    """Base class: a failure the operator can act on, with an exit code."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def __str__(self) -> str:
        return self.message


class InvalidValue(CinderPromoteError, ValueError):
    """A value given on the command line or by a driver is not acceptable (exit 2)."""

    exit_code = EXIT_USAGE


class UsageError(CinderPromoteError):
    """Options that contradict each other or are missing (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(CinderPromoteError):
    """The configuration could not be read, or names no database (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class DatabaseUnavailable(CinderPromoteError):
    """The database is unreachable, refused us, or is not Cinder's (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class Refused(CinderPromoteError):
    """A precondition failed; `details` lists every failed condition (exit 1)."""


class TargetNotFound(Refused):
    """No live cinder-volume service or cluster matches (exit 1)."""


class DriverAnswerError(CinderPromoteError):
    """The driver's answer to update_host_replication broke the contract (exit 1).

    `details` names each offending entry; nothing was written.
    """

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message, details=details)


class HookFailed(CinderPromoteError):
    """The startup hook failed: the driver raised, or its answer was refused (exit 1)."""


class ConcurrentChange(Refused):
    """A row changed between our read and our compare-and-swap write (exit 1)."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while a command ran (exit 128 + signal).

    A BaseException, like KeyboardInterrupt, so that a driver's `except
    Exception` does not swallow it: it unwinds every transaction (rollback)
    and the hook's failure path (the fence released to `error`).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.message = f"interrupted by {self.signal_name}"
        self.exit_code = EXIT_SIGNAL_BASE + signum
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message
