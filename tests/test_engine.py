"""The native module and its pure-Python twin: same results, same errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cinder_promote import _native, _reference
from cinder_promote import engine as core
from cinder_promote.errors import InvalidValue

FUNCTIONS = ("check_replication_status", "split_host", "check_backend_host")


def _outcome(module, name: str, *args):
    try:
        return ("ok", getattr(module, name)(*args))
    except InvalidValue as exc:
        return ("InvalidValue", str(exc))


def test_native_is_the_default_engine():
    assert core.current() == "native"
    assert core._current is _native


def test_native_module_matches_its_stub_and_twin():
    assert _native.__version__ == _reference.__version__
    assert _native.REPLICATION_STATUSES == _reference.REPLICATION_STATUSES
    assert _native.FENCE_STATUS == _reference.FENCE_STATUS == "updating"
    for name in FUNCTIONS:
        assert callable(getattr(_native, name)) and callable(getattr(_reference, name))


host_text = st.text(
    alphabet=st.one_of(st.sampled_from("@#%_'\\ \t\n\x00\x85\xa0\u2028abc.-"), st.characters()), max_size=260
)


@settings(max_examples=500)
@given(value=host_text)
def test_host_functions_agree(value):
    for name in ("split_host", "check_backend_host"):
        assert _outcome(_native, name, value) == _outcome(_reference, name, value)


@settings(max_examples=300)
@given(value=st.one_of(st.sampled_from(_reference.REPLICATION_STATUSES), st.text(max_size=20)), allow=st.booleans())
def test_status_check_agrees(value, allow):
    assert _outcome(_native, "check_replication_status", value, allow) == _outcome(
        _reference, "check_replication_status", value, allow
    )


def test_long_host_limit_counts_characters_not_bytes(both_engines):
    assert core.split_host("é" * 255)[0] == "é" * 255
    with pytest.raises(InvalidValue, match="longer than 255"):
        core.split_host("é" * 256)


@pytest.mark.parametrize(
    "value, parts",
    [
        ("node", ("node", None, None)),
        ("node@lvm", ("node", "lvm", None)),
        ("node@lvm#pool_1", ("node", "lvm", "pool_1")),
        ("o'neil@100%_x", ("o'neil", "100%_x", None)),
    ],
)
def test_split_host(both_engines, value, parts):
    assert core.split_host(value) == parts


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "invalid host '': it is empty"),
        ("a b", "invalid host 'a b': it contains whitespace or a control character"),
        ("a\x1b[2J", "invalid host 'a\\x1b[2J': it contains whitespace or a control character"),
        ("a@b@c", "invalid host 'a@b@c': it contains more than one '@'"),
        ("a#p@b", "invalid host 'a#p@b': '#' comes before '@'"),
        ("a@", "invalid host 'a@': a part around '@' or '#' is empty"),
    ],
)
def test_bad_hosts_are_named(both_engines, value, message):
    with pytest.raises(InvalidValue) as err:
        core.split_host(value)
    assert str(err.value) == message


def test_backend_host_is_not_a_pool(both_engines):
    with pytest.raises(InvalidValue, match="names a pool"):
        core.check_backend_host("node@lvm#pool")


def test_fence_status_is_reserved(both_engines):
    with pytest.raises(InvalidValue, match="reserved for the startup hook's fence"):
        core.check_replication_status("updating")
    assert core.check_replication_status("updating", allow_fence=True) == "updating"
    with pytest.raises(InvalidValue, match="expected one of enabled, disabled, not-capable"):
        core.check_replication_status("promoted")
