"""`drivers`: the survey of every replicating volume driver of the real cinder==29.0.0, its bug
reports, and what check, status and reset-active-backend say about the configured backends' drivers.

The survey runs in the pristine Cinder venv's own Python (`--site-packages`), or in the patched
venv where cinder-promote is installed beside Cinder (the current interpreter).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from scenario import stopped_service
from support import cinder_schema
from test_cinder_patch import patched_venv, site_packages  # noqa: F401 - the patched venv's fixture

from cinder_promote.survey import REPLICATION_METHODS
from cinder_promote.survey.bug_reports import MARKER, SECTIONS

pytestmark = pytest.mark.timeout(900)

SURVEYED = ("failover_host", "failover", "failover_completed", "failover_replication", "update_host_replication")


@pytest.fixture
def dialect() -> str:
    return "sqlite"  # the database matters little here: check, status and reset are tested on all elsewhere


@pytest.fixture(scope="module")
def cinder_site() -> Path:
    return site_packages(cinder_schema.cinder_venv())


@pytest.fixture(scope="module")
def survey(cinder_site: Path) -> dict:
    return _survey(cinder_site)


def _survey(cinder_site: Path, *args: str) -> dict:
    from cinder_promote.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["drivers", "--site-packages", str(cinder_site), "-f", "json", *args])
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _by_class(survey: dict) -> dict[str, dict]:
    return {d["class"]: d for d in survey["drivers"]}


# -- an independent count, by Cinder's own means ------------------------------------------------------

INDEPENDENT = r'''
import json, os, sys, warnings
warnings.simplefilter("ignore")
os.chdir(sys.argv[1])  # Cinder's get_volume_drivers() walks the relative path cinder/volume/drivers
from cinder import objects
objects.register_all()
from cinder.interface import util
from cinder.volume import driver

registered = {d.cls for d in util.get_volume_drivers()}
def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)
in_tree = {c for c in subclasses(driver.BaseVD) if c.__module__.startswith("cinder.volume.drivers.")}
leaves = {c for c in in_tree if not any(s in in_tree for s in c.__subclasses__())}
def replicates(cls):  # Cinder's own test of an overridden method
    return not cls._is_base_method("failover_host") or not cls._is_base_method("failover")
print(json.dumps({
    "replicating": sorted(f"{c.__module__}.{c.__qualname__}" for c in registered | leaves if replicates(c)),
    "base_vd_subclasses": sorted(f"{c.__module__}.{c.__qualname__}" for c in in_tree),
}))
'''


def _independent(cinder_site: Path) -> dict:
    python = cinder_site.parents[2] / "bin" / "python"
    proc = subprocess.run([str(python), "-c", INDEPENDENT, str(cinder_site)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _source_definers(cinder_site: Path) -> set[str]:
    """module.Class of every class of cinder/volume/drivers whose body defines failover_host or failover,
    found in the text with regular expressions (no ast, no import)."""
    found = set()
    root = cinder_site / "cinder" / "volume" / "drivers"
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(cinder_site).with_suffix("").parts)
        current = None
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"class (\w+)\b", line)
            if m:
                current = m.group(1)
            elif re.match(r"\S", line):
                current = None
            elif current and re.match(r"    def (failover_host|failover)\(", line):
                found.add(f"{module}.{current}")
    return found


def test_the_survey_matches_an_independent_count_from_cinders_source(survey, cinder_site):
    independent = _independent(cinder_site)
    listed = sorted(d["driver"] for d in survey["drivers"])
    assert listed == independent["replicating"]
    assert len(listed) == survey["counts"]["drivers"] == 40  # cinder 29.0.0: 38 registered + 2 unregistered leaves
    assert survey["cinder"]["version"] == "29.0.0" and survey["cinder"]["patched"] is False
    # Where the methods come from: exactly the volume driver classes that define them in the text.
    definers = {d["methods"][m]["defined_in"] for d in survey["drivers"] for m in ("failover_host", "failover")
                if d["methods"][m]}
    in_text = _source_definers(cinder_site) & set(independent["base_vd_subclasses"])
    assert definers == in_text
    assert len({f["family"] for f in survey["families"]}) == 18
    assert not any(d["update_host_replication"] for d in survey["drivers"])


def _line_defines(cinder_site: Path, method: dict, name: str) -> bool:
    lines = (cinder_site / method["file"]).read_text().splitlines()
    return re.match(rf"\s*def {name}\(", lines[method["line"] - 1]) is not None


def test_rbd_pure_netapp_solidfire_and_powermax(survey, cinder_site):
    drivers = _by_class(survey)
    expected = {  # class: (defines failover_host, active-active, group replication, family)
        "RBDDriver": ("RBDDriver", True, False, "rbd"),
        "RBDISCSIDriver": ("RBDDriver", True, False, "rbd"),
        "PureISCSIDriver": ("PureBaseVolumeDriver", True, True, "pure"),
        "PureFCDriver": ("PureBaseVolumeDriver", True, True, "pure"),
        "PureNVMEDriver": ("PureBaseVolumeDriver", True, True, "pure"),
        "NetAppCmodeISCSIDriver": ("NetAppCmodeISCSIDriver", True, False, "netapp/dataontap"),
        "NetAppCmodeFibreChannelDriver": ("NetAppCmodeFibreChannelDriver", True, False, "netapp/dataontap"),
        "NetAppCmodeNfsDriver": ("NetAppCmodeNfsDriver", True, False, "netapp/dataontap"),
        "SolidFireDriver": ("SolidFireDriver", True, False, "solidfire"),
        "PowerMaxFCDriver": ("PowerMaxFCDriver", True, True, "dell_emc/powermax"),
        "PowerMaxISCSIDriver": ("PowerMaxISCSIDriver", True, True, "dell_emc/powermax"),
        "PowerMaxNVMETCPDriver": ("PowerMaxNVMEBaseDriver", True, True, "dell_emc/powermax"),
    }
    family_of = {d: f["family"] for f in survey["families"] for d in f["drivers"]}
    for name, (owner, active_active, groups, family) in expected.items():
        d = drivers[name]
        assert d["methods"]["failover_host"]["defined_in"].endswith("." + owner), name
        assert (d["active_active"], d["supports_active_active"]) == (active_active, True), name
        assert d["failover"] and d["failover_completed"], name
        assert d["group_replication"] is groups and d["failover_replication"] is groups, name
        assert d["update_host_replication"] is False and d["how"] == "imported", name
        assert "the admin must fix them by other means" in d["promotion"]
        assert family_of[d["driver"]] == family, name
        for method in SURVEYED[:4]:
            if d["methods"][method]:
                assert _line_defines(cinder_site, d["methods"][method], method), (name, method)
    assert drivers["PowerMaxNVMETCPDriver"]["registered"] is False  # a driver Cinder forgot to register
    assert drivers["RBDDriver"]["methods"]["failover_replication"] is None
    assert drivers["RBDDriver"]["file"] == "cinder/volume/drivers/rbd.py"
    # Standalone-only replication is told apart: Hitachi fails over a backend, not a cluster.
    assert drivers["HBSDFCDriver"]["active_active"] is False and drivers["HBSDFCDriver"]["failover_host"]


def test_reading_the_source_gives_the_same_facts_as_importing(survey, cinder_site):
    read = _survey(cinder_site, "--no-import")
    assert read["counts"]["read_from_source"] == len(read["drivers"]) == len(survey["drivers"])
    imported = {d["driver"]: d for d in survey["drivers"]}
    for d in read["drivers"]:
        twin = imported[d["driver"]]
        for key in ("methods", "supports_active_active", "active_active", "group_replication", "registered",
                    "ci_wiki_name", "file", "line", "update_host_replication"):
            assert d[key] == twin[key], (d["driver"], key)
    assert read["families"] == survey["families"]


OUT_OF_TREE = '''
"""Acme's out-of-tree Cinder driver, whose vendor SDK is not installed."""

