"""`bench startup`: the startup hook timed end to end and by phase.

It seeds a scratch Cinder database with one stopped, freshly promoted
service and N volumes and M groups still `failed-over`, then runs the hook
with the reference driver, which answers a distinct update for every volume
(its new replication pair) and one shared update for the groups: the
heaviest realistic answer. Without `--db-url` the database is a temporary
SQLite file with Cinder's schema.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from . import __version__
from . import engine as core
from .db import seed
from .db.connect import masked, open_engine
from .drivers import load_driver
from .drivers.reference import ReferenceDriver
from .offline import OfflineContext, setup_driver
from .errors import Refused
from .hook import PHASES, update_host_replication
from .models import utcnow

BENCH_HOST = "bench-node@bench"
# Cinder's Group object needs a group type; the benchmark's groups share this one.
BENCH_GROUP_TYPE = "00000000-0000-4000-8000-00000000b00c"


def rss_bytes() -> int:
    """This process's resident memory (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class MemoryCurve:
    """Samples the resident memory every `interval` seconds in a thread, with
    the hook's current phase (fed by its progress callback)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.phase = "start"
        self.samples: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-curve", daemon=True)

    def progress(self, phase: str, message: str) -> None:
        self.phase = phase

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter() - self.started, rss_bytes(), self.phase))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> MemoryCurve:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.phase = "done"
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter() - self.started, rss_bytes(), "done"))

    def peak_by_phase(self) -> dict[str, int]:
        peaks: dict[str, int] = {}
        for _, rss, phase in self.samples:
            peaks[phase] = max(peaks.get(phase, 0), rss)
        return peaks

    def to_json(self) -> dict[str, Any]:
        return {"interval_s": self.interval, "baseline_bytes": self.samples[0][1] if self.samples else 0,
                "peak_bytes": max((s[1] for s in self.samples), default=0),
                "peak_by_phase_bytes": self.peak_by_phase(),
                "samples": [(round(t, 3), rss, phase) for t, rss, phase in self.samples]}


@dataclass
class BenchResult:
    volumes: int
    groups: int
    engine: str
    database: str
    database_version: str
    seed_s: float
    total_s: float
    phases_s: dict[str, float] = field(default_factory=dict)
    memory: MemoryCurve | None = None
    driver: str = "cinder_promote.drivers.reference:ReferenceDriver"

    @property
    def rows_per_s(self) -> float:
        return (self.volumes + self.groups) / self.total_s if self.total_s else 0.0

    def machine(self) -> dict[str, Any]:
        return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                "cinder_promote": __version__}

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": "bench startup", "volumes": self.volumes, "groups": self.groups, "engine": self.engine,
            "driver": self.driver,
            "database": self.database, "database_version": self.database_version, "machine": self.machine(),
            "seed_s": round(self.seed_s, 3), "total_s": round(self.total_s, 3),
            "phases_s": {k: round(v, 4) for k, v in self.phases_s.items()},
            "rows_per_s": round(self.rows_per_s),
            **({"memory": self.memory.to_json()} if self.memory is not None else {}),
        }


def database_version(engine: sa.Engine) -> str:
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT version()")).scalar()).split(" on ")[0]


def _scratch_check(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        hosts = conn.execute(sa.text("SELECT DISTINCT host FROM services WHERE deleted = :f"), {"f": False}).scalars().all()
    others = [h for h in hosts if h != BENCH_HOST]
    if others:
        raise Refused(f"bench writes rows: it runs only on a scratch Cinder database, and this one has services"
                      f" ({', '.join(sorted(others)[:5])}); nothing was written")


def _seed(engine: sa.Engine, volumes: int, groups: int) -> None:
    stopped = utcnow() - timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM volumes WHERE host LIKE :h"), {"h": BENCH_HOST + "#%"})
        conn.execute(sa.text("DELETE FROM groups WHERE host = :h"), {"h": BENCH_HOST})
        conn.execute(sa.text("DELETE FROM services WHERE host = :h"), {"h": BENCH_HOST})
        seed.add_service(conn, BENCH_HOST, now=stopped, replication_status="enabled", active_backend_id=None,
                         disabled=True, frozen=True)
        seed.add_volumes(conn, (seed.volume_row(f"{BENCH_HOST}#pool{i % 4}", now=stopped, replication_status="failed-over")
                                for i in range(volumes)))
        seed.add_groups(conn, (seed.group_row(BENCH_HOST, now=stopped, replication_status="failed-over",
                                              group_type_id=BENCH_GROUP_TYPE, name=f"bench-group-{i}")
                               for i in range(groups)))
    analyze(engine)


def analyze(engine: sa.Engine) -> None:
    """Refresh the planner statistics of the seeded tables, as autovacuum would have on a real database."""
    backend = engine.url.get_backend_name()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if backend == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE volumes")
            conn.exec_driver_sql("VACUUM ANALYZE groups")
        elif backend == "mysql":
            conn.exec_driver_sql("ANALYZE TABLE volumes, `groups`").all()
        else:
            conn.exec_driver_sql("ANALYZE volumes")
            conn.exec_driver_sql("ANALYZE groups")


def startup(*, volumes: int, groups: int, db_url: str | None = None, engine_name: str = "native",
            memory: bool = False, driver_spec: str | None = None,
            driver_options: dict[str, str] | None = None) -> BenchResult:
    """Seed, then time the hook with the reference driver, or with `driver_spec` (module:Class, built
    with `driver_options` and set up as Cinder does) so that a driver author can time their own."""
    driver: Any = None
    if driver_spec is not None:
        driver = load_driver(driver_spec, driver_options or {})  # a usage error before any seeding
    previous = core.current()
    core.use(engine_name)
    scratch_dir = None
    try:
        if db_url is None:
            scratch_dir = tempfile.TemporaryDirectory(prefix="cinder-promote-bench-")
            path = os.path.join(scratch_dir.name, "cinder.sqlite")
            seed.create_cinder_sqlite(path)
            db_url = f"sqlite:///{path}"
        engine = open_engine(db_url)
        try:
            _scratch_check(engine)
            started = time.perf_counter()
            _seed(engine, volumes, groups)
            seeded = time.perf_counter() - started
            if driver is None:
                driver = ReferenceDriver()
            setup_driver(driver, OfflineContext())
            curve = MemoryCurve() if memory else None
            started = time.perf_counter()
            if curve is not None:
                with curve:
                    result = update_host_replication(engine, driver, host=BENCH_HOST, progress=curve.progress)
            else:
                result = update_host_replication(engine, driver, host=BENCH_HOST)
            total = time.perf_counter() - started
            return BenchResult(volumes, groups, engine_name, masked(engine.url), database_version(engine), seeded, total,
                               {p: result.timings.get(p, 0.0) for p in PHASES}, curve,
                               driver_spec or BenchResult.driver)
        finally:
            engine.dispose()
    finally:
        core.use(previous)
        if scratch_dir is not None:
            scratch_dir.cleanup()


def write_chart(result: BenchResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 2 if result.memory is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.6 if rows == 1 else 5.6), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 2][:rows]})
    ax = axes[0][0]
    left = 0.0
    for phase, seconds in result.phases_s.items():
        ax.barh([0], [seconds], left=left, label=f"{phase} {seconds:.2f}s")
        left += seconds
    ax.set_yticks([])
    ax.set_xlabel("seconds")
    ax.set_title(f"startup hook, {result.volumes} volumes + {result.groups} groups, {result.database_version},"
                 f" {result.engine} engine: {result.rows_per_s:,.0f} rows/s", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=len(result.phases_s), fontsize=8)
    if result.memory is not None:
        plot_memory(axes[1][0], result.memory.samples)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PHASE_COLORS = {"start": "tab:gray", "fence": "black", "load": "tab:blue", "driver": "tab:orange",
                "plan": "tab:green", "apply": "tab:red", "done": "tab:purple"}


def plot_memory(ax: Any, samples: list[tuple[float, int, str]]) -> None:
    """The resident memory over time, one colour per phase of the hook."""
    by_phase: dict[str, list[tuple[float, float]]] = {}
    previous = None
    for t, rss, phase in samples:
        points = by_phase.setdefault(phase, [])
        if previous is not None and previous[2] != phase:
            points.append((previous[0], previous[1] / 2**20))  # join the segments
        points.append((t, rss / 2**20))
        previous = (t, rss, phase)
    for phase, points in by_phase.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=phase, linewidth=1.5,
                color=PHASE_COLORS.get(phase, "tab:gray"))
    ax.set_xlabel("seconds since the hook started")
    ax.set_ylabel("resident memory (MiB)")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
