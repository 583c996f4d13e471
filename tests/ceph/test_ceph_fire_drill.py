"""The seed's fire drill on real storage, through a whole Cinder deployment.

Three Ceph clusters (scripts/ceph): A's pool `volumes` mirrored with B's, C new. Cinder
(tests/e2e/deployment.py: RabbitMQ, MariaDB, cinder-api, cinder-scheduler, cinder-volume of the
patched Cinder 29.0.0 on Debian's Python, for the rados and rbd bindings) with one backend,
`cinder-1@ceph`: Cinder's RBD driver on A, replication_device B. Volumes are created through the
API (replicated and plain), data is written into them, A is destroyed, and then the admin guide's
chapter "Promoting a Ceph RBD backend" runs, every `shell` block of it in order, with the steps
that are not commands (stop the service, edit cinder.conf, start it) done here between them. C
must then hold a copy of every replicated volume with its data, and a failover to C must work.
Each phase's time is printed in the summary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.ceph_rig import CEPH_SCRIPT, REPO_ROOT, Rig, ceph_rig, ceph_venv  # noqa: F401 (fixtures)

sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
from deployment import Deployment  # noqa: E402

GUIDE = REPO_ROOT / "docs" / "admin-guide.md"
CHAPTER = "## Promoting a Ceph RBD backend"
HOST = "cinder-1@ceph"
DATA = Path(__file__).with_name("rbd_data.py")

pytestmark = [pytest.mark.ceph, pytest.mark.timeout(1800)]


@dataclass
class RBDBackend:
    """A cinder.conf section of Cinder's RBD driver (the duck type of deployment.Backend)."""

    ceph_conf: str
    target: str | None = None
    target_conf: str | None = None

    def section(self, name: str, state_file: Path) -> str:
        lines = [f"[{name}]",
                 "volume_driver = cinder.volume.drivers.rbd.RBDDriver",
                 f"volume_backend_name = {name}",
                 "rbd_pool = volumes",
                 "rbd_user = cinder",
                 f"rbd_ceph_conf = {self.ceph_conf}",
                 "replication_connect_timeout = 5"]
        if self.target:
            lines.append(f"replication_device = backend_id:{self.target},conf:{self.target_conf},user:cinder")
        return "\n".join(lines) + "\n"


def guide_blocks() -> list[str]:
    text = GUIDE.read_text()
    chapter = text[text.index(CHAPTER):]
    following = re.search(r"^## ", chapter[len(CHAPTER):], flags=re.M)
    if following:
        chapter = chapter[: len(CHAPTER) + following.start()]
    return re.findall(r"```shell\n(.*?)```", chapter, flags=re.S)


def test_guide_chapter_has_the_blocks_this_test_expects() -> None:
    """The drill below runs the chapter's blocks by position: they must be the ones it knows."""
    blocks = guide_blocks()
    assert len(blocks) == 8
    assert blocks[0].startswith("cinder failover-host cinder-1@ceph --backend_id b")
    assert "restart-mirror b" in blocks[1]
    assert blocks[2].startswith("cinder freeze-host")
    assert blocks[4].startswith("cinder-manage")
    assert blocks[7].startswith("cinder failover-host cinder-1@ceph --backend_id c")


PHASES: list[tuple[str, float]] = []


