"""cinder_patch/: the series makes real Cinder 29.0.0 use cinder-promote.

A venv holding `cinder==29.0.0` from PyPI, the series applied with `patch -p1` in its
site-packages and this project installed from the checkout is built (once, cached) by
scripts/cinder-patched-venv. Then:

- the series applies to a pristine Cinder exactly, reverts exactly, and is what the venv holds;
- `cinder-promote cinder-patch-status` tells a patched Cinder from an unpatched one;
- Cinder's own unit tests of the touched areas, the new ones included, pass with Cinder's runner
  (stestr), and the counts are recorded in .cache/cinder-patch-unit-tests.json;
- the series' tests pass in one process after upstream tests that leave green threads running;
- a patched cinder-volume boots (eventlet, `Service.create` + `start`, as `cinder-volume` does)
  against databases built by `cinder-manage db sync`, after the admin's real
  `cinder-manage db reset_active_backend`, and its driver's update_host_replication updates
  thousands of volumes through cinder-promote, off the eventlet hub.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cinder_promote.cinder_integration import PATCH_MARKERS
from cinder_promote.db import journal as journal_sql
from cinder_promote.db import queries, seed
from cinder_promote.fence import Lease, acquire
from cinder_promote.models import utcnow
from cinder_promote.target import resolve

sys.path.insert(0, str(Path(__file__).parent))
import scenario  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PATCH_DIR = REPO_ROOT / "cinder_patch"
VENV_SCRIPT = REPO_ROOT / "scripts" / "cinder-patched-venv"
RESULTS_FILE = REPO_ROOT / ".cache" / "cinder-patch-unit-tests.json"

# Cinder's own unit test modules that must pass on the patched tree (the list, plus the
# modules whose files the series changes, added from the patches themselves below).
REQUIRED_MODULES = (
    "cinder.tests.unit.test_cmd",
    "cinder.tests.unit.db.test_reset_backend",
    "cinder.tests.unit.volume.test_init_host",
    "cinder.tests.unit.volume.test_replication_manager",
    "cinder.tests.unit.objects.test_objects",
    "cinder.tests.unit.objects.test_service",
    "cinder.tests.unit.objects.test_cluster",
    "cinder.tests.unit.objects.test_fields",
    "cinder.tests.unit.test_service",
)

# Tests that pass in these modules on the pristine cinder 29.0.0 (stestr, measured): the patched
# tree must run at least as many, plus the new ones.
UPSTREAM_PASSES = {
    "cinder.tests.unit.test_cmd": 107,
    "cinder.tests.unit.db.test_reset_backend": 3,
    "cinder.tests.unit.volume.test_init_host": 12,
    "cinder.tests.unit.volume.test_replication_manager": 26,
    "cinder.tests.unit.objects.test_objects": 4,
    "cinder.tests.unit.objects.test_service": 16,
    "cinder.tests.unit.objects.test_cluster": 11,
    "cinder.tests.unit.objects.test_fields": 35,
    "cinder.tests.unit.test_service": 28,
    "cinder.tests.unit.objects.test_group": 22,
    "cinder.tests.unit.volume.test_driver": 47,
    "cinder.tests.unit.volume.drivers.test_rbd": 196,
}

pytestmark = pytest.mark.timeout(1200)


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONWARNINGS"] = "ignore"  # eventlet's deprecation banner
    env.update(kwargs.pop("env", {}))
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, check=False,
                          **kwargs)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def series() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (PATCH_DIR / "series").read_text().splitlines())
    return [line for line in lines if line]


def touched_files(patch: str) -> list[str]:
    return re.findall(r"^\+\+\+ b/(\S+)", (PATCH_DIR / patch).read_text(), flags=re.M)


def added_lines(patch: str) -> set[str]:
    return {line[1:] for line in (PATCH_DIR / patch).read_text().splitlines()
            if line.startswith("+") and not line.startswith("+++ ")}


@pytest.fixture(scope="session")
def patched_venv() -> Path:
    proc = _run(["bash", str(VENV_SCRIPT)], timeout=1800)
    assert proc.returncode == 0, f"scripts/cinder-patched-venv failed:\n{_tail(proc.stdout + proc.stderr)}"
    venv = Path(proc.stdout.split()[-1])
    assert (venv / "bin" / "cinder-manage").exists()
    return venv


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


# -- the series ---------------------------------------------------------------------------------


def test_series_lists_every_patch_in_order() -> None:
    names = series()
    assert names, "cinder_patch/series is empty"
    assert names == sorted(names), "the series is not in the order of its numbers"
    assert sorted(p.name for p in PATCH_DIR.glob("*.patch")) == sorted(names), "patch files and series differ"
    for name in names:
        text = (PATCH_DIR / name).read_text()
        assert text.startswith("Subject: [PATCH] "), f"{name} has no Subject header"
        files = touched_files(name)
        assert files and all(f.startswith("cinder/") for f in files), f"{name} touches {files}"
    readme = (PATCH_DIR / "README").read_text()
    for name in names:
        assert name in readme, f"cinder_patch/README does not describe {name}"


def _record(site: Path) -> dict[str, str]:
    record = next(site.glob("cinder-29.0.0.dist-info")) / "RECORD"
    with record.open(newline="") as fh:
        return {row[0]: row[1] for row in csv.reader(fh) if len(row) > 1 and row[1]}


def _wheel_digest(data: bytes, algo: str) -> str:
    return base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()


def test_series_applies_exactly_and_reverts_on_pristine_cinder(patched_venv: Path, tmp_path: Path) -> None:
    site = site_packages(patched_venv)
    pristine = patched_venv / ".cinder-pristine"
    record = _record(site)
    names = series()
    files = sorted({f for name in names for f in touched_files(name)})
    tree = tmp_path / "site"
    originals: dict[str, bytes | None] = {}
    for f in files:
        source = pristine / f
        originals[f] = source.read_bytes() if source.exists() else None
        if originals[f] is not None:
            # The pristine copy is the wheel's file, byte for byte.
            algo, digest = record[f].split("=", 1)
            assert _wheel_digest(originals[f], algo) == digest, f"{f} is not cinder 29.0.0's"
            (tree / f).parent.mkdir(parents=True, exist_ok=True)
            (tree / f).write_bytes(originals[f])
    for name in names:
        proc = _run(["patch", "-p1", "--forward", "--batch", "-d", str(tree), "-i", str(PATCH_DIR / name)])
        assert proc.returncode == 0, f"{name} does not apply:\n{proc.stdout}{proc.stderr}"
        assert "fuzz" not in proc.stdout and "offset" not in proc.stdout, f"{name} applies inexactly:\n{proc.stdout}"
    assert not list(tree.rglob("*.rej")) and not list(tree.rglob("*.orig"))
    # The venv holds exactly pristine + series.
    for f in files:
        assert (tree / f).read_bytes() == (site / f).read_bytes(), f"{f} in the venv is not pristine + series"
    for name in reversed(names):
        proc = _run(["patch", "-p1", "-R", "--batch", "-d", str(tree), "-i", str(PATCH_DIR / name)])
        assert proc.returncode == 0, f"{name} does not revert:\n{proc.stdout}{proc.stderr}"
    for f, original in originals.items():
        if original is None:
            assert not (tree / f).exists() or (tree / f).stat().st_size == 0
        else:
            assert (tree / f).read_bytes() == original, f"reverting the series does not restore {f}"


def test_patch_markers_are_lines_each_patch_adds(patched_venv: Path) -> None:
    assert list(PATCH_MARKERS) == series()
    pristine = patched_venv / ".cinder-pristine"
    for name, markers in PATCH_MARKERS.items():
        added = added_lines(name)
        for marker in markers:
            assert marker.path in touched_files(name), f"{name} does not touch {marker.path}"
            assert marker.text in added, f"{marker.text!r} is not a line that {name} adds"
            assert marker.text not in (pristine / marker.path).read_text().splitlines(), (
                f"{marker.text!r} is already in the pristine {marker.path}: it proves nothing")


def test_cinder_patch_status_command(patched_venv: Path, tmp_path: Path) -> None:
    cmd = str(patched_venv / "bin" / "cinder-promote")
    proc = _run([cmd, "cinder-patch-status", "--format", "json"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads(proc.stdout)
    assert status["state"] == "patched" and status["version"] == "29.0.0"
    assert [p["patch"] for p in status["patches"] if p["applied"]] == series()

    # A pristine Cinder, and one that carries only the first patch.
    site = site_packages(patched_venv)
    for kind in ("pristine", "partial"):
        fake_site = tmp_path / kind
        shutil.copytree(patched_venv / ".cinder-pristine" / "cinder", fake_site / "cinder")
        shutil.copytree(next(site.glob("cinder-29.0.0.dist-info")), fake_site / "cinder-29.0.0.dist-info")
        if kind == "partial":
            first = series()[0]
            proc = _run(["patch", "-p1", "--batch", "-d", str(fake_site), "-i", str(PATCH_DIR / first)])
            assert proc.returncode == 0, proc.stdout
        proc = _run([cmd, "cinder-patch-status", "--site-packages", str(fake_site), "--format", "json"])
        assert proc.returncode == 1, proc.stdout + proc.stderr
        status = json.loads(proc.stdout)
        applied = [p["patch"] for p in status["patches"] if p["applied"]]
        if kind == "pristine":
            assert status["state"] == "not patched" and applied == []
        else:
            assert status["state"] == "partially patched" and applied == series()[:1]
    proc = _run([cmd, "cinder-patch-status", "--site-packages", str(tmp_path / "nowhere")])
    assert proc.returncode == 3
    assert "no cinder package" in proc.stderr


# -- Cinder's own unit tests ------------------------------------------------------------------


def _modules() -> list[str]:
    modules = list(REQUIRED_MODULES)
    for name in series():
        for f in touched_files(name):
            if f.startswith("cinder/tests/unit/") and Path(f).name.startswith("test_"):
                module = f[: -len(".py")].replace("/", ".")
                if module not in modules:
                    modules.append(module)
    return modules


def _new_tests(venv: Path, module: str) -> list[str]:
    """The test methods that the series adds to `module`: defined after it, not before."""
    path = module.replace(".", "/") + ".py"
    pattern = re.compile(r"^    def (test_\w+)\(", flags=re.M)
    pristine = venv / ".cinder-pristine" / path
    before = set(pattern.findall(pristine.read_text())) if pristine.exists() else set()
    after = set(pattern.findall((site_packages(venv) / path).read_text()))
    return sorted(after - before)


def _run_module(venv: Path, module: str, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True)
    site = site_packages(venv)
    (workdir / ".stestr.conf").write_text(f"[DEFAULT]\ntest_path={site}/cinder/tests/unit\ntop_dir={site}\n")
    proc = _run([str(venv / "bin" / "stestr"), "run", "-n", module], cwd=workdir, timeout=900)
    last = subprocess.run(f"{venv}/bin/stestr last --subunit | {venv}/bin/subunit2csv", shell=True, cwd=workdir,
                          capture_output=True, text=True, timeout=120, check=False)
    results = {row["test"]: row["status"] for row in csv.DictReader(last.stdout.splitlines())}
    return {"returncode": proc.returncode, "results": results, "output": proc.stdout + proc.stderr}


def test_cinder_unit_tests_pass_on_the_patched_tree(patched_venv: Path, tmp_path: Path,
                                                     record_property: pytest.RecordProperty) -> None:
    modules = _modules()
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        runs = dict(zip(modules, pool.map(lambda m: _run_module(patched_venv, m, tmp_path / m), modules)))

    summary: dict[str, dict[str, int]] = {}
    problems = []
    for module, run in runs.items():
        statuses = list(run["results"].values())
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        summary[module] = counts
        passed = counts.get("success", 0)
        bad = {t: s for t, s in run["results"].items() if s != "success"}
        if run["returncode"] != 0 or bad or not passed:
            problems.append(f"{module}: exit {run['returncode']}, {counts}, not passing: {sorted(bad)[:10]}\n"
                            f"{_tail(run['output'], 40)}")
            continue
        new = _new_tests(patched_venv, module)
        missing = [t for t in new if not any(re.search(rf"\.{t}(_\w+)?$", test) for test in run["results"])]
        if missing:
            problems.append(f"{module}: the new tests {missing} did not run")
        # ddt multiplies some new tests; each new method counts at least once.
        if passed < UPSTREAM_PASSES.get(module, 1) + len(new):
            problems.append(f"{module}: only {passed} passed; upstream has {UPSTREAM_PASSES.get(module)} and the"
                            f" series adds {len(new)}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    record_property("cinder_unit_tests", json.dumps(summary, sort_keys=True))
    print("\n".join(f"{m}: {c}" for m, c in summary.items()))
    assert not problems, "\n\n".join(problems)
    assert set(REQUIRED_MODULES) <= set(summary)


# Upstream tests that leave green threads running for the rest of their process: they start a
# service and never stop it, so the fake transport's listener keeps polling with time.sleep.
LEAKING_UPSTREAM_TESTS = ("cinder.tests.unit.test_service.ServiceManagerTestCase.test_message_gets_to_manager",)

# Address space allowed to the guard's test process: a few times what it needs, far below what
# a runaway takes (the mocked time.sleep spun one to 21 GB).
GUARD_MEMORY_LIMIT = 3 * 1024**3


def _new_test_ids(venv: Path) -> list[str]:
    """The ids of every test the series adds (ddt's variants included), in module order."""
    modules = [m for m in _modules() if _new_tests(venv, m)]
    proc = _run([str(venv / "bin" / "python"), "-m", "testtools.run", "--list", *modules],
                cwd=site_packages(venv), timeout=300)
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
    names = {m: _new_tests(venv, m) for m in modules}
    return [test for test in proc.stdout.split()
            if any(test.startswith(module + ".") and re.search(rf"\.{name}(_\d+(_\w*)?)?$", test)
                   for module, new in names.items() for name in new)]


def test_series_tests_pass_after_upstream_tests_that_leak_green_threads(patched_venv: Path) -> None:
    """In one process, as a stestr worker runs them: the leaked listeners run whenever the hub
    does (the hook waits for its native thread through eventlet's tpool), so a series test that
    replaced time.sleep for the whole process would never end."""
    tests = _new_test_ids(patched_venv)
    assert any(".test_init_host.VolumeInitHostReplicationTestCase.test_hook_end_to_end" in t for t in tests)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (GUARD_MEMORY_LIMIT, GUARD_MEMORY_LIMIT))

    proc = _run([str(patched_venv / "bin" / "python"), "-m", "testtools.run", *LEAKING_UPSTREAM_TESTS, *tests],
                cwd=site_packages(patched_venv), env={"OS_TEST_TIMEOUT": "60"}, timeout=600,
                preexec_fn=limit_memory)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode} (negative: killed by that signal)\n{_tail(output)}"
    assert re.search(rf"^Ran {len(LEAKING_UPSTREAM_TESTS) + len(tests)} tests? in ", output, flags=re.M), _tail(output)
    assert re.search(r"^OK$", output, flags=re.M), _tail(output)


