"""The Ceph rig of scripts/ceph as the tests see it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
