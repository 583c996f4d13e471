"""The pure-Python twin of the native module `cinder_promote._native`.

Same functions, same signatures, same results and the same exceptions with the
same messages; the tests run both. Only `engine.py` chooses between them.
"""

from __future__ import annotations

import gc
import itertools
import operator
import unicodedata
from collections.abc import Iterator
from typing import Any

from .errors import DriverAnswerError, InvalidValue

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


def _shown(c: str) -> str:
    code = ord(c)
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate: no terminal can show it
        return f"\\u{code:04x}"
    return f"\\x{code:02x}" if _is_control(c) else c


def _quote(value: str) -> str:
    return "'" + "".join(_shown(c) for c in value) + "'"


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


# --------------------------------------------------------------------------
# The update planner of the startup hook `update_host_replication` (SPEC 5).

MAX_PROBLEM_LINES = 50
MIN_MAX_PARAMS = 8
MIN_MIN_GROUP = 1

DRIVER_REPLICATION_STATUSES = frozenset(s for s in REPLICATION_STATUSES if s != FENCE_STATUS)
VOLUME_STATUSES = frozenset(
    {
        "creating",
        "available",
        "deleting",
        "error",
        "error_deleting",
        "error_managing",
        "managing",
        "attaching",
        "in-use",
        "detaching",
        "maintenance",
        "restoring-backup",
        "error_restoring",
        "reserved",
        "awaiting-transfer",
        "backing-up",
        "error_backing-up",
        "error_extending",
        "downloading",
        "uploading",
        "retyping",
        "extending",
    }
)
GROUP_STATUSES = frozenset(
    {"error", "available", "creating", "deleting", "deleted", "updating", "in-use", "error_deleting"}
)


class _Rules:
    """What a driver may write for one kind of row: column -> width, column -> valid values."""

    def __init__(self, widths: dict[str, int], choices: dict[str, frozenset[str]]) -> None:
        self.widths = widths
        self.choices = choices
        self.allowed = ", ".join(sorted(widths))
        # The order of the caller's tuples of current values: the columns' order here.
        self.position = {key: k for k, key in enumerate(widths)}


_SERVICE = _Rules(
    {"active_backend_id": 255, "replication_status": 255},
    {"replication_status": DRIVER_REPLICATION_STATUSES},
)
_VOLUME = _Rules(
    {
        "replication_status": 255,
        "replication_extended_status": 255,
        "replication_driver_data": 255,
        "provider_id": 255,
        "provider_location": 256,
        "provider_auth": 256,
        "status": 255,
    },
    {"replication_status": DRIVER_REPLICATION_STATUSES, "status": VOLUME_STATUSES},
)
_GROUP = _Rules(
    {"replication_status": 255, "status": 255},
    {"replication_status": DRIVER_REPLICATION_STATUSES, "status": GROUP_STATUSES},
)

# The order of the current values in `known_volumes` / `known_groups`.
VOLUME_KEYS: tuple[str, ...] = tuple(_VOLUME.widths)
GROUP_KEYS: tuple[str, ...] = tuple(_GROUP.widths)

_MISSING = object()

# The driver's answer is read as data, never through its own methods: lists
# and tuples by their stored items, dicts by their stored items (`dict.items`),
# strings by their text, subclasses included (overrides of `__iter__`,
# `__getitem__`, `items`, `__eq__`, `__hash__`, `__len__`... are not called).
# The native module reads it the same way.
_type_name_of = type.__dict__["__name__"].__get__  # a type's own name, whatever its metaclass says


def _type_name(value: object) -> str:
    name = _type_name_of(type(value))
    # As the native module shows a name that is not valid UTF-8.
    return name if _is_utf8(name) else name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _is(value: object, kind: type | tuple[type, ...]) -> bool:
    """isinstance by the object's real type (an object cannot pose as a str)."""
    return issubclass(type(value), kind)


def _text(value: Any) -> str:
    """The text of a str or of a str subclass, as a str."""
    return value if type(value) is str else str.__str__(value)


def _stored(sequence: Any) -> Iterator[Any]:
    return list.__iter__(sequence) if _is(sequence, list) else tuple.__iter__(sequence)


