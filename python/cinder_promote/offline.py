"""`update-host-replication`: the startup hook run offline, for a stopped
service or cluster, with a driver named on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from .drivers import load_driver
from .errors import HookFailed, Refused
from .hook import DEFAULT_LEASE_SECONDS, HookResult, Progress, update_host_replication
from .models import utcnow
from .target import check_selector, resolve, running_services


@dataclass(frozen=True)
class OfflineContext:
    """What the driver gets as `context` offline: an admin context with no request."""

    is_admin: bool = True
    project_id: str | None = None
    user_id: str | None = None
    request_id: str = "cinder-promote-offline"


def run_offline(
    engine: Engine, driver_spec: str, options: dict[str, str], *, backend_host: str | None, cluster: str | None,
    service_down_time: int, lease_seconds: float = DEFAULT_LEASE_SECONDS, progress: Progress | None = None,
) -> HookResult:
    check_selector(backend_host, cluster)
    driver = load_driver(driver_spec, options)  # usage errors first, before the database
    with engine.connect() as conn:
        target = resolve(conn, backend_host=backend_host, cluster=cluster)
    problems = running_services(target, utcnow(), service_down_time)
    if problems:
        raise Refused(f"refused to run the hook offline on {target.label}: it is running; nothing was written",
                      details=problems)
    context = OfflineContext()
    setup_driver(driver, context)
    return update_host_replication(
        engine, driver, host=target.name if target.cluster is None else None,
        cluster=target.name if target.cluster is not None else None,
        context=context, lease_seconds=lease_seconds, progress=progress,
    )


def setup_driver(driver: Any, context: Any) -> None:
    """What Cinder does before the hook: do_setup, then check_for_setup_error."""
    for step, args in (("do_setup", (context,)), ("check_for_setup_error", ())):
        method = getattr(driver, step, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception as exc:
            raise HookFailed(f"the driver's {step}() failed: {type(exc).__name__}: {exc}; nothing was written") from exc
