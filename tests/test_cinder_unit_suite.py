"""scripts/cinder-unit-suite: how it judges the patched tree against the pristine one, and its
memory limit. (`make cinder-tests` runs the script itself on Cinder's whole unit suite.)"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cinder-unit-suite"


@pytest.fixture(scope="module")
def suite() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("cinder_unit_suite", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


LISTED = {
    "pristine": ["cinder.t.passes", "cinder.t.env_failure", "cinder.t.skipped", "cinder.t.changed"],
    "patched": ["cinder.t.passes", "cinder.t.env_failure", "cinder.t.skipped", "cinder.t.changed",
                "cinder.t.series_new"],
}


def test_a_clean_patched_run_has_no_problem(suite: ModuleType) -> None:
    patched = {"cinder.t.passes": "success", "cinder.t.env_failure": "fail", "cinder.t.skipped": "skip",
               "cinder.t.changed": "success", "cinder.t.series_new": "success"}
    scope = suite.pristine_scope(LISTED, patched, full=False)
    assert scope == ["cinder.t.env_failure", "cinder.t.skipped"]
    pristine = {"cinder.t.env_failure": "fail", "cinder.t.skipped": "skip"}
    environment, problems = suite.compare(LISTED, patched, pristine, scope)
    assert environment == ["cinder.t.env_failure", "cinder.t.skipped"]
    assert not any(problems.values()), problems


def test_every_kind_of_problem_is_found(suite: ModuleType) -> None:
    listed = {"pristine": LISTED["pristine"] + ["cinder.t.removed"], "patched": LISTED["patched"]}
    # The worker running cinder.t.changed crashed: no result, and stestr's own failure record.
    patched = {"cinder.t.passes": "skip", "cinder.t.env_failure": "fail", "cinder.t.skipped": "skip",
               "cinder.t.series_new": "fail", "process-returncode": "fail"}
    scope = suite.pristine_scope(listed, patched, full=True)
    pristine = {"cinder.t.passes": "success", "cinder.t.env_failure": "fail", "cinder.t.skipped": "skip",
                "cinder.t.changed": "success", "cinder.t.removed": "success"}
    environment, problems = suite.compare(listed, patched, pristine, scope)
    assert environment == ["cinder.t.env_failure", "cinder.t.skipped"]
    assert problems["regressed"] == ["cinder.t.passes: success on pristine, skip on patched",
                                     "cinder.t.changed: success on pristine, no result on patched",
                                     "cinder.t.removed: success on pristine, no result on patched"]
    assert problems["missing on patched"] == ["cinder.t.removed"]
    assert problems["series tests not passing"] == ["cinder.t.series_new: fail"]
    assert problems["unaccounted on patched"] == [
        "cinder.t.changed: no result (its worker crashed or stopped?)",
        "process-returncode: fail, not a listed test"]
    assert problems["unaccounted on pristine"] == []


def test_a_pristine_test_without_result_is_reported(suite: ModuleType) -> None:
    patched = dict.fromkeys(LISTED["patched"], "success") | {"cinder.t.env_failure": "fail"}
    scope = suite.pristine_scope(LISTED, patched, full=False)
    environment, problems = suite.compare(LISTED, patched, {}, scope)
    assert environment == ["cinder.t.env_failure"]
    assert problems["unaccounted on pristine"] == ["cinder.t.env_failure: no result (its worker crashed or stopped?)"]


def test_memory_limit_reaches_grandchildren(suite: ModuleType) -> None:
    """stestr's workers are children of stestr: the limit set on it must hold in them."""
    grandchild = f"{sys.executable} -c 'bytearray(1 << 30)'"
    proc = subprocess.run(["sh", "-c", grandchild], capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=suite.memory_limiter(512 * 1024**2))
    assert proc.returncode != 0 and "MemoryError" in proc.stderr, proc.stderr
    unlimited = subprocess.run(["sh", "-c", f"{sys.executable} -c 'bytearray(1 << 20)'"], timeout=60, check=False)
    assert unlimited.returncode == 0