# -- booting a patched cinder-volume ----------------------------------------------------------------

BOOT_DRIVER = '''
"""Backend B, promoted to primary and replicating to C: a driver for booting a patched Cinder."""

import os

from eventlet import patcher

from cinder.volume import driver
from cinder_promote.drivers.reference import ReferenceDriver

native_threading = patcher.original('threading')
CALLS = []


class PromotedBackendDriver(driver.VolumeDriver):
    """Cinder's base driver, with the update_host_replication of cinder-promote's reference driver.

    Its stats say replication is not enabled: if init_host_with_rpc overwrote what the hook set,
    the service would end up 'disabled'.
    """

    VERSION = '1.0.0'
    SUPPORTS_ACTIVE_ACTIVE = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference = ReferenceDriver(replication_target='backend-c',
                                         fail=os.environ.get('BOOT_DRIVER_FAIL', ''))

    def do_setup(self, context):
        self.reference.do_setup(context)

    def check_for_setup_error(self):
        self.reference.check_for_setup_error()

    def _update_volume_stats(self):
        self._stats = {
            'volume_backend_name': 'lvm', 'vendor_name': 'cinder-promote',
            'driver_version': self.VERSION, 'storage_protocol': 'iSCSI',
            'replication_enabled': False,
            'pools': [{'pool_name': 'pool0', 'total_capacity_gb': 100000,
                       'free_capacity_gb': 100000, 'reserved_percentage': 0,
                       'QoS_support': False, 'replication_enabled': False}],
        }

    def get_volume_stats(self, refresh=False):
        if refresh or not self._stats:
            self._update_volume_stats()
        return self._stats

    def update_host_replication(self, context, replication_status, active_backend_id, volumes,
                                groups=None):
        CALLS.append({'thread': native_threading.get_ident(), 'status': replication_status,
                      'active_backend_id': active_backend_id, 'volumes': len(volumes),
                      'groups': len(groups or []), 'admin': bool(getattr(context, 'is_admin', False))})
        return self.reference.update_host_replication(
            context, replication_status, active_backend_id, volumes, groups)

    def create_volume(self, volume):
        return {}

    def delete_volume(self, volume):
        pass

    def create_export(self, context, volume, connector):
        return {}

    def ensure_export(self, context, volume):
        pass

    def remove_export(self, context, volume):
        pass

    def initialize_connection(self, volume, connector):
        return {'driver_volume_type': 'iscsi', 'data': {}}

    def terminate_connection(self, volume, connector, **kwargs):
        pass
'''

