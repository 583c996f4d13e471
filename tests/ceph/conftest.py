"""Fixtures for the Ceph RBD mirroring tests: three real clusters (scripts/ceph) and a patched
Cinder that can import Debian's rados and rbd bindings.

These tests are selected by `-m ceph` (`make e2e-ceph`); the default run leaves them out
(pyproject's addopts), since the clusters take a minute and about 3 GiB to start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ceph_rig import REPO_ROOT, SYSTEM_PYTHON, VENV_SCRIPT, Rig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ceph)


def _require_ceph() -> None:
    missing = [b for b in ("ceph-mon", "ceph-osd", "ceph-mgr", "rbd-mirror")
               if subprocess.run(["sh", "-c", f"command -v {b}"], capture_output=True).returncode]
    if missing:
        pytest.fail(f"Ceph is not installed ({', '.join(missing)}): run scripts/install-system-deps --with-ceph"
                    " (make e2e-ceph does)")


@pytest.fixture(scope="session")
def ceph_venv() -> Path:
    """The patched Cinder venv on Debian's Python with its site-packages (rados, rbd)."""
    _require_ceph()
    venv = REPO_ROOT / ".cache" / "cinder-ceph-venv"
    env = {**os.environ, "CINDER_PROMOTE_CINDER_PATCHED_VENV": str(venv), "CINDER_PROMOTE_PYTHON": SYSTEM_PYTHON,
           "CINDER_PROMOTE_SYSTEM_SITE": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["bash", str(VENV_SCRIPT)], capture_output=True, text=True, env=env, timeout=1800,
                          check=False)
    assert proc.returncode == 0, f"scripts/cinder-patched-venv failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return venv


@pytest.fixture
def ceph_rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """Clusters a, b and c, pool `volumes` mirrored a<->b; stopped (by pid) afterwards.

    Their folder is under the repository's .cache/ceph-tests, not pytest's tmp folders (which other
    pytest sessions of the machine prune while the daemons run); removed afterwards unless the
    test failed (its logs are then kept, and named).
    """
    _require_ceph()
    base = REPO_ROOT / ".cache" / "ceph-tests"
    base.mkdir(parents=True, exist_ok=True)
    rig = Rig(Path(tempfile.mkdtemp(prefix="rig-", dir=base)), {})
    failed = request.session.testsfailed
    proc = rig.run("start")
    try:
        assert proc.returncode == 0, f"scripts/ceph start failed:\n{proc.stderr[-4000:]}"
        confs = {name: rig.dir / name / "ceph.conf" for name in "abc"}
        yield Rig(rig.dir, confs)
    finally:
        stop = rig.run("stop")
        assert stop.returncode == 0, stop.stderr
        if request.session.testsfailed > failed:
            print(f"\nCeph logs kept in {rig.dir}/*/log", file=sys.stderr)
        else:
            shutil.rmtree(rig.dir, ignore_errors=True)
