"""The glue that a patched Cinder calls (the series in `cinder_patch/`).

Cinder imports this module only when it needs it: when a volume driver
implements `update_host_replication`, and when `cinder-manage db
reset_active_backend` runs. A Cinder without cinder-promote installed starts
as before, as long as no driver implements the hook.

- `run_startup_hook` is what `VolumeManager._init_host` calls right after the
  driver's `do_setup` and `check_for_setup_error`: it opens a private engine
  from Cinder's `[database] connection`, runs the hook (fence, driver call,
  validation, native planning, bulk write) and disposes of the engine, all in
  a native thread when eventlet has monkey-patched the process, so the
  service's green threads keep running and the blocking database and native
  work never runs on the eventlet hub.
- `reset_active_backend` is what `cinder-manage db reset_active_backend`
  calls (through `cinder.db.api.reset_active_backend`).
- `patch_status` tells whether an installed Cinder carries the series; the
  `cinder-promote cinder-patch-status` command prints it.

Nothing here imports Cinder.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from .db import journal
from .db.connect import open_engine, parse_url
from .errors import ConfigError
from .fence import Lease
from .hook import DEFAULT_LEASE_SECONDS, HookResult, default_holder, release_on_failure, update_host_replication
from .reset import ResetResult, build_request
from .reset import reset_active_backend as _reset
from .target import resolve

T = TypeVar("T")
LOG = logging.getLogger(__name__)

EngineSource = Callable[[], Engine]

CINDER_VERSION = "29.0.0"


# -- off the eventlet hub -----------------------------------------------------------------------


def eventlet_patched() -> bool:
    """Whether eventlet has monkey-patched this process's threads (as cinder-volume does)."""
    if "eventlet" not in sys.modules:
        return False
    try:
        from eventlet import patcher
    except ImportError:  # pragma: no cover - eventlet half-installed
        return False
    return bool(patcher.is_monkey_patched("thread"))


