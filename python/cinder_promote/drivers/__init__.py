"""For driver authors: the bulk-update helper (`bulk`) and the reference driver
(`reference`); and, for the offline command, loading a driver by name."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import UsageError


def load_driver(spec: str, options: dict[str, str]) -> Any:
    """Import `module:Class` and build it with `options` as keyword arguments."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise UsageError(f"--driver {spec!r}: expected module:Class, e.g. cinder_promote.drivers.reference:ReferenceDriver")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--driver {spec!r}: cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise UsageError(f"--driver {spec!r}: {module_name!r} has no {class_name!r}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise UsageError(f"--driver {spec!r}: cannot build it with options {', '.join(sorted(options)) or '(none)'}: {exc}") from None


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--driver-option {pair!r}: expected key=value with a Python identifier as key")
        options[key] = value
    return options
