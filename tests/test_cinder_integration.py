"""cinder_integration: the glue a patched Cinder calls, tested without Cinder.

(The same functions inside real, patched Cinder, eventlet included: tests/test_cinder_patch.py.)
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from hook_drivers import AnswerDriver
from scenario import journal, row, stopped_service

from cinder_promote import cinder_integration as ci
from cinder_promote.db import seed
from cinder_promote.drivers.reference import ReferenceDriver
from cinder_promote.errors import CinderPromoteError, ConfigError, DatabaseUnavailable, HookFailed, InvalidValue, TargetNotFound


class _ThreadRecordingDriver(ReferenceDriver):
    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)
        self.threads: list[int] = []

    def update_host_replication(self, *args, **kwargs):
        self.threads.append(threading.get_ident())
        return super().update_host_replication(*args, **kwargs)


def test_without_eventlet_the_hook_runs_in_the_calling_thread() -> None:
    assert not ci.eventlet_patched()
    assert ci.run_off_hub(threading.get_ident) == threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        ci.run_off_hub(lambda: 1 / 0)


def test_run_startup_hook(db: sa.Engine, cinder_url: str) -> None:
    sid = stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    with db.begin() as conn:
        seed.add_volumes(conn, [seed.volume_row("node-b@be#p", replication_status="failed-over") for _ in range(50)])
    driver = _ThreadRecordingDriver()
    result = ci.run_startup_hook(driver, host="node-b@be", db_url=cinder_url, context="ctx")
    assert (result.outcome, result.volumes_updated, result.status_after) == ("done", 50, "enabled")
    assert driver.threads == [threading.get_ident()]
    assert row(db, "services", sid)["replication_status"] == "enabled"
    assert [(e["operation"], e["state"]) for e in journal(db)] == [("update-host-replication", "done")]

    failing = ReferenceDriver(fail="raise")
    with pytest.raises(HookFailed, match="the array did not answer"):
        ci.run_startup_hook(failing, host="node-b@be", db_url=cinder_url)
    assert row(db, "services", sid)["replication_status"] == "error"


class _BlockingDriver(ReferenceDriver):
    """Answers only when told to: the hook holds its fence meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.called, self.go_on = threading.Event(), threading.Event()

    def update_host_replication(self, *args, **kwargs):
        self.called.set()
        self.go_on.wait(30)
        return super().update_host_replication(*args, **kwargs)


class _GreenletExit(BaseException):
    """What oslo.service's SIGTERM handling raises in the green thread waiting for the hook."""


def test_service_stopped_during_the_hook_releases_the_fence(db: sa.Engine, cinder_url: str, monkeypatch) -> None:
    sid = stopped_service(db, "node-b@be", replication_status="enabled", active_backend_id=None)
    driver = _BlockingDriver()
    outcome: list[BaseException | object] = []

    def native_thread(func):
        try:
            outcome.append(func())
        except BaseException as exc:  # noqa: BLE001 - kept for the assertion below
            outcome.append(exc)

    def off_hub(func):
        worker = threading.Thread(target=native_thread, args=(func,))
        worker.start()
        off_hub.worker = worker
        assert driver.called.wait(30)
        raise _GreenletExit()   # the service is stopping while the driver works

    monkeypatch.setattr(ci, "run_off_hub", off_hub)
    with pytest.raises(_GreenletExit):
        ci.run_startup_hook(driver, host="node-b@be", db_url=cinder_url)
    assert row(db, "services", sid)["replication_status"] == "error"
    (entry,) = journal(db)
    assert (entry["operation"], entry["state"]) == ("update-host-replication", "failed")
    assert "volume service was stopped (_GreenletExit)" in entry["error"]

    # Had the process lived on, the driver's late answer would find its fence gone and write nothing.
    driver.go_on.set()
    off_hub.worker.join(30)
    assert isinstance(outcome[0], CinderPromoteError), outcome
    assert row(db, "services", sid)["replication_status"] == "error"
    assert [e["state"] for e in journal(db)] == ["failed"]


