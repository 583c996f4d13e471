"""The update planner of the startup hook: the native module and its twin agree
on every answer a driver may give, and refuse bad ones with the same words."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cinder_promote import _native, _reference
from cinder_promote import engine as core
from cinder_promote.errors import DriverAnswerError

VOLUME_KEYS = [
    "replication_status",
    "replication_extended_status",
    "replication_driver_data",
    "provider_id",
    "provider_location",
    "provider_auth",
    "status",
]
ALLOWED_VOLUME_KEYS = ", ".join(sorted(VOLUME_KEYS))
SERVICE_KEYS = "allowed: active_backend_id, replication_status"
REFUSED = "the driver's answer was refused: {} problem(s); nothing was written"


def _ordered(value: Any) -> Any:
    """A plan with its dict orders made visible, for an exact comparison."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return (type(value).__name__, value)


def _outcome(module: Any, *args: Any) -> tuple:
    try:
        return ("ok", _ordered(module.plan_updates(*args)))
    except DriverAnswerError as exc:
        assert type(exc) is DriverAnswerError
        return ("DriverAnswerError", exc.message, exc.details)
    except (TypeError, ValueError) as exc:
        return (type(exc).__name__, str(exc))


def _agree(*args: Any) -> tuple:
    native, reference = _outcome(_native, *args), _outcome(_reference, *args)
    assert native == reference
    return native


# ----------------------------------------------------------- hypothesis

IDS = ["v1", "v2", "v3", "v4", "v5", "g1", "g2", "gone", "", "é\n", "x\ud800", "v1 "]
STATUSES = ["available", "in-use", "error", "creating", "deleted", "updating", "in use", "", "Available"]
REPLICATION = ["enabled", "disabled", "failed-over", "error", "updating", "not-capable", "Enabled"]

text_values = st.one_of(
    st.sampled_from(STATUSES + REPLICATION),
    st.text(max_size=6),
    st.sampled_from([n * "x" for n in (254, 255, 256, 257)] + [n * "é" for n in (255, 256, 257)]),
    st.sampled_from(["\ud800", "a\udcff", "\x1b[2J", "\x85"]),
)
values = st.one_of(
    st.none(), text_values, st.integers(), st.booleans(), st.binary(max_size=3), st.floats(allow_nan=False)
)
keys = st.one_of(
    st.sampled_from(VOLUME_KEYS + ["active_backend_id", "previous_status", "volume_id", "updates", "Status"]),
    st.text(max_size=4),
    st.sampled_from(["\ud800", "st\x00atus"]),
    st.integers(),
    st.none(),
    st.tuples(st.integers()),
)
update_dicts = st.dictionaries(keys, values, max_size=5)
good_volume_updates = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["available", "in-use", "error", "creating"]),
        "replication_status": st.sampled_from(REPLICATION[:4]),
        "provider_id": st.one_of(st.none(), st.sampled_from(["p1", "p2"])),
        "provider_location": st.one_of(st.none(), st.sampled_from(["l1", "é" * 256])),
        "replication_driver_data": st.one_of(st.none(), st.text(max_size=3)),
    },
)
# Current values that the answers often repeat, so that equal values are common.
known_values = st.one_of(st.none(), st.sampled_from(["available", "in-use", "error", "enabled", "p1", "l1", ""]))


def known_maps(width: int) -> st.SearchStrategy:
    rows = st.tuples(*[known_values] * width)
    odd_rows = st.one_of(
        rows, st.none(), st.text(max_size=2), st.lists(known_values, min_size=width, max_size=width),
        st.tuples(*[known_values] * (width + 1)), st.tuples(*[st.one_of(known_values, st.sampled_from([3, "\ud800"]))] * width),
    )
    return st.one_of(
        st.dictionaries(st.sampled_from(IDS), rows, max_size=8),
        # Rarely, a map our own caller got wrong.
        st.dictionaries(st.sampled_from(IDS), odd_rows, max_size=3),
    )


def current(status: str | None = None, **values: str | None) -> tuple[str | None, ...]:
    """A volume's current values (VOLUME_KEYS order): None unless given."""
    return tuple(status if key == "status" else values.get(key) for key in core.VOLUME_KEYS)


def known(**statuses: str | None) -> dict[str, tuple[str | None, ...]]:
    return {vid: current(status) for vid, status in statuses.items()}