def run_off_hub(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `func` in a native thread when eventlet patched the process, else right here.

    Cinder sizes eventlet's thread pool (`backend_native_threads_pool_size`) before its
    managers call this; the calling green thread waits without blocking the hub, and an
    exception raised by `func` is raised here.
    """
    if eventlet_patched():
        from eventlet import tpool

        return tpool.execute(func, *args, **kwargs)
    return func(*args, **kwargs)


# -- which engine -------------------------------------------------------------------------------


def is_in_memory(db_url: str) -> bool:
    """An in-memory SQLite database exists only in the engine that created it."""
    url = parse_url(db_url)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


@contextmanager
def database(db_url: str | None, shared_engine: EngineSource | None = None) -> Iterator[Engine]:
    """The engine to work with: a private one opened from `db_url` (and disposed of).

    `shared_engine` returns Cinder's own engine; it is used only when `db_url` names an
    in-memory SQLite database (Cinder's unit tests), which no other engine can reach.
    """
    if not db_url:
        raise ConfigError("Cinder's [database] connection is not set: cinder-promote cannot reach the database")
    if shared_engine is not None and is_in_memory(db_url):
        yield shared_engine()
        return
    engine = open_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


# -- the startup hook ----------------------------------------------------------------------------

# How long a starting member waits for the member that holds its cluster's fence (the holder
# renews its lease while it works; a dead holder's fence goes stale within a lease and is taken
# over). Past it the member starts anyway and leaves the 'updating' status to the holder.
FENCED_MEMBER_WAIT = 900.0


def run_startup_hook(
    driver: Any,
    *,
    host: str,
    cluster: str | None = None,
    context: Any = None,
    db_url: str | None,
    shared_engine: EngineSource | None = None,
    holder: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    wait_for_fence: float = FENCED_MEMBER_WAIT,
) -> HookResult:
    """Run `update_host_replication` for a starting cinder-volume service.

    `host` is the manager's `host@backend`; `cluster` its cluster (`name@backend`) or None.
    A clustered service works on its cluster. Returns the hook's result (outcome `done`, or
    `fenced` when another member holds the fence). A member that finds the fence held waits
    for its holder (up to `wait_for_fence` seconds, while the holder's lease lives), so that
    its own `init_host_with_rpc` sees the holder's outcome rather than `updating`; a fence
    that goes stale meanwhile is taken over. Raises `HookFailed`, `ConcurrentChange`
    or another `CinderPromoteError` (the fence, if it was taken, is then released to
    `error` and the journal says why), or a database error.
    """

    holder = holder or default_holder()

    def work() -> HookResult:
        with database(db_url, shared_engine) as engine:
            return update_host_replication(
                engine, driver, host=None if cluster else host, cluster=cluster or None, context=context,
                holder=holder, lease_seconds=lease_seconds, wait_for_fence=wait_for_fence,
            )

    try:
        return run_off_hub(work)
    except Exception:
        raise   # the hook released its fence (to 'error') and journaled why
    except BaseException as exc:
        # The service is stopping: on SIGTERM oslo.service kills the green thread that waits
        # here (GreenletExit) and then ends the process, native thread and all, so the hook
        # never gets to release its fence. Release it from here, or it would stay
        # 'updating' until its lease expires.
        release_interrupted(db_url, shared_engine, host=host, cluster=cluster, holder=holder, cause=exc)
        raise


class ServiceStopped(RuntimeError):
    """What the journal says of a hook whose service was stopped while it ran."""


def release_interrupted(db_url: str | None, shared_engine: EngineSource | None, *, host: str,
                        cluster: str | None, holder: str, cause: BaseException) -> int:
    """Release to 'error' every fence `holder` holds on the target, journaling why; how many."""
    reason = ServiceStopped(f"the volume service was stopped ({type(cause).__name__}) while the driver's"
                            " update_host_replication ran; nothing of its answer was written")
    released = 0
    try:
        with database(db_url, shared_engine) as engine:
            with engine.connect() as conn:
                target = resolve(conn, backend_host=None if cluster else host, cluster=cluster or None)
                mine = [e for e in journal.running_entries(conn, target.kind, target.name) if e.holder == holder]
            for entry in mine:
                lease = Lease(target, entry.id, holder, 0, entry.status_before, None, None)
                released += release_on_failure(engine, lease, reason)
    except Exception as exc:  # noqa: BLE001 - stopping anyway: the lease expires in the end
        LOG.warning("could not release the fence of %s after the service was stopped: %s", holder, exc)
    return released


def hook_set_replication_status(
    result: HookResult | None, *, db_url: str | None, shared_engine: EngineSource | None = None,
) -> bool:
    """Whether `init_host_with_rpc` must keep the replication status this startup's hook left.

    Stock Cinder derives `enabled`/`disabled` from the driver's stats at every start; the hook's
    status replaces that derivation only when a driver's answer actually set one: this
    service's (outcome `done`), or, for a member that found the cluster fenced, the holder's,
    read from the holder's journal entry once it has ended (a failed holder left `error`,
    which stays for the admin). Anything else leaves Cinder's own derivation in charge.
    """
    if result is None:
        return False
    if result.outcome == "done":
        return "replication_status" in result.service_update
    if result.outcome != "fenced" or result.journal_id is None:
        return False
    holder_entry = result.journal_id

    def read() -> bool:
        with database(db_url, shared_engine) as engine, engine.connect() as conn:
            entry = journal.get(conn, holder_entry)
        if entry is None or entry.state == journal.RUNNING:
            return False
        if entry.state == journal.FAILED:
            return True
        after = entry.after if isinstance(entry.after, dict) else {}
        return "replication_status" in after.get("set_by_driver", ())

    return run_off_hub(read)


# -- cinder-manage db reset_active_backend --------------------------------------------------------


def reset_active_backend(
    *,
    db_url: str | None,
    shared_engine: EngineSource | None = None,
    backend_host: str | None = None,
    cluster: str | None = None,
    replication_status: str | None = None,
    enable_replication: bool = False,
    active_backend_id: str | None = None,
    enable_service: bool = False,
    dry_run: bool = False,
    service_down_time: int = 60,
) -> ResetResult:
    """`reset-active-backend` (SPEC section 4) with cinder-manage's options."""
    request = build_request(
        backend_host=backend_host, cluster=cluster, replication_status=replication_status,
        enable_replication=enable_replication, active_backend_id=active_backend_id,
        enable_service=enable_service, dry_run=dry_run,
    )
    with database(db_url, shared_engine) as engine:
        return _reset(engine, request, service_down_time=service_down_time)


# -- is this Cinder patched? ------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchMarker:
    """A line that a patch of the series adds to a file of the `cinder` package."""

    path: str
    text: str


# One entry per patch of cinder_patch/series, in order, keyed by the patch's file name. Each
# marker is a line that the patch adds and that the pristine file does not hold
# (tests/test_cinder_patch.py checks both).
PATCH_MARKERS: dict[str, tuple[PatchMarker, ...]] = {
    "0001-objects-replication-status-updating.patch": (
        PatchMarker("cinder/objects/fields.py", "    def make_compatible(cls, primitive):"),
        PatchMarker("cinder/objects/base.py",
                    "OBJ_VERSIONS.add('1.40', {'Service': '1.7', 'Cluster': '1.2', 'Group': '1.3'})"),
    ),
    "0002-driver-update-host-replication.patch": (
        PatchMarker("cinder/volume/driver.py", "    def update_host_replication(self, context, replication_status,"),
    ),
    "0003-volume-manager-startup-hook.patch": (
        PatchMarker("cinder/volume/manager.py", "    def _update_host_replication(self,"),
    ),
    "0004-service-cluster-fence.patch": (
        PatchMarker("cinder/service.py", "                fenced = (cluster.replication_status =="),
    ),
    "0005-cinder-manage-reset-active-backend.patch": (
        PatchMarker("cinder/cmd/manage.py", "    @args('--enable-service', action='store_true', default=False,"),
        PatchMarker("cinder/db/api.py", "    promote = _cinder_promote()"),
    ),
    "0006-rbd-update-host-replication.patch": (
        PatchMarker("cinder/volume/drivers/rbd.py", "    def _ensure_mirror_peer(self, primary, ioctx, target):"),
    ),
}


@dataclass(frozen=True)
class PatchState:
    patch: str
    applied: bool
    missing: tuple[str, ...]  # "path: line" of each marker not found

    def to_json(self) -> dict[str, Any]:
        return {"patch": self.patch, "applied": self.applied, "missing": list(self.missing)}


@dataclass(frozen=True)
class CinderPatchStatus:
    cinder_dir: str
    version: str | None
    patches: tuple[PatchState, ...]

    @property
    def fully_patched(self) -> bool:
        return all(p.applied for p in self.patches)

    @property
    def state(self) -> str:
        applied = sum(p.applied for p in self.patches)
        if applied == len(self.patches):
            return "patched"
        return "not patched" if applied == 0 else "partially patched"

    def to_json(self) -> dict[str, Any]:
        return {"cinder_dir": self.cinder_dir, "version": self.version, "state": self.state,
                "expected_version": CINDER_VERSION, "patches": [p.to_json() for p in self.patches]}


def find_cinder(site_dir: str | None = None) -> Path:
    """The directory of the `cinder` package: in `site_dir` if given, else this interpreter's."""
    if site_dir is not None:
        path = Path(site_dir)
        if path.name == "cinder" and (path / "__init__.py").is_file():
            return path
        if (path / "cinder" / "__init__.py").is_file():
            return path / "cinder"
        raise ConfigError(f"no cinder package in {site_dir} (give the site-packages that holds cinder/)")
    spec = importlib.util.find_spec("cinder")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("Cinder is not installed in this Python; give --site-packages DIR")
    return Path(next(iter(spec.submodule_search_locations)))


def _cinder_version(cinder_dir: Path) -> str | None:
    for meta in sorted(cinder_dir.parent.glob("cinder-*.dist-info/METADATA")):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return None


def patch_status(site_dir: str | None = None) -> CinderPatchStatus:
    """Which patches of the series the installed Cinder carries."""
    cinder_dir = find_cinder(site_dir)
    root = cinder_dir.parent
    states = []
    for patch, markers in PATCH_MARKERS.items():
        missing = []
        for marker in markers:
            file = root / marker.path
            try:
                lines = set(file.read_text(errors="replace").splitlines())
            except OSError:
                lines = set()
            if marker.text not in lines:
                missing.append(f"{marker.path}: {marker.text.strip()}")
        states.append(PatchState(patch, not missing, tuple(missing)))
    return CinderPatchStatus(str(cinder_dir), _cinder_version(cinder_dir), tuple(states))


__all__ = [
    "CINDER_VERSION", "PATCH_MARKERS", "CinderPatchStatus", "PatchMarker", "PatchState",
    "database", "eventlet_patched", "find_cinder", "hook_set_replication_status", "is_in_memory", "patch_status",
    "reset_active_backend",
    "run_off_hub", "run_startup_hook",
]