BOOT_SCRIPT = '''
"""Boot a patched cinder-volume service as cinder-volume does, and report in JSON.

usage: python boot.py CINDER_CONF HOST BACKEND [CLUSTER]
"""

from cinder import monkey_patch
monkey_patch.patch()  # eventlet, as cinder-volume

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from eventlet import patcher  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402

from cinder.common import config  # noqa: E402,F401
from cinder.common import constants  # noqa: E402
from cinder import objects  # noqa: E402
from cinder import rpc  # noqa: E402
from cinder import service  # noqa: E402

native_threading = patcher.original('threading')


def main():
    conf_file, host, backend = sys.argv[1:4]
    cluster = sys.argv[4] if len(sys.argv) > 4 else None
    objects.register_all()
    cfg.CONF([], project='cinder', default_config_files=[conf_file])
    logging.setup(cfg.CONF, 'cinder')
    rpc.init(cfg.CONF)
    server = service.Service.create(host=host, service_name=backend,
                                    binary=constants.VOLUME_BINARY,
                                    coordination=True, cluster=cluster)
    server.start()  # init_host (and the hook), RPC servers, init_host_with_rpc
    import promote_boot_driver
    manager = server.manager
    result = manager._host_replication_result
    print('BOOT-REPORT ' + json.dumps({
        'eventlet_patched': monkey_patch.is_patched(),
        'main_thread': native_threading.get_ident(),
        'driver_initialized': manager.driver.initialized,
        'hook_error': manager._host_replication_error,
        'hook': result.to_json() if result is not None else None,
        'calls': promote_boot_driver.CALLS,
    }), flush=True)
    server.stop()


if __name__ == '__main__':
    main()
    os._exit(0)
'''

