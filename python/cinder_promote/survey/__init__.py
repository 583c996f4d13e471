"""The survey of Cinder's replicating volume drivers: which implement update_host_replication.

The facts are collected by `collect.py`, run as a script by the Python where Cinder is installed
(this one, or the interpreter of the site-packages given with `--site-packages`): Cinder's driver
modules import only there. Here they become `DriverFacts`, grouped into families (the unit a bug is
filed for), and are matched to the backends that a cinder.conf configures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

COLLECTOR = Path(__file__).with_name("collect.py")
HOOK = "update_host_replication"
REPLICATION_METHODS = ("failover_host", "failover", "failover_completed", "failover_replication",
                       "enable_replication", "disable_replication")
COLLECT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Method:
    name: str
    defined_in: str  # module.Class
    file: str | None  # relative to the folder on sys.path that holds it
    line: int | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)

    @property
    def owner(self) -> str:
        return self.defined_in.rpartition(".")[2]

    @property
    def owner_module(self) -> str:
        return self.defined_in.rpartition(".")[0]


@dataclass(frozen=True)
class DriverFacts:
    """One volume driver class, as a cinder.conf names it (`volume_driver = module.Class`)."""

    driver: str
    module: str
    name: str
    file: str | None
    line: int | None
    how: str  # "imported" or "read" (its module did not import, or --no-import)
    import_error: str | None
    registered: bool  # in Cinder's own driver list (@interface.volumedriver)
    is_volume_driver: bool  # a subclass of Cinder's BaseVD
    methods: dict[str, Method | None]  # None: not implemented (BaseVD's placeholder, or absent)
    supports_active_active: bool | None  # None: not a literal in the source
    ci_wiki_name: str | None
    version: str | None
    unresolved_bases: tuple[str, ...]

    def implements(self, method: str) -> bool:
        return self.methods.get(method) is not None

    @property
    def replicates(self) -> bool:
        return self.implements("failover_host") or self.implements("failover")

    @property
    def active_active(self) -> bool:
        """Active-active replication: Cinder fails a cluster over with failover + failover_completed."""
        return bool(self.supports_active_active) and self.implements("failover") and self.implements(
            "failover_completed")

    @property
    def group_replication(self) -> bool:
        return self.implements("failover_replication")

    @property
    def ready(self) -> bool:
        return self.implements(HOOK)

    @property
    def promotion(self) -> str:
        """What a promotion of a backend with this driver means, in one sentence."""
        if self.ready:
            return "ready: at startup the driver puts each volume's replication data right (update_host_replication)"
        if not self.replicates:
            return "no replication: a promotion changes nothing for its volumes"
        return ("no hook: after a promotion its volumes and groups keep the failover's replication data;"
                " the admin must fix them by other means")

    def to_json(self) -> dict[str, Any]:
        return {
            "driver": self.driver, "module": self.module, "class": self.name, "file": self.file, "line": self.line,
            "how": self.how, "import_error": self.import_error, "registered": self.registered,
            "is_volume_driver": self.is_volume_driver,
            "failover_host": self.implements("failover_host"), "failover": self.implements("failover"),
            "failover_completed": self.implements("failover_completed"),
            "failover_replication": self.implements("failover_replication"),
            "supports_active_active": self.supports_active_active, "active_active": self.active_active,
            "group_replication": self.group_replication, HOOK: self.ready, "promotion": self.promotion,
            "ci_wiki_name": self.ci_wiki_name, "version": self.version,
            "unresolved_bases": list(self.unresolved_bases),
            "methods": {name: None if m is None else {"defined_in": m.defined_in, "file": m.file, "line": m.line}
                        for name, m in self.methods.items()},
        }

    @classmethod
    def from_collected(cls, data: dict[str, Any]) -> DriverFacts:
        methods = {
            name: Method(name, m["defined_in"], m["file"], m["line"]) if m and m["implemented"] else None
            for name, m in data["methods"].items()
        }
        version = data.get("version")
        return cls(
            driver=data["driver"], module=data["module"], name=data["class"], file=data["file"], line=data["line"],
            how=data["how"], import_error=data["import_error"], registered=data["registered"],
            is_volume_driver=data["is_volume_driver"], methods=methods,
            supports_active_active=data["supports_active_active"] if isinstance(
                data["supports_active_active"], bool) else None,
            ci_wiki_name=data["ci_wiki_name"] if isinstance(data["ci_wiki_name"], str) else None,
            version=None if version is None else str(version),
            unresolved_bases=tuple(data["unresolved_bases"]),
        )


@dataclass(frozen=True)
class Family:
    """Drivers one bug is filed for: their failover code is shared (see `families`)."""

    name: str  # the folder or module of cinder/volume/drivers where their failover code lives
    drivers: tuple[DriverFacts, ...]

    @property
    def slug(self) -> str:
        return self.name.replace("/", "-")

    @property
    def ready(self) -> bool:
        return all(d.ready for d in self.drivers)

    def methods(self) -> list[Method]:
        """Every distinct replication method of the family, in METHODS order, then by class."""
        seen: dict[tuple[str, str], Method] = {}
        for name in (*REPLICATION_METHODS, HOOK):
            for d in self.drivers:
                m = d.methods.get(name)
                if m is not None:
                    seen.setdefault((name, m.defined_in), m)
        return list(seen.values())


@dataclass(frozen=True)
class Survey:
    cinder_dir: str | None
    cinder_version: str | None
    hook_in_base: bool  # Cinder's BaseVD documents update_host_replication: the patched Cinder
    python: str
    imported: bool
    setup_error: str | None
    drivers: tuple[DriverFacts, ...]  # Cinder's tree: every driver class that replicates or has the hook
    named: tuple[DriverFacts | str, ...]  # the classes asked for by name; a str says why one was not surveyed

    def families(self) -> list[Family]:
        return families(self.drivers)

    def to_json(self) -> dict[str, Any]:
        return {
            "cinder": {"dir": self.cinder_dir, "version": self.cinder_version, "patched": self.hook_in_base,
                       "python": self.python, "imported": self.imported},
            "counts": {
                "drivers": len(self.drivers),
                "ready": sum(d.ready for d in self.drivers),
                "without_hook": sum(not d.ready for d in self.drivers),
                "active_active": sum(d.active_active for d in self.drivers),
                "group_replication": sum(d.group_replication for d in self.drivers),
                "read_from_source": sum(d.how == "read" for d in self.drivers),
            },
            "drivers": [d.to_json() for d in self.drivers],
            "families": [{"family": f.name, "ready": f.ready, "drivers": [d.driver for d in f.drivers]}
                         for f in self.families()],
        }


def _package_of(module: str) -> str:
    """A module's place under cinder/volume/drivers: its folder, or itself when it sits at the top."""
    prefix = "cinder.volume.drivers."
    rel = module[len(prefix):] if module.startswith(prefix) else module
    folder, _, _ = rel.rpartition(".")
    return folder.replace(".", "/") or rel


