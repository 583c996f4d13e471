"""Native threads, even inside an eventlet-patched process (cinder-volume).

A green thread runs only when the hub gets control; a helper that must make
progress while the caller blocks in native code (a driver's library, psycopg2
waiting on the server) has to be a real thread.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType


def native_threading() -> ModuleType:
    """The real `threading` module, even when eventlet has monkey-patched this process."""
    if "eventlet" in sys.modules:
        from eventlet import patcher

        if patcher.is_monkey_patched("thread"):
            return patcher.original("threading")
    return threading