HOST = "nodeb@lvm"
POOL_HOST = f"{HOST}#pool0"
# What a service's row says of its versions once it ran: Cinder refuses to start next to a
# service that never ran ("Liberty version"). 1.39 is unpatched 29.0.0, 1.40 the series.
UNPATCHED_NODE = {"rpc_current_version": "3.20", "object_current_version": "1.39"}
PATCHED_NODE = {"rpc_current_version": "3.20", "object_current_version": "1.40"}


class Boot:
    """A patched cinder-volume's configuration, and the two commands an admin runs."""

    def __init__(self, venv: Path, workdir: Path, url: str) -> None:
        self.venv, self.workdir, self.url = venv, workdir, url
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "promote_boot_driver.py").write_text(textwrap.dedent(BOOT_DRIVER))
        (workdir / "boot.py").write_text(textwrap.dedent(BOOT_SCRIPT))
        state = workdir / "state"
        state.mkdir(exist_ok=True)
        self.log = state / "cinder-volume.log"
        self.conf = workdir / "cinder.conf"
        esc = url.replace("$", "$$")  # oslo.config substitutes $name
        self.conf.write_text(textwrap.dedent(f"""\
            [DEFAULT]
            state_path = {state}
            log_dir = {state}
            log_file = cinder-volume.log
            transport_url = fake:/
            enabled_backends = lvm
            service_down_time = 60

            [database]
            connection = {esc}
            max_retries = 2
            retry_interval = 1

            [oslo_concurrency]
            lock_path = {state}

            [coordination]
            backend_url = file://{state}

            [lvm]
            volume_driver = promote_boot_driver.PromotedBackendDriver
            volume_backend_name = lvm
            """))

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([str(self.venv / "bin" / "cinder-manage"), "--config-file", str(self.conf), *args],
                    cwd=self.workdir, timeout=300)

    def boot(self, *, cluster: str | None = None, fail: bool = False) -> dict[str, Any]:
        cmd = [str(self.venv / "bin" / "python"), "boot.py", str(self.conf), HOST, "lvm"]
        if cluster:
            cmd.append(cluster)
        env = {"PYTHONPATH": str(self.workdir), "BOOT_DRIVER_FAIL": "raise" if fail else ""}
        proc = _run(cmd, cwd=self.workdir, env=env, timeout=600)
        reports = [line for line in proc.stdout.splitlines() if line.startswith("BOOT-REPORT ")]
        log = self.log.read_text() if self.log.exists() else ""
        assert proc.returncode == 0 and reports, (
            f"the boot failed (exit {proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}\n--- log ---\n{_tail(log)}")
        report = json.loads(reports[-1][len("BOOT-REPORT "):])
        report["log"] = log
        return report