def families(drivers: Iterable[DriverFacts]) -> list[Family]:
    """Group drivers into the families one bug report each is written for.

    Two drivers are of one family when a replication method of both is defined in the same module
    (RBDISCSIDriver uses RBDDriver's failover_host; HPE XP and NEC V use Hitachi's), or when they live
    in the same folder of cinder/volume/drivers and name the same third-party CI (CI_WIKI_NAME: the
    PowerMax FC and iSCSI drivers each define failover_host, and one team maintains both).
    """
    replicating = [d for d in drivers if d.replicates or d.ready]
    parent = list(range(len(replicating)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    keys: dict[tuple[str, ...], int] = {}
    for i, d in enumerate(replicating):
        own: set[tuple[str, ...]] = {("module", m.owner_module) for m in d.methods.values()
                                     if m is not None and m.name != HOOK}
        if d.ci_wiki_name:
            own.add(("ci", _package_of(d.module), d.ci_wiki_name))
        for key in own:
            if key in keys:
                parent[find(i)] = find(keys[key])
            else:
                keys[key] = i
    groups: dict[int, list[DriverFacts]] = {}
    for i, d in enumerate(replicating):
        groups.setdefault(find(i), []).append(d)
    grouped = []
    for members in groups.values():
        modules = sorted({m.owner_module for d in members for m in d.methods.values()
                          if m is not None and m.name in ("failover_host", "failover")} or {members[0].module})
        grouped.append((modules, tuple(sorted(members, key=lambda d: d.driver))))
    # A family is named for the folder of its failover code, or for its module when another
    # family's code lives in the same folder (HPE's 3PAR and Alletra MP drivers).
    folders = [_common_folder(modules) for modules, _ in grouped]
    out = [Family(folder if folders.count(folder) == 1 else _common_module(modules), members)
           for folder, (modules, members) in zip(folders, grouped)]
    return sorted(out, key=lambda f: f.name)


def _relative(module: str) -> list[str]:
    prefix = "cinder.volume.drivers."
    return (module[len(prefix):] if module.startswith(prefix) else module).split(".")


def _common_folder(modules: Sequence[str]) -> str:
    places = [_package_of(m).split("/") for m in modules]
    return "/".join(os.path.commonprefix(places)) or "/".join(places[0])


def _common_module(modules: Sequence[str]) -> str:
    places = [_relative(m) for m in modules]
    return "/".join(os.path.commonprefix(places)) or "/".join(places[0])


# -- running the collector --------------------------------------------------------------------------


def interpreter_for(site_packages: str) -> str:
    """The Python that owns a site-packages folder: its venv's, or its prefix's."""
    site = Path(site_packages).resolve()
    if not (site / "cinder" / "__init__.py").is_file():
        raise ConfigError(f"no cinder package in {site_packages} (give the site-packages that holds cinder/)")
    for folder in (site, *site.parents):
        if (folder / "pyvenv.cfg").is_file():
            for name in ("python3", "python"):
                if (folder / "bin" / name).exists():
                    return str(folder / "bin" / name)
        if folder.name.startswith("python") and folder.parent.name == "lib":
            prefix = folder.parent.parent
            for name in (folder.name, "python3"):
                if (prefix / "bin" / name).exists():
                    return str(prefix / "bin" / name)
    raise ConfigError(f"cannot find the Python that owns {site_packages}: no venv (pyvenv.cfg) and no"
                      " lib/pythonX.Y above it")


def collect(*, site_packages: str | None = None, drivers: Sequence[str] = (), tree: bool = True,
            use_import: bool = True, allow_missing_cinder: bool = False) -> Survey:
    """Run the collector in the Python that has Cinder and read its answer.

    `site_packages` None: this Python's Cinder (as the patched Cinder's own cinder-promote sees it).
    `drivers`: classes named as cinder.conf's volume_driver names them; `tree`: every driver of
    Cinder's cinder/volume/drivers. No Cinder found is a ConfigError, unless `allow_missing_cinder`
    (then `cinder_dir` is None and nothing was surveyed). The collector always runs in a child process: driver modules do
    what they like at import (logging, eventlet, vendor libraries), none of it in this process.
    """
    python = sys.executable if site_packages is None else interpreter_for(site_packages)
    # -s: not the user's site-packages; PYTHONPATH stays, as cinder-volume honours it (out-of-tree drivers).
    cmd = [python, "-s", str(COLLECTOR)]
    if site_packages is not None:
        cmd += ["--site", str(Path(site_packages).resolve())]
    if not use_import:
        cmd.append("--no-import")
    if not tree:
        cmd.append("--no-tree")
    for driver in drivers:
        cmd += ["--driver", driver]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env,
                              timeout=COLLECT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot survey Cinder's drivers with {python}: {exc}") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"the driver survey failed in {python} (exit {proc.returncode}): {last}")
    data = json.loads(proc.stdout)
    info = data["cinder"]
    if (tree or not allow_missing_cinder) and info["dir"] is None:
        where = f"in {site_packages}" if site_packages else "in this Python"
        raise ConfigError(f"Cinder is not installed {where}; give --site-packages DIR (the site-packages that"
                          " holds cinder/)")
    survey_drivers = [DriverFacts.from_collected(d) for d in data["tree"]]
    return Survey(
        cinder_dir=info["dir"], cinder_version=info["version"], hook_in_base=info["hook_in_base"],
        python=data["python"], imported=data["imported"], setup_error=data["setup_error"],
        drivers=tuple(d for d in survey_drivers if d.replicates or d.ready),
        named=tuple(d["error"] if "error" in d else DriverFacts.from_collected(d) for d in data["drivers"]),
    )


__all__ = ["COLLECTOR", "DriverFacts", "Family", "HOOK", "Method", "Survey", "collect", "families",
           "interpreter_for"]