import acme_array_sdk  # not guarded: without the SDK this module does not import

from cinder.volume.drivers import pure


class AcmeISCSIDriver(pure.PureISCSIDriver):
    SUPPORTS_ACTIVE_ACTIVE = False

    def failover_host(self, context, volumes, secondary_id=None, groups=None):
        return acme_array_sdk.failover(volumes)


class AcmeReadyDriver(AcmeISCSIDriver):
    def update_host_replication(self, context, replication_status, active_backend_id, volumes, groups=None):
        return None, [], []
'''


@pytest.fixture
def out_of_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "oot" / "acme_cinder"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "driver.py").write_text(textwrap.dedent(OUT_OF_TREE))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "oot"))  # as cinder-volume would find it
    return package / "driver.py"


def test_a_driver_whose_vendor_library_is_missing_is_still_surveyed(survey, cinder_site, out_of_tree):
    # Cinder's own Pure driver: its SDK is not installed in the venv, and its module still imports.
    python = cinder_site.parents[2] / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('pypureclient'))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None"
    assert _by_class(survey)["PureISCSIDriver"]["how"] == "imported"

    # An out-of-tree driver whose module does not import: read from its source, through Cinder's.
    named = _survey(cinder_site, "--driver", "acme_cinder.driver.AcmeISCSIDriver",
                    "--driver", "acme_cinder.driver.AcmeReadyDriver")["named"]
    acme, ready = named
    assert acme["how"] == ready["how"] == "read"
    assert "No module named 'acme_array_sdk'" in acme["import_error"]
    pure = _by_class(survey)["PureISCSIDriver"]["methods"]
    lines = out_of_tree.read_text().splitlines()
    line_of = {name: next(i + 1 for i, text in enumerate(lines) if f"def {name}(" in text)
               for name in ("failover_host", "update_host_replication")}
    assert acme["methods"]["failover_host"] == {"defined_in": "acme_cinder.driver.AcmeISCSIDriver",
                                                "file": "acme_cinder/driver.py", "line": line_of["failover_host"]}
    for method in ("failover", "failover_completed", "failover_replication"):
        assert acme["methods"][method] == pure[method]  # inherited from Cinder's PureBaseVolumeDriver
    assert acme["supports_active_active"] is False and acme["active_active"] is False
    assert acme["group_replication"] and not acme["update_host_replication"]
    assert ready["update_host_replication"] is True and ready["promotion"].startswith("ready")
    assert ready["methods"]["update_host_replication"]["line"] == line_of["update_host_replication"]


def test_a_patched_basevd_subclass_implementing_the_hook_is_ready(patched_venv):  # noqa: F811
    proc = subprocess.run(
        [str(patched_venv / "bin" / "cinder-promote"), "drivers", "--format", "json"],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tree = json.loads(proc.stdout)
    assert tree["cinder"]["patched"] is True and tree["cinder"]["version"] == "29.0.0"
    # BaseVD's documented placeholder is not an implementation; patch 0006's RBD driver (and the
    # RBD iSCSI driver, which inherits its replication) are the series' only drivers with the hook.
    assert len(tree["drivers"]) == 40
    assert sorted(d["class"] for d in tree["drivers"] if d["update_host_replication"]) == [
        "RBDDriver", "RBDISCSIDriver"]

    hook_driver = "cinder.tests.unit.volume.test_init_host.FakeHostReplicationDriver"
    proc = subprocess.run(
        [str(patched_venv / "bin" / "cinder-promote"), "drivers", "--driver", hook_driver, "-f", "json"],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [named] = json.loads(proc.stdout)["named"]
    assert named["is_volume_driver"] and named["how"] == "imported"
    assert named["update_host_replication"] is True and named["promotion"].startswith("ready")
    assert named["methods"]["update_host_replication"]["defined_in"] == hook_driver
    assert named["methods"]["update_host_replication"]["file"] == "cinder/tests/unit/volume/test_init_host.py"


def test_bug_reports(survey, cinder_site, tmp_path, cli):
    folder = tmp_path / "bugs"
    result = cli("drivers", "--site-packages", str(cinder_site), "--bug-reports", str(folder), "-f", "json")
    assert result.exit_code == 0, result.stderr
    reports = json.loads(result.stdout)["bug_reports"]
    families = {f["family"]: f for f in survey["families"]}
    assert sorted(r["family"] for r in reports) == sorted(families) and len(reports) == 18
    drivers = {d["driver"]: d for d in survey["drivers"]}
    for report in reports:
        text = Path(report["file"]).read_text()
        assert text.startswith(MARKER + "\n# " + report["title"] + "\n")
        positions = [text.index(f"\n## {section}\n") for section in SECTIONS]
        assert positions == sorted(positions), report["file"]
        assert "cinder-manage db reset_active_backend --backend-host" in text
        members = [drivers[d] for d in families[report["family"]]["drivers"]]
        for d in members:
            assert f"`{d['class']}`" in text
            for name in REPLICATION_METHODS:
                method = d["methods"][name]
                if method is None:
                    continue
                owner = method["defined_in"].rpartition(".")[2]
                row = f"| `{name}` | "
                assert row in text and f"`{owner}` | `{method['file']}:{method['line']}` |" in text, (report, name)
                assert _line_defines(cinder_site, method, name)
        quoted = set(re.findall(r"^\| `(\w+)` \| [^|]* \| `\w+` \| `", text, re.M))
        assert quoted == {n for d in members for n in REPLICATION_METHODS if d["methods"][n]}, report["file"]
    rbd = (folder / "rbd.md").read_text()
    assert "failover_replication" not in rbd and "RBDISCSIDriver" in rbd
    assert "`failover_replication` | group replication" in (folder / "pure.md").read_text()

    # Again into the same folder: its own files are rewritten.
    assert cli("drivers", "--site-packages", str(cinder_site), "--bug-reports", str(folder)).exit_code == 0
    # Never a file it did not write: refused, nothing written.
    other = tmp_path / "other"
    other.mkdir()
    (other / "pure.md").write_text("my notes\n")
    result = cli("drivers", "--site-packages", str(cinder_site), "--bug-reports", str(other))
    assert result.exit_code == 1
    assert "not written by cinder-promote" in result.stderr and "pure.md exists" in result.stderr
    assert sorted(p.name for p in other.iterdir()) == ["pure.md"]
    assert (other / "pure.md").read_text() == "my notes\n"


def test_without_cinder(cli, tmp_path):
    result = cli("drivers")  # this test venv has no Cinder
    assert result.exit_code == 3 and "Cinder is not installed in this Python" in result.stderr
    result = cli("drivers", "--site-packages", str(tmp_path))
    assert result.exit_code == 3 and "no cinder package in" in result.stderr


def _conf(tmp_path: Path, url: str) -> Path:
    conf = tmp_path / "cinder.conf"
    conf.write_text(textwrap.dedent(f"""\
        [DEFAULT]
        host = node-b
        enabled_backends = ceph, acme, lvm, typo

        [database]
        connection = {url}

        [ceph]
        volume_driver = cinder.volume.drivers.rbd.RBDDriver

        [acme]
        volume_driver = acme_cinder.driver.AcmeReadyDriver
        backend_host = cluster-node

        [lvm]

        [typo]
        volume_driver = cinder.volume.drivers.rbd.RBDDriverr
        """))
    return conf


def test_check_and_status_say_each_backends_driver(cli, cinder_site, cinder_url, tmp_path, out_of_tree):
    conf = _conf(tmp_path, cinder_url)
    for command in ("status", "check"):
        result = cli("--config-file", str(conf), command, "--site-packages", str(cinder_site), "--format", "json")
        assert result.exit_code == 0, result.stderr
        backends = {b["backend"]: b for b in json.loads(result.stdout)["backends"]}
        assert list(backends) == ["ceph", "acme", "lvm", "typo"]
        ceph, acme, lvm, typo = backends.values()
        assert (ceph["host"], ceph["update_host_replication"], ceph["replication"], ceph["active_active"]) == (
            "node-b@ceph", False, True, True)
        assert "the admin must fix them" in ceph["promotion"]
        assert (acme["host"], acme["update_host_replication"], acme["how"]) == ("cluster-node@acme", True, "read")
        assert lvm["volume_driver"] == "cinder.volume.drivers.lvm.LVMVolumeDriver"
        assert (lvm["update_host_replication"], lvm["replication"]) == (False, False)
        assert typo["update_host_replication"] is None and "RBDDriverr" in typo["problem"]
        table = cli("--config-file", str(conf), command, "--site-packages", str(cinder_site))
        assert "Configured backends" in table.stdout and "cinder.volume.drivers.rbd.RBDDriver" in table.stdout
    # Without Cinder at hand the answer is unknown, not a failure.
    result = cli("--config-file", str(conf), "status", "--format", "json")
    assert result.exit_code == 0
    assert all(b["update_host_replication"] is None and "Cinder is not installed" in b["problem"]
               for b in json.loads(result.stdout)["backends"])
    # No configured backends: no section.
    assert "backends" not in json.loads(cli("--db-url", cinder_url, "status", "--format", "json").stdout)


def test_reset_says_once_what_to_do_by_hand(cli, db, cinder_url, cinder_site, tmp_path, out_of_tree):
    conf = _conf(tmp_path, cinder_url)
    stopped_service(db, "node-b@ceph")
    stopped_service(db, "cluster-node@acme")
    args = ["--config-file", str(conf), "reset-active-backend", "--site-packages", str(cinder_site),
            "--enable-replication"]

    dry = cli(*args, "--backend-host", "node-b@ceph", "--dry-run")
    assert dry.exit_code == 0 and dry.stderr.count("note:") == 1
    result = cli(*args, "--backend-host", "node-b@ceph", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["changed"] is True  # not a refusal
    assert result.stderr.count("note:") == 1
    assert "cinder.volume.drivers.rbd.RBDDriver, which does not implement update_host_replication" in result.stderr
    assert "cinder-promote check" in result.stderr
    again = cli(*args, "--backend-host", "node-b@ceph")
    assert again.exit_code == 0 and "note:" not in again.stderr  # nothing to do, nothing to say

    ready = cli(*args, "--backend-host", "cluster-node@acme")
    assert ready.exit_code == 0 and "note:" not in ready.stderr  # its driver implements the hook


def test_bench_times_a_named_driver(cli):
    result = cli("bench", "startup", "--volumes", "300", "--groups", "3", "--format", "json",
                 "--driver", "cinder_promote.drivers.reference:ReferenceDriver",
                 "--driver-option", "replication_target=backend-c")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["driver"] == "cinder_promote.drivers.reference:ReferenceDriver" and out["phases_s"]["driver"] > 0
    result = cli("bench", "startup", "--volumes", "10", "--driver", "no_such_module:Driver")
    assert result.exit_code == 2 and "cannot import 'no_such_module'" in result.stderr


def test_the_collector_needs_nothing_but_the_standard_library():
    import ast
    import sys

    from cinder_promote.survey import COLLECTOR

    imported = set()
    for node in ast.walk(ast.parse(COLLECTOR.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run(["python3", "-s", str(COLLECTOR), "--no-tree"], capture_output=True, text=True,
                          env=env, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["drivers"] == []