def _is_utf8(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _pair_problem(rules: _Rules, key: Any, value: Any) -> str | tuple[str, str | None]:
    """The one problem of a `key: value` pair of an update, or its column and value."""
    if not _is(key, str):
        return f"keys must be strings, got {_type_name(key)}"
    key = _text(key)
    width = rules.widths.get(key)
    if width is None:
        return f"key {_quote(key)} may not be updated; allowed: {rules.allowed}"
    if value is not None and not _is(value, str):
        return f"'{key}' must be a string or None, got {_type_name(value)}"
    text = None if value is None else _text(value)
    if text is not None and not _is_utf8(text):
        return f"'{key}' is not valid UTF-8"
    if text is not None and len(text) > width:
        return f"'{key}' is {len(text)} characters; the column holds {width}"
    choices = rules.choices.get(key)
    if choices is not None and text not in choices:
        return f"invalid {key} {'None' if text is None else _quote(text)}"
    return key, text


def _check_dict(rules: _Rules, updates: Any, problems: list[str]) -> dict[str, str | None]:
    """The columns and values of an updates dict, its problems appended (each key once)."""
    out: dict[str, str | None] = {}
    for key, value in dict.items(updates):
        checked = _pair_problem(rules, key, value)
        if isinstance(checked, str):
            problems.append(checked)
        elif checked[0] in out:  # a str subclass is its text: two keys may have the same
            problems.append(f"key '{checked[0]}' appears more than once")
        else:
            out[checked[0]] = checked[1]
    return out


def _check_service(service_update: Any, problems: list[str]) -> dict[str, str | None]:
    if service_update is None:
        return {}
    if not _is(service_update, dict):
        problems.append(f"service_update: expected a dict or None, got {_type_name(service_update)}")
        return {}
    found: list[str] = []
    service = _check_dict(_SERVICE, service_update, found)
    problems.extend(f"service_update: {problem}" for problem in found)
    return service


def _current_values(known: dict, name: str, ident: str, width: int) -> Any:
    """The current values of a live row in the caller's map (a tuple whose first `width`
    values are strings or None, in the order of VOLUME_KEYS / GROUP_KEYS), or _MISSING."""
    current = dict.get(known, ident, _MISSING)
    if current is _MISSING:
        return current
    at = f"{name}[{_quote(ident)}]"
    if not _is(current, tuple):
        raise TypeError(f"{at} must be a tuple of at least {width} values, got {_type_name(current)}")
    if tuple.__len__(current) < width:
        raise TypeError(f"{at} must be a tuple of at least {width} values, got a tuple of {tuple.__len__(current)}")
    values = []
    for k, value in enumerate(itertools.islice(tuple.__iter__(current), width)):
        if value is not None and not _is(value, str):
            raise TypeError(f"{at}[{k}] must be a string or None, got {_type_name(value)}")
        if value is not None and not _is_utf8(value):
            raise ValueError(f"{at}[{k}] is not valid UTF-8")
        values.append(None if value is None else _text(value))
    return tuple(values)


def _entry_shape(id_key: str, entry: Any, at: str, problems: list[str]) -> tuple[Any, Any] | None:
    """The id and the updates of an entry, keys told by their text in the dict's
    order (the first of each counts); None, its problems appended, otherwise."""
    ident = updates = _MISSING
    unexpected = []
    for key, value in dict.items(entry):
        text = _text(key) if _is(key, str) else None
        if text == id_key and ident is _MISSING:
            ident = value
        elif text == "updates" and updates is _MISSING:
            updates = value
        else:
            unexpected.append(key)
    if ident is not _MISSING and updates is not _MISSING and not unexpected:
        return ident, updates
    if ident is _MISSING:
        problems.append(f"{at}: missing '{id_key}'")
    if updates is _MISSING:
        problems.append(f"{at}: missing 'updates'")
    for key in unexpected:
        if _is(key, str):
            problems.append(f"{at}: unexpected key {_quote(_text(key))}")
        else:
            problems.append(f"{at}: unexpected key of type {_type_name(key)}")
    return None


def _check_entries(kind: str, answer: Any, known: dict, problems: list[str]) -> list[tuple[str, Any, dict]]:
    """Check a driver's list of updates; return (id, current values, updates)
    of the entries that passed."""
    name, id_key, rules = f"{kind}_updates", f"{kind}_id", _VOLUME if kind == "volume" else _GROUP
    if not _is(answer, (list, tuple)):
        problems.append(f"{name}: expected a list, got {_type_name(answer)}")
        return []
    first_at: dict[str, int] = {}
    accepted = []
    for i, entry in enumerate(_stored(answer)):
        at = f"{name}[{i}]"
        if not _is(entry, dict):
            problems.append(f"{at}: expected a dict with '{id_key}' and 'updates', got {_type_name(entry)}")
            continue
        shape = _entry_shape(id_key, entry, at, problems)
        if shape is None:
            continue
        ident, updates = shape
        before = len(problems)
        # The updates first, then the id's lookup (the native module's order).
        dict_problems: list[str] = []
        checked = _check_dict(rules, updates, dict_problems) if _is(updates, dict) else None
        valid_id = False
        current = _MISSING
        if not _is(ident, str):
            problems.append(f"{at}: {id_key} must be a string, got {_type_name(ident)}")
        elif not _is_utf8(ident):
            problems.append(f"{at}: {id_key} is not valid UTF-8")
        else:
            valid_id = True
            ident = _text(ident)
            current = _current_values(known, f"known_{kind}s", ident, len(rules.widths))
        if checked is None:
            problems.append(f"{at}: updates must be a dict, got {_type_name(updates)}")
        if valid_id:
            if current is _MISSING:
                problems.append(f"{at}: {kind} {_quote(ident)} is not a live {kind} of this backend")
            first = first_at.setdefault(ident, i)
            if first != i:
                problems.append(f"{at}: {kind} {_quote(ident)} appears more than once (first at [{first}])")
        problems.extend(f"{at}: {problem}" for problem in dict_problems)
        if len(problems) == before and checked is not None:
            accepted.append((ident, current, checked))
    return accepted


def _plan_kind(kind: str, accepted: list[tuple[str, Any, dict]], max_params: int, min_group: int) -> dict[str, Any]:
    # The final values of each entry, as sorted (column, value) pairs: what
    # differs from the row's current values (an equal value is not written).
    position = (_VOLUME if kind == "volume" else _GROUP).position
    finals = []
    unchanged = 0
    for ident, current, updates in accepted:
        changes = {key: value for key, value in updates.items() if value != current[position[key]]}
        if not changes:
            unchanged += 1
            continue
        if kind == "volume" and "status" in changes:
            changes["previous_status"] = current[position["status"]]
        finals.append((ident, tuple(sorted(changes.items()))))
    members: dict[tuple, list[str]] = {}
    for ident, values in finals:
        members.setdefault(values, []).append(ident)

    sets = []
    for values, ids in members.items():
        if len(ids) >= min_group:
            size = max(1, max_params - len(values))
            for start in range(0, len(ids), size):
                sets.append({"values": dict(values), "ids": ids[start : start + size]})

    partitions: dict[tuple[str, ...], list[tuple[str, tuple]]] = {}
    for ident, values in finals:
        if len(members[values]) < min_group:
            partitions.setdefault(tuple(column for column, _ in values), []).append((ident, values))
    rows = []
    for columns, part in partitions.items():
        size = max(1, max_params // (len(columns) + 1))
        for start in range(0, len(part), size):
            chunk = part[start : start + size]
            rows.append(
                {
                    "columns": list(columns),
                    "ids": [ident for ident, _ in chunk],
                    "values": [[values[c][1] for _, values in chunk] for c in range(len(columns))],
                }
            )
    return {"count": len(finals), "unchanged": unchanged, "sets": sets, "rows": rows}


def _limit(name: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def plan_updates(
    service_update: object,
    volume_updates: object,
    group_updates: object,
    known_volumes: dict[str, tuple[str | None, ...]],
    known_groups: dict[str, tuple[str | None, ...]],
    max_params: int,
    min_group: int,
) -> dict[str, Any]:
    """Check a driver's answer to `update_host_replication` and plan its writes.

    `known_volumes` and `known_groups` map the id of every live row of the
    backend to its current values of VOLUME_KEYS / GROUP_KEYS, as a tuple in
    that order. Every problem is collected; any problem refuses the whole
    answer with DriverAnswerError. A value equal to the row's current one is
    not written; an entry left with nothing to write counts as `unchanged`.
    The plan: the service's columns, and per kind the number of rows to write
    (`count`), of entries that change nothing (`unchanged`), set-based chunks
    of identical updates (`values`, `ids`) and column-wise chunks of the
    others (`columns`, `ids`, `values`), each within `max_params` bind
    parameters.
    """
    # No finalizer or gc callback runs during the call, from its first
    # allocation on (the native module pauses the collector too): both read
    # the answer as it was when the call began.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _plan(service_update, volume_updates, group_updates, known_volumes, known_groups, max_params, min_group)
    finally:
        if paused:
            gc.enable()


def _plan(service_update: object, volume_updates: object, group_updates: object, known_volumes: Any,
          known_groups: Any, max_params: Any, min_group: Any) -> dict[str, Any]:
    max_params, min_group = operator.index(max_params), operator.index(min_group)
    _limit("max_params", max_params, MIN_MAX_PARAMS)
    _limit("min_group", min_group, MIN_MIN_GROUP)
    for name, known in (("known_volumes", known_volumes), ("known_groups", known_groups)):
        if not _is(known, dict):
            raise TypeError(f"{name}: expected a dict, got {_type_name(known)}")
    problems: list[str] = []
    service = _check_service(service_update, problems)
    volumes = _check_entries("volume", volume_updates, known_volumes, problems)
    groups = _check_entries("group", [] if group_updates is None else group_updates, known_groups, problems)
    if problems:
        n = len(problems)
        details = problems[:MAX_PROBLEM_LINES]
        if n > MAX_PROBLEM_LINES:
            details.append(f"... and {n - MAX_PROBLEM_LINES} more problem(s)")
        raise DriverAnswerError(f"the driver's answer was refused: {n} problem(s); nothing was written", details)
    return {
        "service": service,
        "volumes": _plan_kind("volume", volumes, max_params, min_group),
        "groups": _plan_kind("group", groups, max_params, min_group),
    }