def known_groups(**statuses: str | None) -> dict[str, tuple[str | None, ...]]:
    return {gid: (None, status) for gid, status in statuses.items()}
not_a_list = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.dictionaries(st.text(max_size=2), st.none()))


@st.composite
def answer_lists(draw: st.DrawFn, kind: str, updates: st.SearchStrategy = update_dicts) -> Any:
    """A driver's list: entries of every shape, some sharing one updates dict."""
    if draw(st.integers(0, 9)) == 0:
        return draw(not_a_list)
    pool = draw(st.lists(updates, min_size=1, max_size=4))
    id_key = f"{kind}_id"
    entry = st.one_of(
        st.builds(
            lambda i, d: {id_key: i, "updates": pool[d]},
            st.one_of(st.sampled_from(IDS), st.integers()),
            st.integers(0, len(pool) - 1),
        ),
        st.builds(lambda i, u: {id_key: i, "updates": u}, st.sampled_from(IDS), st.one_of(updates, values)),
        st.dictionaries(st.sampled_from([id_key, "updates", "volume_id", "group_id", "x"]) | keys, values, max_size=3),
        values,
    )
    entries = draw(st.lists(entry, max_size=12))
    return tuple(entries) if draw(st.booleans()) else entries


@st.composite
def well_formed(draw: st.DrawFn, kind: str) -> list:
    """A valid list: known ids once each, allowed keys and values, shared dicts."""
    ids = draw(st.lists(st.sampled_from(IDS[:8]), unique=True, max_size=8))
    updates = good_volume_updates if kind == "volume" else st.just({"status": "available"})
    pool = draw(st.lists(updates, min_size=1, max_size=3))
    return [{f"{kind}_id": i, "updates": pool[draw(st.integers(0, len(pool) - 1))]} for i in ids]


services = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["replication_status", "active_backend_id"]), st.sampled_from(REPLICATION + [None, "b"])
    ),
    st.dictionaries(keys, values, max_size=3),
    values,
)
limits = st.one_of(st.integers(-3, 40), st.sampled_from([2**31, 2**63, 2**70, -(2**70), True]))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    service=services,
    volumes=answer_lists("volume"),
    groups=st.one_of(st.none(), answer_lists("group")),
    known_volumes=known_maps(7),
    known_groups=known_maps(2),
    max_params=limits,
    min_group=limits,
)
def test_engines_agree_on_any_answer(service, volumes, groups, known_volumes, known_groups, max_params, min_group):
    _agree(service, volumes, groups, known_volumes, known_groups, max_params, min_group)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    volumes=well_formed("volume"),
    groups=well_formed("group"),
    known_volumes=st.fixed_dictionaries({i: st.tuples(*[known_values] * 7) for i in IDS[:8]}),
    max_params=st.integers(8, 14),
    min_group=st.integers(1, 4),
)
def test_engines_agree_on_plans(volumes, groups, known_volumes, max_params, min_group):
    known_groups = dict.fromkeys(IDS[:8], (None, "available"))
    service = {"replication_status": "enabled"}
    assert _agree(service, volumes, groups, known_volumes, known_groups, max_params, min_group)[0] == "ok"


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), shared=st.integers(1, 6), min_group=st.integers(1, 50))
def test_engines_agree_on_large_answers(seed, n, shared, min_group):
    import random

    rng = random.Random(seed)
    rows = {f"vol-{i}": current(rng.choice(["available", "in-use", None]), replication_status=rng.choice(
        ["enabled", "failed-over", None]), provider_id=str(rng.randrange(n // 3 + 1))) for i in range(n)}
    pool = [{"replication_status": rng.choice(["enabled", "failed-over"]), "status": "available"}
            for _ in range(shared)]
    answer = []
    for i in range(n):
        if rng.random() < 0.5:
            updates = pool[rng.randrange(shared)]
        else:
            updates = {"provider_id": str(rng.randrange(n // 3 + 1)), "replication_status": "enabled"}
            if rng.random() < 0.3:
                updates["status"] = rng.choice(["available", "error"])
        answer.append({"volume_id": f"vol-{i}", "updates": updates})
    _agree(None, answer, None, rows, {}, rng.choice([8, 99, 999, 32766]), min_group)


# -------------------------------------------------- the plan, explicitly

KNOWN = known(v1="available", v2="in-use", v3=None, v4="available")


def test_native_is_the_default_engine():
    assert core.current() == "native"
    assert core._current is _native
    assert "plan_updates" in _native.__all__


def test_a_plan(both_engines):
    shared = {"replication_status": "enabled", "status": "available"}
    plan = core.plan_updates(
        {"replication_status": "failed-over", "active_backend_id": "site-b"},
        [
            {"volume_id": "v1", "updates": shared},
            {"volume_id": "v2", "updates": shared},
            {"volume_id": "v3", "updates": {"provider_location": "iqn.b:3", "provider_id": None}},
            {"volume_id": "v4", "updates": shared},
            {"volume_id": "v5", "updates": shared},
        ],
        [{"group_id": "g1", "updates": {"status": "available"}}, {"group_id": "g2", "updates": {}}],
        {
            "v1": current("error"),
            "v2": current("in-use"),
            "v3": current(None, provider_id="p-old"),
            "v4": current("error"),
            "v5": current("available", replication_status="enabled"),  # holds the update already
        },
        known_groups(g1="error", g2="available"),
        8,
        2,
    )
    assert _ordered(plan) == _ordered(
        {
            "service": {"replication_status": "failed-over", "active_backend_id": "site-b"},
            "volumes": {
                "count": 4,
                "unchanged": 1,
                "sets": [
                    {
                        "values": {"previous_status": "error", "replication_status": "enabled", "status": "available"},
                        "ids": ["v1", "v4"],
                    }
                ],
                "rows": [
                    {
                        "columns": ["previous_status", "replication_status", "status"],
                        "ids": ["v2"],
                        "values": [["in-use"], ["enabled"], ["available"]],
                    },
                    {"columns": ["provider_id", "provider_location"], "ids": ["v3"], "values": [[None], ["iqn.b:3"]]},
                ],
            },
            "groups": {
                "count": 1,
                "unchanged": 1,
                "sets": [],
                "rows": [{"columns": ["status"], "ids": ["g1"], "values": [["available"]]}],
            },
        }
    )


def test_chunks_fit_the_parameter_limit(both_engines):
    rows = {f"v{i}": current("available", provider_auth="a") for i in range(20)}
    shared = {"replication_status": "enabled", "provider_auth": None}
    distinct = [{"volume_id": f"v{i}", "updates": {"provider_id": f"p{i}"}} for i in range(10, 20)]
    plan = core.plan_updates(None, [{"volume_id": f"v{i}", "updates": shared} for i in range(10)] + distinct,
                             None, rows, {}, 9, 3)
    # Sets: 9 parameters - 2 values = 7 ids per chunk; rows: 9 // (1 column + 1 id) = 4 rows per chunk.
    assert [len(s["ids"]) for s in plan["volumes"]["sets"]] == [7, 3]
    assert [len(r["ids"]) for r in plan["volumes"]["rows"]] == [4, 4, 2]
    assert plan["volumes"]["rows"][2] == {"columns": ["provider_id"], "ids": ["v18", "v19"], "values": [["p18", "p19"]]}
    # Never fewer than one id per chunk.
    wide = dict.fromkeys(VOLUME_KEYS[1:6], "x") | {"replication_status": "enabled", "status": "error"}
    plan = core.plan_updates(None, [vol("v1", **wide), vol("v2", **wide)], None, known(v1=None, v2=None), {}, 8, 1)
    # 8 parameters - 8 values (with previous_status) = 0.
    assert [s["ids"] for s in plan["volumes"]["sets"]] == [["v1"], ["v2"]]


def test_previous_status_is_set_when_the_status_changes(both_engines):
    back = {"status": "available"}
    plan = core.plan_updates(None, [{"volume_id": v, "updates": back} for v in KNOWN], None, KNOWN, {}, 100, 1)
    assert plan["volumes"]["sets"] == [
        {"values": {"previous_status": "in-use", "status": "available"}, "ids": ["v2"]},
        {"values": {"previous_status": None, "status": "available"}, "ids": ["v3"]},
    ]
    # v1 and v4 are available already: nothing to write, no previous_status.
    assert (plan["volumes"]["count"], plan["volumes"]["unchanged"]) == (2, 2)


def test_the_plan_hands_back_the_drivers_strings(both_engines):
    status = "".join(["en", "abled"])
    vid = "".join(["v", "1"])
    plan = core.plan_updates(None, [{"volume_id": vid, "updates": {"replication_status": status}}], None,
                             known(v1=None), {}, 8, 1)
    chunk = plan["volumes"]["sets"][0]
    assert chunk["ids"][0] is vid
    assert chunk["values"]["replication_status"] is status


def test_a_shared_dict_is_read_afresh_on_every_call(both_engines):
    shared = {"replication_status": "enabled"}
    answer = [{"volume_id": v, "updates": shared} for v in KNOWN]
    assert core.plan_updates(None, answer, None, KNOWN, {}, 8, 1)["volumes"]["sets"][0]["values"] == shared
    shared["replication_status"] = "disabled"
    assert core.plan_updates(None, answer, None, KNOWN, {}, 8, 1)["volumes"]["sets"][0]["values"] == shared


def test_str_subclasses_are_strings(both_engines):
    class Text(str):
        pass

    plan = core.plan_updates({Text("replication_status"): Text("enabled")},
                             [{Text("volume_id"): Text("v1"), Text("updates"): {Text("status"): Text("error")}}],
                             None, KNOWN, {}, 8, 1)
    assert plan["service"] == {"replication_status": "enabled"}
    assert plan["volumes"]["sets"] == [{"values": {"previous_status": "available", "status": "error"}, "ids": ["v1"]}]


# ------------------------------------------------------ refusals, by rule


def _refusal(service: Any = None, volumes: Any = (), groups: Any = None, known_volumes: Any = None,
             known_groups: Any = None) -> tuple[str, list[str]]:
    with pytest.raises(DriverAnswerError) as err:
        core.plan_updates(service, list(volumes) if isinstance(volumes, tuple) else volumes, groups,
                          KNOWN if known_volumes is None else known_volumes,
                          {"g1": (None, "available")} if known_groups is None else known_groups, 100, 2)
    if len(err.value.details) <= 50:
        assert err.value.message == REFUSED.format(len(err.value.details))
    return err.value.message, err.value.details


def _problems(**kwargs: Any) -> list[str]:
    return _refusal(**kwargs)[1]


def vol(vid: Any, **updates: Any) -> dict:
    return {"volume_id": vid, "updates": updates}


@pytest.mark.parametrize(
    "service, problem",
    [
        ([], "service_update: expected a dict or None, got list"),
        ({1: "x"}, "service_update: keys must be strings, got int"),
        ({"status": "x"}, f"service_update: key 'status' may not be updated; {SERVICE_KEYS}"),
        ({"replication_status": 1}, "service_update: 'replication_status' must be a string or None, got int"),
        ({"replication_status": None}, "service_update: invalid replication_status None"),
        ({"replication_status": "updating"}, "service_update: invalid replication_status 'updating'"),
        ({"replication_status": "Enabled\n"}, "service_update: invalid replication_status 'Enabled\\x0a'"),
        ({"active_backend_id": "é" * 256},
         "service_update: 'active_backend_id' is 256 characters; the column holds 255"),
        ({"active_backend_id": "b\ud800"}, "service_update: 'active_backend_id' is not valid UTF-8"),
        ({"\udcff": None}, f"service_update: key '\\udcff' may not be updated; {SERVICE_KEYS}"),
    ],
)
def test_service_rules(both_engines, service, problem):
    assert _problems(service=service) == [problem]


def test_service_values_that_are_allowed(both_engines):
    plan = core.plan_updates({"active_backend_id": None, "replication_status": "failed-over"}, [], None, {}, {}, 8, 1)
    assert plan["service"] == {"active_backend_id": None, "replication_status": "failed-over"}
    assert core.plan_updates({"active_backend_id": "é" * 255}, [], None, {}, {}, 8, 1)["service"]["active_backend_id"]
    assert core.plan_updates(None, (), None, {}, {}, 8, 1)["service"] == {}


@pytest.mark.parametrize(
    "volumes, problems",
    [
        ({"v1": {}}, ["volume_updates: expected a list, got dict"]),
        (None, ["volume_updates: expected a list, got NoneType"]),
        ((7,), ["volume_updates[0]: expected a dict with 'volume_id' and 'updates', got int"]),
        (({},), ["volume_updates[0]: missing 'volume_id'", "volume_updates[0]: missing 'updates'"]),
        (
            ({"volume_id": "v1", "updates": {}, "group_id": "g", 3: 4, "\ud800": 1},),
            [
                "volume_updates[0]: unexpected key 'group_id'",
                "volume_updates[0]: unexpected key of type int",
                "volume_updates[0]: unexpected key '\\ud800'",
            ],
        ),
        (({"volume_id": 5, "updates": {"status": "bogus"}},), [
            "volume_updates[0]: volume_id must be a string, got int",
            "volume_updates[0]: invalid status 'bogus'",
        ]),
        (({"volume_id": "v1", "updates": [("status", "error")]},),
         ["volume_updates[0]: updates must be a dict, got list"]),
        (({"volume_id": "v\udc80", "updates": {}},), ["volume_updates[0]: volume_id is not valid UTF-8"]),
        ((vol("gone\x1b"),), ["volume_updates[0]: volume 'gone\\x1b' is not a live volume of this backend"]),
        (
            (vol("v1"), vol("v2"), vol("v1"), vol("v1", status="error")),
            [
                "volume_updates[2]: volume 'v1' appears more than once (first at [0])",
                "volume_updates[3]: volume 'v1' appears more than once (first at [0])",
            ],
        ),
        (({"volume_id": "v1", "updates": {b"status": "x"}},), ["volume_updates[0]: keys must be strings, got bytes"]),
        (
            (vol("v1", previous_status="available"),),
            [f"volume_updates[0]: key 'previous_status' may not be updated; allowed: {ALLOWED_VOLUME_KEYS}"],
        ),
        ((vol("v1", provider_id=12),), ["volume_updates[0]: 'provider_id' must be a string or None, got int"]),
        ((vol("v1", provider_id="\ud800"),), ["volume_updates[0]: 'provider_id' is not valid UTF-8"]),
        ((vol("v1", provider_id="é" * 256),),
         ["volume_updates[0]: 'provider_id' is 256 characters; the column holds 255"]),
        ((vol("v1", provider_location="x" * 257),), [
            "volume_updates[0]: 'provider_location' is 257 characters; the column holds 256"
        ]),
        ((vol("v1", replication_status=None),), ["volume_updates[0]: invalid replication_status None"]),
        ((vol("v1", replication_status="updating"),), ["volume_updates[0]: invalid replication_status 'updating'"]),
        ((vol("v1", status=None),), ["volume_updates[0]: invalid status None"]),
        ((vol("v1", status="deleted"),), ["volume_updates[0]: invalid status 'deleted'"]),
    ],
)
def test_volume_rules(both_engines, volumes, problems):
    assert _problems(volumes=volumes) == problems


def test_values_at_their_limits_pass(both_engines):
    updates = {
        "provider_location": "é" * 256,
        "provider_auth": "x" * 256,
        "provider_id": "é" * 255,
        "replication_driver_data": "",
        "replication_extended_status": None,
        "replication_status": "failing-over",
        "status": "error_restoring",
    }
    plan = core.plan_updates(None, [vol("v1", **updates)], None, KNOWN, {}, 100, 1)
    assert plan["volumes"]["count"] == 1


def test_group_rules(both_engines):
    assert _problems(groups={"g1": {}}) == ["group_updates: expected a list, got dict"]
    g1 = {"status": "deleted", "provider_id": "x", "replication_status": "error"}
    g9 = {"status": "in use"}
    assert _problems(groups=[{"group_id": "g1", "updates": g1}, {"group_id": "g9", "updates": g9}]) == [
        "group_updates[0]: key 'provider_id' may not be updated; allowed: replication_status, status",
        "group_updates[1]: group 'g9' is not a live group of this backend",
        "group_updates[1]: invalid status 'in use'",
    ]
    assert _problems(groups=[{"volume_id": "g1", "updates": {}}]) == [
        "group_updates[0]: missing 'group_id'", "group_updates[0]: unexpected key 'volume_id'"
    ]


def test_every_problem_is_reported_in_order(both_engines):
    message, details = _refusal(
        service={"replication_status": "nope"},
        volumes=[vol("v1", status="nope"), "x", vol("v9")],
        groups=[{"group_id": "g9", "updates": {}}],
    )
    assert message == REFUSED.format(5)
    assert details == [
        "service_update: invalid replication_status 'nope'",
        "volume_updates[0]: invalid status 'nope'",
        "volume_updates[1]: expected a dict with 'volume_id' and 'updates', got str",
        "volume_updates[2]: volume 'v9' is not a live volume of this backend",
        "group_updates[0]: group 'g9' is not a live group of this backend",
    ]


def test_at_most_fifty_problems_are_listed(both_engines):
    message, details = _refusal(volumes=list(range(120)))
    assert message == REFUSED.format(120)
    assert len(details) == 51
    assert details[49] == "volume_updates[49]: expected a dict with 'volume_id' and 'updates', got int"
    assert details[50] == "... and 70 more problem(s)"
    _, details = _refusal(volumes=list(range(50)))
    assert len(details) == 50


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((7, 1), ValueError, "max_params must be at least 8, got 7"),
        ((8, 0), ValueError, "min_group must be at least 1, got 0"),
        ((-(2**70), 1), ValueError, f"max_params must be at least 8, got {-(2**70)}"),
        ((8.0, 1), TypeError, None),
    ],
)
def test_limits(both_engines, args, error, message):
    with pytest.raises(error) as err:
        core.plan_updates(None, [], None, {}, {}, *args)
    if message:
        assert str(err.value) == message
    assert core.plan_updates(None, [], None, {}, {}, 2**70, 2**70)["volumes"]["count"] == 0


def test_known_maps_must_be_dicts_of_current_values(both_engines):
    with pytest.raises(TypeError, match="^known_volumes: expected a dict, got list$"):
        core.plan_updates(None, [], None, [], {}, 8, 1)
    with pytest.raises(TypeError, match="^known_groups: expected a dict, got NoneType$"):
        core.plan_updates(None, [], None, {}, None, 8, 1)
    with pytest.raises(TypeError, match=r"^known_volumes\['v1'\] must be a tuple of at least 7 values, got str$"):
        core.plan_updates(None, [vol("v1")], None, {"v1": "available"}, {}, 8, 1)
    with pytest.raises(TypeError, match=r"^known_volumes\['v1'\] must be a tuple of at least 7 values, got list$"):
        core.plan_updates(None, [vol("v1")], None, {"v1": list(current())}, {}, 8, 1)
    with pytest.raises(TypeError, match=r"^known_groups\['g1'\] must be a tuple of at least 2 values, got a tuple of 1$"):
        core.plan_updates(None, [], [{"group_id": "g1", "updates": {}}], {}, {"g1": ("enabled",)}, 8, 1)
    with pytest.raises(TypeError, match=r"^known_volumes\['v1'\]\[6\] must be a string or None, got int$"):
        core.plan_updates(None, [vol("v1")], None, {"v1": current(3)}, {}, 8, 1)
    with pytest.raises(ValueError, match=r"^known_groups\['g1'\]\[1\] is not valid UTF-8$"):
        core.plan_updates(None, [], [{"group_id": "g1", "updates": {}}], {}, {"g1": (None, "\ud800")}, 8, 1)
    # Only the rows the answer names are read.
    assert core.plan_updates(None, [], None, {"v1": 3}, {}, 8, 1)["volumes"]["count"] == 0


class _RowLike(tuple):
    """A record-like tuple subclass: its own item access and iteration, which the planner must not call."""

    def __getitem__(self, index):
        raise AssertionError("the planner called __getitem__")

    def __iter__(self):
        raise AssertionError("the planner called __iter__")

    def __len__(self):
        raise AssertionError("the planner called __len__")


def test_current_values_are_the_first_of_a_longer_tuple(both_engines):
    """The hook hands over its records, whose first columns are VOLUME_KEYS / GROUP_KEYS:
    the values after them are not read, whatever they are, and a tuple subclass is read as
    the tuple it is."""
    rows = {"v1": current("available", replication_status="enabled") + (3, object(), b"x"),
            "v2": _RowLike(current("available") + ("more", 4))}
    plan = core.plan_updates(None, [vol("v1", replication_status="enabled", status="available"),
                                    vol("v2", replication_status="enabled")], None, rows, {}, 8, 1)
    assert (plan["volumes"]["count"], plan["volumes"]["unchanged"]) == (1, 1)
    assert [chunk["ids"] for chunk in plan["volumes"]["sets"] + plan["volumes"]["rows"]] == [["v2"]]


def test_the_keys_of_the_current_values(both_engines):
    assert core.VOLUME_KEYS == _native.VOLUME_KEYS == _reference.VOLUME_KEYS == tuple(VOLUME_KEYS)
    assert core.GROUP_KEYS == _native.GROUP_KEYS == _reference.GROUP_KEYS == ("replication_status", "status")


# ------------------------------------------------ what the rows hold already


def test_values_equal_to_the_rows_are_not_written(both_engines):
    rows = {
        "v1": current("available", replication_status="enabled", provider_id="p1"),
        "v2": current("available", replication_status="disabled", provider_id="p2"),
        "v3": current("in-use", provider_location=None),
        "v4": current("error", replication_status="enabled"),
    }
    answer = [
        vol("v1", replication_status="enabled", provider_id="p1", status="available"),  # all equal
        vol("v2", replication_status="enabled", provider_id="p2"),  # partly equal
        vol("v3", provider_location=None, provider_id="p3", status="in-use"),  # partly equal, None == None
        vol("v4", replication_status="enabled"),  # all equal
    ]
    plan = core.plan_updates(None, answer, None, rows, {}, 100, 1)
    assert plan["volumes"] == {
        "count": 2,
        "unchanged": 2,
        "sets": [
            {"values": {"replication_status": "enabled"}, "ids": ["v2"]},
            {"values": {"provider_id": "p3"}, "ids": ["v3"]},
        ],
        "rows": [],
    }


def test_partly_equal_entries_group_by_what_they_write(both_engines):
    # One shared dict; what each volume needs of it differs with what it holds.
    shared = {"replication_status": "enabled", "replication_extended_status": "ok"}
    rows = {f"v{i}": current("available", replication_status="enabled" if i % 2 else "error") for i in range(6)}
    rows["v5"] = current("available", replication_status="enabled", replication_extended_status="ok")
    plan = core.plan_updates(None, [vol(v, **shared) for v in rows], None, rows, {}, 100, 2)
    assert plan["volumes"]["unchanged"] == 1
    assert plan["volumes"]["count"] == 5
    assert plan["volumes"]["sets"] == [
        {"values": {"replication_extended_status": "ok", "replication_status": "enabled"}, "ids": ["v0", "v2", "v4"]},
        {"values": {"replication_extended_status": "ok"}, "ids": ["v1", "v3"]},
    ]


def test_an_equal_status_writes_no_previous_status(both_engines):
    rows = known(v1="error", v2="available")
    answer = [vol("v1", status="error", provider_id="p"), vol("v2", status="error", provider_id="p")]
    plan = core.plan_updates(None, answer, None, rows, {}, 100, 1)
    assert plan["volumes"]["sets"] == [
        {"values": {"provider_id": "p"}, "ids": ["v1"]},
        {"values": {"previous_status": "available", "provider_id": "p", "status": "error"}, "ids": ["v2"]},
    ]
    groups = core.plan_updates(None, [], [{"group_id": "g1", "updates": {"status": "error"}}], {},
                               known_groups(g1="error"), 100, 1)["groups"]
    assert (groups["count"], groups["unchanged"], groups["sets"], groups["rows"]) == (0, 1, [], [])


def test_equal_values_are_still_checked(both_engines):
    # The row holds what the contract refuses: an answer repeating it is refused all the same.
    rows = {"v1": current(None, replication_status="updating")}
    assert _problems(volumes=[vol("v1", replication_status="updating", status=None)], known_volumes=rows) == [
        "volume_updates[0]: invalid replication_status 'updating'",
        "volume_updates[0]: invalid status None",
    ]


# ------------------------------------------------------------ the GIL


def test_native_planning_releases_the_gil():
    """Another thread runs while a large plan is made: with a long switch
    interval, it can only run if the native code lets go of the GIL."""
    n = 100_000
    known = {f"volume-{i:08d}": current("available") for i in range(n)}
    answer = [{"volume_id": v, "updates": {"provider_id": v, "replication_status": "enabled"}} for v in known]
    ticks = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0)

    before = sys.getswitchinterval()
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        while ticks[0] == 0:
            time.sleep(0.001)
        sys.setswitchinterval(2.0)
        progressed = []
        for _ in range(3):
            time.sleep(0.001)  # come back with a fresh switch interval
            start = ticks[0]
            _native.plan_updates(None, answer, None, known, {}, 32766, 2)
            progressed.append(ticks[0] - start)
    finally:
        sys.setswitchinterval(before)
        stop.set()
        thread.join()
    assert all(p > 0 for p in progressed), progressed
