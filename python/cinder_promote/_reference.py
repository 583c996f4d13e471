"""The pure-Python twin of the native module `cinder_promote._native`.

Same functions, same signatures, same results and the same exceptions with the
same messages; the tests run both. Only `engine.py` chooses between them.
"""

from __future__ import annotations

import unicodedata

from .errors import InvalidValue

__version__ = "0.1.0"

REPLICATION_STATUSES = [
    "enabled",
    "disabled",
    "not-capable",
    "failing-over",
    "failover-error",
    "failed-over",
    "enabling",
    "disabling",
    "error",
    "updating",
]
FENCE_STATUS = "updating"
HOST_MAX_CHARS = 255

HostTuple = tuple[str, "str | None", "str | None"]


def _is_control(c: str) -> bool:
    return unicodedata.category(c) == "Cc"


def _quote(value: str) -> str:
    return "'" + "".join(f"\\x{ord(c):02x}" if _is_control(c) else c for c in value) + "'"


def _utf8(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"invalid {what}: it is not valid UTF-8") from None


def check_replication_status(value: str, allow_fence: bool = False) -> str:
    _utf8(value, "replication status")
    if value == FENCE_STATUS and not allow_fence:
        raise InvalidValue(
            f"replication status {_quote(value)} is reserved for the startup hook's fence"
            " and cannot be set by hand"
        )
    if value in REPLICATION_STATUSES:
        return value
    allowed = [s for s in REPLICATION_STATUSES if allow_fence or s != FENCE_STATUS]
    raise InvalidValue(f"invalid replication status {_quote(value)}: expected one of {', '.join(allowed)}")


def split_host(value: str) -> HostTuple:
    def bad(why: str) -> InvalidValue:
        return InvalidValue(f"invalid host {_quote(value)}: {why}")

    _utf8(value, "host")
    if not value:
        raise bad("it is empty")
    if len(value) > HOST_MAX_CHARS:
        raise bad("it is longer than 255 characters")
    if any(_is_control(c) or c.isspace() for c in value):
        raise bad("it contains whitespace or a control character")
    if value.count("@") > 1:
        raise bad("it contains more than one '@'")
    if value.count("#") > 1:
        raise bad("it contains more than one '#'")
    rest, sep, pool = value.partition("#")
    if "@" in rest:
        host, _, backend = rest.partition("@")
    elif "@" in value:
        raise bad("'#' comes before '@'")
    else:
        host, backend = rest, None
    pool_part = pool if sep else None
    if not host or backend == "" or pool_part == "":
        raise bad("a part around '@' or '#' is empty")
    return host, backend, pool_part


def check_backend_host(value: str) -> HostTuple:
    parts = split_host(value)
    if parts[2] is not None:
        raise InvalidValue(
            f"invalid backend host {_quote(value)}: '#pool' names a pool, not a volume service;"
            " give host@backend"
        )
    return parts
