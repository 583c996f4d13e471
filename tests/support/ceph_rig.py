"""The Ceph rig of scripts/ceph as the tests see it, and the fixtures of tests/ceph.

The tests of tests/ceph are marked `ceph` and left out of the default run (pyproject's addopts),
since the clusters take a minute and about 1.3 GiB to start; `make e2e-ceph` runs them. Their
modules import the fixtures from here (no conftest.py of their own: a second module named
`conftest` would shadow tests/conftest.py for the modules that import from it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CEPH_SCRIPT = REPO_ROOT / "scripts" / "ceph"
VENV_SCRIPT = REPO_ROOT / "scripts" / "cinder-patched-venv"
# Debian's python3-rados/python3-rbd are built for Debian's interpreter.
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Rig:
    dir: Path
    confs: dict[str, Path]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CEPH_SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "CINDER_PROMOTE_CEPH_DIR": str(self.dir)}, check=False)


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
