"""The configured backends' drivers: does each implement update_host_replication?

`check` and `status` show it for every backend of the cinder.conf they read; `reset-active-backend`
says, once, what the admin must do by hand after promoting a backend whose driver lacks the hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Backend
from ..errors import ConfigError
from . import HOOK, DriverFacts, collect


@dataclass(frozen=True)
class BackendDriver:
    backend: Backend
    facts: DriverFacts | None
    problem: str | None = None  # why the driver could not be surveyed

    @property
    def ready(self) -> bool | None:
        return None if self.facts is None else self.facts.ready

    @property
    def summary(self) -> str:
        if self.facts is None:
            return f"unknown: {self.problem}"
        return self.facts.promotion

    def to_json(self) -> dict[str, Any]:
        f = self.facts
        return {
            "backend": self.backend.name, "host": self.backend.host, "volume_driver": self.backend.volume_driver,
            HOOK: self.ready, "replication": None if f is None else f.replicates,
            "active_active": None if f is None else f.active_active,
            "group_replication": None if f is None else f.group_replication,
            "how": None if f is None else f.how, "promotion": self.summary, "problem": self.problem,
        }

    def manual_steps(self) -> str | None:
        """What the admin must do by hand after promoting this backend; None when the driver does it."""
        if self.facts is None:
            return (f"cannot tell whether {self.backend.volume_driver} (backend {self.backend.name!r}) implements "
                    f"{HOOK}: {self.problem}")
        if self.facts.ready:
            return None
        what = "has no replication" if not self.facts.replicates else f"does not implement {HOOK}"
        groups = " and groups" if self.facts.group_replication else ""
        return (f"backend {self.backend.name!r} uses {self.backend.volume_driver}, which {what}: when its service "
                f"starts, nothing updates its volumes{groups}; they keep the replication data of the failover "
                "(replication_status, replication_driver_data). After the start, re-establish each replicated "
                "volume's replication by hand (with the array's tools, or `cinder retype` to a non-replicated "
                "type and back), then run `cinder-promote check`: it lists the volumes that still contradict "
                "the service (volumes-contradict-service).")


def survey_backends(backends: Sequence[Backend], site_packages: str | None = None) -> list[BackendDriver]:
    """Survey the driver of each backend; Cinder not found makes every answer unknown, not an error."""
    if not backends:
        return []
    try:
        survey = collect(site_packages=site_packages, drivers=[b.volume_driver for b in backends], tree=False,
                         allow_missing_cinder=True)
    except ConfigError as exc:
        return [BackendDriver(b, None, exc.message) for b in backends]
    if survey.cinder_dir is None:
        problem = "Cinder is not installed in this Python; give --site-packages DIR"
        return [BackendDriver(b, None, problem) for b in backends]
    out = []
    for backend, named in zip(backends, survey.named):
        if isinstance(named, str):
            out.append(BackendDriver(backend, None, named))
        else:
            out.append(BackendDriver(backend, named))
    return out


def backend_of(target_name: str, backends: Sequence[Backend]) -> Backend | None:
    """The configured backend of a service host or cluster name (host@backend, cluster@backend)."""
    _, at, name = target_name.partition("@")
    name = name.split("#", 1)[0]
    return next((b for b in backends if at and b.name == name), None)