def _default_volume_type(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id FROM volume_types WHERE name = '__DEFAULT__'")).scalar_one()


def _seed_promotion(engine: sa.Engine, *, replicated: int, not_capable: int) -> dict[str, int]:
    """Backend A was lost, the service failed over to B; B is promoted: the admin stopped,
    disabled and froze the service. Its volumes, some on other hosts, some deleted."""
    scenario.stopped_service(engine, HOST, **PATCHED_NODE)
    scenario.stopped_service(engine, "nodez@lvm", replication_status="failed-over", **UNPATCHED_NODE)
    vtype = _default_volume_type(engine)
    with engine.begin() as conn:
        seed.add_volumes(conn, (seed.volume_row(POOL_HOST, replication_status="failed-over", volume_type_id=vtype)
                                for _ in range(replicated)))
        seed.add_volumes(conn, (seed.volume_row(POOL_HOST, replication_status="not-capable", volume_type_id=vtype)
                                for _ in range(not_capable)))
        seed.add_volumes(conn, (seed.volume_row(POOL_HOST, replication_status="failed-over", volume_type_id=vtype,
                                                deleted=True) for _ in range(100)))
        seed.add_volumes(conn, (seed.volume_row("nodez@lvm#pool0", replication_status="failed-over",
                                                volume_type_id=vtype) for _ in range(200)))
        seed.add_groups(conn, (seed.group_row(POOL_HOST, replication_status="failed-over") for _ in range(40)))
    return {"replicated": replicated, "not_capable": not_capable}


def _volume_counts(engine: sa.Engine) -> dict[tuple, int]:
    """(host, deleted, replication_status, data matches the pair, extended status) -> count."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, host, deleted, replication_status, replication_driver_data, "
            "replication_extended_status FROM volumes")).all()
    counts: dict[tuple, int] = {}
    for r in rows:
        pair = r.replication_driver_data == f"backend-c:pair-{r.id}"
        key = (r.host, bool(r.deleted), r.replication_status, pair, r.replication_extended_status)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _service(engine: sa.Engine, host: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM services WHERE host = :h AND deleted = :d"),
                                 {"h": host, "d": False}).mappings().one())


def _groups(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT replication_status, count(*) FROM groups GROUP BY replication_status")).all()
    return {r[0]: r[1] for r in rows}


def test_boot_runs_update_host_replication(patched_venv: Path, cinder_url: str, tmp_path: Path) -> None:
    """The promotion, end to end, with real Cinder: reset, then a cinder-volume boot runs the hook."""
    engine = sa.create_engine(cinder_url)
    try:
        _seed_promotion(engine, replicated=3000, not_capable=600)
        before = _service(engine, HOST)
        boot = Boot(patched_venv, tmp_path / "boot", cinder_url)

        # The admin resets the service with cinder-manage, through cinder-promote.
        proc = boot.manage("db", "reset_active_backend", "--backend-host", HOST, "--enable-replication")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert re.search(r"replication_status\s*\|\s*failed-over\s*\|\s*enabled", proc.stdout), proc.stdout
        assert re.search(r"active_backend_id\s*\|\s*backend-b\s*\|\s*NULL", proc.stdout), proc.stdout
        reset = _service(engine, HOST)
        assert (reset["replication_status"], reset["active_backend_id"]) == ("enabled", None)
        assert reset["disabled"] and reset["frozen"], "the reset must not re-enable or thaw the service"
        assert reset["updated_at"] == before["updated_at"], "the reset wrote the heartbeat"

        # A second reset finds nothing to do; a running service would be refused (the boot below
        # heartbeats, so it comes after).
        again = boot.manage("db", "reset_active_backend", "--backend-host", HOST, "--enable-replication")
        assert again.returncode == 0 and "nothing to do" in again.stdout

        report = boot.boot()
    finally:
        engine.dispose()
    engine = sa.create_engine(cinder_url)
    try:
        assert report["eventlet_patched"], "the boot must run under eventlet, as cinder-volume does"
        assert report["driver_initialized"] and report["hook_error"] is None
        assert len(report["calls"]) == 1
        call = report["calls"][0]
        assert call == {"thread": call["thread"], "status": "enabled", "active_backend_id": None,
                        "volumes": 3600, "groups": 40, "admin": True}
        assert call["thread"] != report["main_thread"], "the hook ran on the eventlet hub's thread"
        hook = report["hook"]
        assert hook["outcome"] == "done" and hook["target"] == HOST
        assert hook["volumes"] == {"loaded": 3600, "updated": 3000}
        assert hook["groups"] == {"loaded": 40, "updated": 40}

        # The database shows the driver's updates, and nothing else changed.
        counts = _volume_counts(engine)
        assert counts == {
            (POOL_HOST, False, "enabled", True, "replicating to backend-c"): 3000,
            (POOL_HOST, False, "not-capable", False, None): 600,
            (POOL_HOST, True, "failed-over", False, None): 100,
            ("nodez@lvm#pool0", False, "failed-over", False, None): 200,
        }, counts
        assert _groups(engine) == {"enabled": 40}
        # The service: the status the hook set survived init_host_with_rpc (the driver's stats say
        # replication is disabled); the running service heartbeats.
        after = _service(engine, HOST)
        assert (after["replication_status"], after["active_backend_id"]) == ("enabled", None)
        assert after["updated_at"] > before["updated_at"]
        assert _service(engine, "nodez@lvm")["replication_status"] == "failed-over"
        journal = [(e["operation"], e["target"], e["state"]) for e in scenario.journal(engine)]
        assert journal == [("reset-active-backend", HOST, "done"), ("update-host-replication", HOST, "done")]
        assert "update_host_replication of driver PromotedBackendDriver for service nodeb@lvm:" in report["log"]
        assert "the replication status set by update_host_replication was kept" in report["log"]
    finally:
        engine.dispose()


def test_manage_reset_refuses_a_running_service(patched_venv: Path, sqlite_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url)
    try:
        scenario.running_service(engine, HOST, disabled=False)
        boot = Boot(patched_venv, tmp_path / "boot", sqlite_url)
        proc = boot.manage("db", "reset_active_backend", "--backend-host", HOST, "--enable-replication",
                           "--active-backend-id", "backend-c")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "running" in proc.stdout and "is not disabled" in proc.stdout
        assert "nothing was written" in proc.stdout
        row = _service(engine, HOST)
        assert (row["replication_status"], row["active_backend_id"]) == ("failed-over", "backend-b")
        assert scenario.journal(engine) == []

        bad = boot.manage("db", "reset_active_backend", "--backend-host", HOST, "--replication-status", "updating")
        assert bad.returncode == 2, bad.stdout + bad.stderr
        missing = boot.manage("db", "reset_active_backend", "--backend-host", "nohost@lvm")
        assert missing.returncode == 1 and "nohost@lvm" in missing.stdout
    finally:
        engine.dispose()


def test_boot_hook_failure_leaves_the_service_in_error(patched_venv: Path, sqlite_url: str, tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url)
    try:
        _seed_promotion(engine, replicated=500, not_capable=0)
        boot = Boot(patched_venv, tmp_path / "boot", sqlite_url)
        assert boot.manage("db", "reset_active_backend", "--backend-host", HOST, "--enable-replication").returncode == 0
        counts_before = _volume_counts(engine)

        report = boot.boot(fail=True)

        assert not report["driver_initialized"]
        assert len(report["calls"]) == 1, "the failed hook was retried"
        assert "the array did not answer" in report["hook_error"]
        assert _volume_counts(engine) == counts_before, "a failed hook wrote volumes"
        assert _groups(engine) == {"failed-over": 40}
        assert _service(engine, HOST)["replication_status"] == "error"
        entries = scenario.journal(engine)
        assert [(e["operation"], e["state"]) for e in entries] == [
            ("reset-active-backend", "done"), ("update-host-replication", "failed")]
        assert "the array did not answer" in entries[-1]["error"]
        assert re.search(r"ERROR cinder\.volume\.manager .*update_host_replication of driver PromotedBackendDriver"
                         r" failed for service nodeb@lvm, the driver will not be initialized: .*the array did not"
                         r" answer", report["log"]), _tail(report["log"])
    finally:
        engine.dispose()


def test_boot_member_of_a_fenced_cluster(patched_venv: Path, sqlite_url: str, tmp_path: Path) -> None:
    """Another member runs the hook for the cluster: this one joins, does not call its driver,
    waits for the holder to release the fence, then keeps what the holder's driver set
    (neither _ensure_cluster_exists nor init_host_with_rpc copies the fence meanwhile)."""
    cluster = "cluster@lvm"
    engine = sa.create_engine(sqlite_url)
    try:
        # nodea@lvm is in the cluster; nodeb@lvm (not clustered yet) joins it at this boot.
        with engine.begin() as conn:
            seed.add_cluster(conn, cluster, replication_status="enabled")
            seed.add_service(conn, "nodea@lvm", cluster_name=cluster, replication_status="enabled", **PATCHED_NODE)
        scenario.stopped_service(engine, HOST, replication_status="enabled", active_backend_id="backend-b",
                                 disabled=False, frozen=False, **PATCHED_NODE)
        vtype = _default_volume_type(engine)
        with engine.begin() as conn:
            seed.add_volumes(conn, (seed.volume_row(POOL_HOST, cluster_name=f"{cluster}#pool0",
                                                    replication_status="failed-over", volume_type_id=vtype)
                                    for _ in range(300)))
        with engine.connect() as conn:
            target = resolve(conn, cluster=cluster)
        lease = acquire(engine, target, holder="nodea:4242", lease_seconds=600)
        assert isinstance(lease, Lease), "the fence could not be taken"
        counts_before = _volume_counts(engine)
        seen_while_fenced: dict[str, Any] = {}

        def holder_releases() -> None:
            """nodea's hook: once the booting member has joined, its driver answers 'failed-over'."""
            deadline = utcnow() + timedelta(seconds=240)
            while utcnow() < deadline and _service(engine, HOST)["cluster_name"] != cluster:
                threading.Event().wait(0.2)
            threading.Event().wait(1.0)
            seen_while_fenced.update(_service(engine, HOST))
            with engine.begin() as conn:
                assert journal_sql.finish(conn, lease.journal_id, lease.holder, state=journal_sql.DONE, now=utcnow(),
                                          after={"replication_status": "failed-over", "active_backend_id": "backend-c",
                                                 "set_by_driver": ["active_backend_id", "replication_status"]})
                values = {"replication_status": "failed-over", "active_backend_id": "backend-c"}
                assert queries.set_replication(conn, "clusters", lease.row_id, expected_status="updating",
                                               values=values)
                queries.update_members(conn, cluster, values)

        releaser = threading.Thread(target=holder_releases)
        releaser.start()
        try:
            report = Boot(patched_venv, tmp_path / "boot", sqlite_url).boot(cluster=cluster)
        finally:
            releaser.join()

        assert report["driver_initialized"] and report["hook_error"] is None
        assert report["hook"]["outcome"] == "fenced" and report["hook"]["journal_id"] == lease.journal_id
        assert "the fence has since been released" in report["hook"]["message"]
        assert report["calls"] == [], "a member called its driver while another held the fence"
        assert seen_while_fenced["cluster_name"] == cluster
        assert (seen_while_fenced["replication_status"], seen_while_fenced["active_backend_id"]) == \
            ("enabled", "backend-b"), "the fence was copied into the joining member"
        member = _service(engine, HOST)
        assert (member["replication_status"], member["active_backend_id"]) == ("failed-over", "backend-c"), \
            "the holder's driver set them: init_host_with_rpc keeps them"
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT replication_status FROM clusters WHERE name = :n"),
                               {"n": cluster}).one()
        assert row.replication_status == "failed-over"
        assert _volume_counts(engine) == counts_before
    finally:
        engine.dispose()


