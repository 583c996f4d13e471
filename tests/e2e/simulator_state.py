"""The storage simulator's state file: arrays (their volumes, freezes and hook calls) and
replication pairs, shared by every process of the deployment and by the tests, so every
change is made under an exclusive `flock`. Only the standard library: the tests read it
without Cinder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def array_state(path: str) -> Iterator[dict[str, Any]]:
    """The state file, read and written back under an exclusive lock."""
    with open(path + '.lock', 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {}
        state.setdefault('arrays', {})
        state.setdefault('pairs', {})
        yield state
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(tmp, path)


def array(state: dict[str, Any], name: str) -> dict[str, Any]:
    return state['arrays'].setdefault(name, {'volumes': {}, 'frozen': [], 'hook_calls': []})


def read_state(path: str) -> dict[str, Any]:
    """The state as it is now (empty before any backend started), without changing it."""
    with open(path + '.lock', 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            with open(path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {}
    state.setdefault('arrays', {})
    state.setdefault('pairs', {})
    return state
