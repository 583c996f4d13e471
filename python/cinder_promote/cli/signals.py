"""SIGINT and SIGTERM while a command runs: unwind cleanly, then exit 128 + signal.

`systemctl stop` sends SIGTERM and Ctrl-C sends SIGINT. The first one raises
`Interrupted` in the main thread wherever it is: an open transaction rolls
back, and the hook's failure path releases its fence to `error` and journals
`interrupted by SIGTERM`. A second signal while that cleanup runs is ignored,
so that the cleanup finishes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ..errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted` for the duration of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (and receives signals)
        return
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if received:
            return  # already unwinding: let the rollback and the fence's release finish
        received.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