# -- the lease under eventlet -------------------------------------------------------------------

LEASE_SCRIPT = r'''
import eventlet
eventlet.monkey_patch()
import sqlite3, sys
from datetime import datetime, timezone
from eventlet import patcher
from cinder_promote import cinder_integration as ci
from cinder_promote.db.connect import open_engine
from cinder_promote.hook import update_host_replication

native_sleep = patcher.original("time").sleep
path = sys.argv[1]
seen = {}

class BlockingDriver:
    def update_host_replication(self, context, status, backend, volumes, groups=None):
        native_sleep(2.5)  # blocks in native code: no green thread runs meanwhile in this thread
        lease = sqlite3.connect(path).execute(
            "SELECT lease_expires_at FROM cinder_promote_journal WHERE state = 'running'").fetchone()[0]
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        seen["renewed"] = datetime.fromisoformat(lease) > now
        return None, [], None

engine = open_engine("sqlite:///" + path)
result = ci.run_off_hub(update_host_replication, engine, BlockingDriver(), host="node-b@be", lease_seconds=1)
print(result.outcome, seen["renewed"])
'''


def test_lease_is_renewed_while_a_driver_blocks_under_eventlet(patched_venv: Path, sqlite_url: str,
                                                               tmp_path: Path) -> None:
    """cinder-volume is monkey-patched: the lease keeper must be a native thread, or a driver
    that blocks in native code lets the lease expire and another member takes the fence over."""
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        seed.add_service(conn, "node-b@be", now=utcnow() - timedelta(hours=1), replication_status="enabled")
    engine.dispose()
    script = tmp_path / "lease.py"
    script.write_text(LEASE_SCRIPT)
    proc = _run([str(patched_venv / "bin" / "python"), str(script), sa.make_url(sqlite_url).database], timeout=120)
    assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
    assert proc.stdout.split()[-2:] == ["done", "True"], proc.stdout