class Drill:
    def __init__(self, rig: Deployment, ceph: Rig, venv: Path) -> None:
        self.rig, self.ceph, self.venv = rig, ceph, venv
        self.blocks = guide_blocks()
        self.ran = 0

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.rig.cinder_env(), "CINDER_CONF": str(self.rig.conf),
                "PATH": f"{self.venv / 'bin'}:{os.environ['PATH']}", "PYTHONWARNINGS": "ignore",
                "CINDER_PROMOTE_CEPH_DIR": str(self.ceph.dir),
                **{f"CEPH_{n.upper()}_CONF": str(c) for n, c in self.ceph.confs.items()}}

    def guide(self, expect_index: int, timeout: float = 300) -> str:
        """The chapter's next `shell` block, run as typed (from the repository, for scripts/ceph)."""
        assert self.ran == expect_index, (self.ran, expect_index)
        block = self.blocks[self.ran]
        self.ran += 1
        start = time.monotonic()
        done = subprocess.run(["timeout", str(timeout), "bash", "-euo", "pipefail", "-c", block], cwd=REPO_ROOT,
                              env=self.env(), capture_output=True, text=True, check=False)
        PHASES.append((f"guide block {expect_index + 1}: {block.splitlines()[0][:70]}", time.monotonic() - start))
        assert done.returncode == 0, f"guide block {expect_index + 1} exited {done.returncode}:\n{block}\n" \
                                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def cinder(self, *args: str) -> str:
        done = subprocess.run([str(self.venv / "bin" / "cinder"), *args], env=self.env(), capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, f"cinder {' '.join(args)}: {done.stderr}"
        return done.stdout

    def data(self, command: str, cluster: str, names: list[str]) -> dict[str, str | None]:
        done = subprocess.run([str(self.venv / "bin" / "python"), str(DATA), command,
                               str(self.ceph.confs[cluster]), *names], env=self.env(), capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    def wait_data(self, cluster: str, sums: dict[str, str], timeout: float = 240) -> float:
        start = time.monotonic()
        while True:
            got = self.data("sum", cluster, list(sums))
            if got == sums:
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{cluster} did not catch up: {got} != {sums}"
            time.sleep(2)


def phase(name: str, start: float) -> None:
    PHASES.append((name, time.monotonic() - start))


@pytest.fixture
def drill(ceph_venv: Path, ceph_rig: Rig) -> Iterator[Drill]:
    admin_url = os.environ.get("CINDER_PROMOTE_TEST_MYSQL_URL")
    if not admin_url:
        pytest.fail("CINDER_PROMOTE_TEST_MYSQL_URL is not set: start the servers (eval \"$(scripts/servers start)\")")
    state = ceph_rig.dir / "deployment"
    rig = Deployment(state_dir=state, venv=ceph_venv, admin_url=admin_url,
                     backends={"ceph": RBDBackend(str(ceph_rig.confs["a"]), "b", str(ceph_rig.confs["b"]))})
    try:
        t = time.monotonic()
        rig.start(volumes=False)
        rig.start_volume("volume-ceph", "ceph")
        phase("deployment: RabbitMQ, database, cinder-api, -scheduler, -volume", t)
        yield Drill(rig, ceph_rig, ceph_venv)
    finally:
        rig.stop_all(drop=True)
        print("\n".join(f"{s:7.1f} s  {n}" for n, s in PHASES), file=sys.stderr)
        # The phases of the last run, for the report (pytest shows stderr only on failure).
        (REPO_ROOT / ".cache" / "ceph-fire-drill-phases.json").write_text(
            json.dumps([{"phase": n, "seconds": round(s, 1)} for n, s in PHASES], indent=1) + "\n")


def volume_rows(rig: Deployment) -> dict[str, sa.Row]:
    engine = sa.create_engine(rig.db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM volumes WHERE deleted = 0")).all()
    finally:
        engine.dispose()
    return {r.display_name: r for r in rows}


def service_row(rig: Deployment) -> sa.Row:
    engine = sa.create_engine(rig.db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT * FROM services WHERE host = :h AND deleted = 0"), {"h": HOST}).one()
    finally:
        engine.dispose()


def wait_for(what: str, check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_fire_drill_through_the_deployment(drill: Drill) -> None:
    rig = drill.rig
    # -- before the fire: volumes through the API, data in them, B caught up ------------------------
    t = time.monotonic()
    wait_for("cinder-1@ceph up", lambda: " up " in drill.cinder("service-list", "--binary", "cinder-volume"), 90)
    drill.cinder("type-create", "replicated")
    drill.cinder("type-key", "replicated", "set", "volume_backend_name=ceph", "replication_enabled=<is> True")
    drill.cinder("type-create", "plain")
    drill.cinder("type-key", "plain", "set", "volume_backend_name=ceph")
    names = {"r1": "replicated", "r2": "replicated", "r3": "replicated", "p1": "plain"}
    for name, vtype in names.items():
        drill.cinder("create", "--volume-type", vtype, "--name", name, "1")
    rows = wait_for("volumes available", lambda: (lambda r: r if len(r) == 4 and all(
        v.status == "available" for v in r.values()) else None)(volume_rows(rig)), 120)
    assert {n: r.replication_status for n, r in rows.items()} == {
        "r1": "enabled", "r2": "enabled", "r3": "enabled", "p1": "disabled"}
    images = {n: f"volume-{r.id}" for n, r in rows.items()}
    replicated = [images[n] for n in ("r1", "r2", "r3")]
    sums = drill.data("write", "a", list(images.values()))
    phase("volumes created through the API, 4 MiB written into each", t)
    t = time.monotonic()
    drill.wait_data("b", {i: sums[i] for i in replicated})
    phase("B caught up", t)
    # One more replicated volume that B never gets (its rbd-mirror stopped): lost with A.
    assert drill.ceph.run("stop-mirror", "b").returncode == 0
    drill.cinder("create", "--volume-type", "replicated", "--name", "r-lost", "1")
    lost = wait_for("r-lost available", lambda: (lambda r: r.get("r-lost") if r.get("r-lost") is not None and
                                                 r["r-lost"].status == "available" else None)(volume_rows(rig)), 120)
    images["r-lost"] = f"volume-{lost.id}"
    sums.update(drill.data("write", "a", [images["r-lost"]]))

    # -- the fire --------------------------------------------------------------------------------
    t = time.monotonic()
    assert drill.ceph.run("destroy", "a").returncode == 0
    assert not (drill.ceph.dir / "a").exists()
    phase("A destroyed (daemons killed, folder removed)", t)

    # -- the guide -------------------------------------------------------------------------------
    t = time.monotonic()
    drill.guide(0)                                  # failover-host to B
    phase("failover-host to B", t)
    rows = volume_rows(rig)
    assert {n: (r.status, r.replication_status) for n, r in rows.items()} == {
        "r1": ("available", "failed-over"), "r2": ("available", "failed-over"),
        "r3": ("available", "failed-over"), "p1": ("error", "not-capable"),
        "r-lost": ("error", "failover-error")}
    assert drill.data("sum", "b", replicated) == {i: sums[i] for i in replicated}   # readable on B
    assert drill.data("sum", "b", [images["r-lost"], images["p1"]]) == dict.fromkeys(
        (images["r-lost"], images["p1"]))                                            # lost with A

    t = time.monotonic()
    drill.guide(1)                                  # forget A on B
    phase("A's peer removed from B, B's rbd-mirror restarted", t)
    t = time.monotonic()
    drill.guide(2)                                  # freeze
    rig.stop("volume-ceph")
    drill.guide(3)                                  # disable, wait down
    phase("freeze, stop, disable, service seen down", t)
    rig.set_backend("ceph", ceph_conf=str(drill.ceph.confs["b"]), target="c",
                    target_conf=str(drill.ceph.confs["c"]))
    t = time.monotonic()
    drill.guide(4)                                  # cinder-manage db reset_active_backend
    service = service_row(rig)
    assert (service.replication_status, service.active_backend_id, service.frozen, service.disabled) == (
        "enabled", None, 1, 1)
    phase("cinder-manage db reset_active_backend", t)
    t = time.monotonic()
    rig.start_volume("volume-ceph", "ceph")
    out = drill.guide(5)                            # wait up + enabled, history, C's peers
    phase("start cinder-volume, the RBD driver's hook", t)
    log = rig.log("volume-ceph").read_text(errors="replace")
    assert "RBD driver: making pool volumes replicate to c" in log
    assert "Peered pool volumes of b with c both ways" in log
    rows = wait_for("replicated volumes enabled", lambda: (lambda r: r if all(
        r[n].replication_status == "enabled" for n in ("r1", "r2", "r3")) else None)(volume_rows(rig)), 60)
    assert (rows["p1"].status, rows["p1"].replication_status) == ("error", "not-capable")
    assert (rows["r-lost"].status, rows["r-lost"].replication_status) == ("error", "failover-error")
    history = json.loads(out[: out.index("\n}\n") + 3])["entries"]
    hook = history[0]
    assert (hook["operation"], hook["target"], hook["state"]) == ("update-host-replication", HOST, "done"), hook
    # The three replicated volumes written, the plain and the lost one left as they were.
    assert (hook["status_before"], hook["counts"]["volumes"], hook["counts"]["groups"]) == ("enabled", 3, 0), hook
    assert history[1]["operation"] == "reset-active-backend", history
    assert re.search(r"Name: b\s", out) and "rx-tx" in out, out   # C's pool has B as its two-way peer

    t = time.monotonic()
    drill.guide(6)                                  # thaw, enable, status, C's pool status
    service = service_row(rig)
    assert (service.replication_status, service.active_backend_id, service.frozen, service.disabled) == (
        "enabled", None, 0, 0)
    drill.wait_data("c", {i: sums[i] for i in replicated})
    assert drill.data("sum", "c", [images["p1"], images["r-lost"]]) == dict.fromkeys((images["p1"], images["r-lost"]))
    phase("thaw, enable; C caught up (checksums)", t)

    t = time.monotonic()
    drill.guide(7)                                  # failover-host to C
    phase("failover-host to C", t)
    service = service_row(rig)
    assert (service.replication_status, service.active_backend_id) == ("failed-over", "c")
    rows = volume_rows(rig)
    assert {n: rows[n].replication_status for n in ("r1", "r2", "r3")} == dict.fromkeys(("r1", "r2", "r3"),
                                                                                         "failed-over")
    assert drill.data("sum", "c", replicated) == {i: sums[i] for i in replicated}
    assert drill.ran == len(drill.blocks)