def test_hook_set_replication_status(db: sa.Engine, cinder_url: str) -> None:
    """What init_host_with_rpc asks: keep the hook's status only when a driver's answer set one."""
    stopped_service(db, "node-b@be", replication_status="not-capable", active_backend_id=None)
    ask = lambda result: ci.hook_set_replication_status(result, db_url=cinder_url)  # noqa: E731
    assert ask(None) is False

    silent = ci.run_startup_hook(AnswerDriver((None, [], None)), host="node-b@be", db_url=cinder_url)
    assert (silent.outcome, ask(silent)) == ("done", False), "a fresh service: Cinder derives it from the stats"
    said = ci.run_startup_hook(AnswerDriver(({"replication_status": "enabled"}, [], None)), host="node-b@be",
                               db_url=cinder_url)
    assert (said.outcome, ask(said)) == ("done", True)

    # A member that found the cluster fenced follows the holder's journal entry.
    def fenced_by(entry_id: int | None) -> ci.HookResult:
        return ci.HookResult("cluster", "gold@be", "fenced", journal_id=entry_id)

    assert ask(fenced_by(said.journal_id)) is True and ask(fenced_by(silent.journal_id)) is False
    assert ask(fenced_by(None)) is False and ask(fenced_by(10**6)) is False
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE cinder_promote_journal SET state = 'running' WHERE id = :i"), {"i": said.journal_id})
    assert ask(fenced_by(said.journal_id)) is False, "still running: the status is 'updating', left alone anyway"
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE cinder_promote_journal SET state = 'failed' WHERE id = :i"), {"i": said.journal_id})
    assert ask(fenced_by(said.journal_id)) is True, "a failed holder's 'error' stays for the admin"


def test_run_startup_hook_database_problems(tmp_path: Path, sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="connection is not set"):
        ci.run_startup_hook(ReferenceDriver(), host="h@b", db_url=None)
    with pytest.raises(DatabaseUnavailable):
        ci.run_startup_hook(ReferenceDriver(), host="h@b", db_url=f"sqlite:///{tmp_path}/missing.db")
    with pytest.raises(TargetNotFound):
        ci.run_startup_hook(ReferenceDriver(), host="nohost@b", db_url=sqlite_url)


def test_in_memory_database_uses_the_shared_engine(sqlite_url: str) -> None:
    assert ci.is_in_memory("sqlite://") and ci.is_in_memory("sqlite:///:memory:")
    assert not ci.is_in_memory(sqlite_url) and not ci.is_in_memory("postgresql://u@h/cinder")
    shared = sa.create_engine(sqlite_url)
    try:
        with ci.database("sqlite://", lambda: shared) as engine:
            assert engine is shared
        with ci.database(sqlite_url, lambda: shared) as engine:
            assert engine is not shared  # a file database gets a private engine
    finally:
        shared.dispose()


def test_reset_active_backend(db: sa.Engine, cinder_url: str) -> None:
    sid = stopped_service(db, "node-b@be")
    result = ci.reset_active_backend(db_url=cinder_url, backend_host="node-b@be", enable_replication=True,
                                     active_backend_id="backend-c", service_down_time=60)
    assert result.changed
    service = row(db, "services", sid)
    assert (service["replication_status"], service["active_backend_id"]) == ("enabled", "backend-c")
    with pytest.raises(InvalidValue):
        ci.reset_active_backend(db_url=cinder_url, backend_host="node-b@be", replication_status="updating")


def _fake_site(tmp_path: Path, patched: set[str]) -> Path:
    """A site-packages whose cinder holds the markers of the `patched` patches only."""
    site = tmp_path / "site"
    for name, markers in ci.PATCH_MARKERS.items():
        for marker in markers:
            path = site / marker.path
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = path.read_text().splitlines() if path.exists() else []
            lines.append(marker.text if name in patched else "# pristine")
            path.write_text("\n".join(lines) + "\n")
    (site / "cinder" / "__init__.py").write_text("")
    meta = site / "cinder-29.0.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: cinder\nVersion: 29.0.0\n")
    return site


def test_patch_status(tmp_path: Path) -> None:
    names = list(ci.PATCH_MARKERS)
    full = ci.patch_status(str(_fake_site(tmp_path / "full", set(names))))
    assert full.state == "patched" and full.fully_patched and full.version == "29.0.0"
    part = ci.patch_status(str(_fake_site(tmp_path / "part", {names[0]})))
    assert part.state == "partially patched"
    assert [p.applied for p in part.patches] == [True] + [False] * (len(names) - 1)
    assert all(p.missing for p in part.patches[1:])
    none = ci.patch_status(str(_fake_site(tmp_path / "none", set())))
    assert none.state == "not patched"
    # The package folder itself is accepted too.
    assert ci.patch_status(str(tmp_path / "full" / "site" / "cinder")).fully_patched
    with pytest.raises(ConfigError, match="no cinder package"):
        ci.patch_status(str(tmp_path))


def test_cinder_patch_status_command(cli, tmp_path: Path) -> None:
    site = _fake_site(tmp_path, set(list(ci.PATCH_MARKERS)[:2]))
    result = cli("cinder-patch-status", "--site-packages", str(site))
    assert result.exit_code == 1
    assert "partially patched" in result.stdout
    full = _fake_site(tmp_path / "f", set(ci.PATCH_MARKERS))
    ok = cli("cinder-patch-status", "--site-packages", str(full), "--format", "json")
    assert ok.exit_code == 0, ok.stderr
    missing = cli("cinder-patch-status", "--site-packages", str(tmp_path / "nowhere"))
    assert missing.exit_code == 3 and "no cinder package" in missing.stderr
