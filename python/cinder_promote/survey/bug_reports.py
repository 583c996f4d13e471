"""Ready-to-file bug reports: one per driver family that lacks update_host_replication.

Each report is a Markdown file in the shape of a Cinder bug on Launchpad: a title (the bug's
summary) and the description with its usual sections (description, steps to reproduce, expected
and actual results, environment), plus the family's own failover methods quoted by class, file and
line, and what its update_host_replication should return, in the driver guide's terms.

The files carry a first line that marks them as ours: a file without it is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import Refused, UsageError
from . import HOOK, Family, Survey

MARKER = "<!-- written by cinder-promote drivers --bug-reports: regenerate it rather than edit it -->"

SECTIONS = ("Description", "Steps to reproduce", "Expected result", "Actual result",
            "The driver's replication methods", "What update_host_replication should return", "Environment")

_WHAT = {
    "failover_host": "fails a standalone backend over (cinder failover-host)",
    "failover": "active-active: each member of a cluster fails over",
    "failover_completed": "active-active: completes a cluster's failover",
    "failover_replication": "group replication: fails a replicated group over",
    "enable_replication": "group replication: enables a group's replication",
    "disable_replication": "group replication: disables a group's replication",
}


@dataclass(frozen=True)
class BugReport:
    family: Family
    title: str
    body: str

    @property
    def filename(self) -> str:
        return f"{self.family.slug}.md"

    @property
    def text(self) -> str:
        return f"{MARKER}\n# {self.title}\n\n{self.body}"


def _code(text: str) -> str:
    return f"`{text}`"


def _driver_list(family: Family) -> str:
    return ", ".join(d.name for d in family.drivers)


def bug_report(family: Family, survey: Survey) -> BugReport:
    drivers = family.drivers
    first = drivers[0]
    aa = [d for d in drivers if d.active_active]
    groups = [d for d in drivers if d.group_replication]
    host = "cinder-1@replicated"
    title = (f"[{family.name}] {_driver_list(family)}: no {HOOK}, so after a replication target is promoted "
             "its volumes keep the failover's replication data")
    capabilities = ["failover of a backend (`failover_host`)"] if any(d.implements("failover_host")
                                                                     for d in drivers) else []
    if aa:
        capabilities.append("active-active clusters (`SUPPORTS_ACTIVE_ACTIVE = True`, `failover` and "
                            "`failover_completed`)")
    if groups:
        capabilities.append("group replication (`failover_replication`)")
    lines = [
        "## Description", "",
        f"The {family.name} volume driver{'s' if len(drivers) > 1 else ''} of Cinder "
        f"({', '.join(_code(d.driver) for d in drivers)}) support{'' if len(drivers) > 1 else 's'} replication: "
        + "; ".join(capabilities) + f". None implements `{HOOK}`.",
        "",
        "After backend A is lost and the service was failed over to its replica B, the admin promotes B: "
        "B becomes the backend's primary in cinder.conf, a new backend C its `replication_device`, and "
        "`cinder-manage db reset_active_backend` resets the service's (or cluster's) `replication_status` "
        "and `active_backend_id`. Nothing in Cinder then updates the volumes and groups: they still say "
        "`failed-over` and hold the replication data of the lost A-B pair (`replication_driver_data`, "
        "`provider_location`, ...).",
        "",
        f"`BaseVD.{HOOK}(context, replication_status, active_backend_id, volumes, groups=None)` is the driver "
        "hook for this: the volume manager calls it once at startup, right after `do_setup` and "
        "`check_for_setup_error`, with the status and backend id the database holds and every volume and "
        "group of the backend, and writes the driver's answer in bulk, in one transaction, under a fence "
        "that keeps other members of an active-active cluster out. A driver without it starts as before, "
        "so these drivers leave the promoted backend's per-volume replication data wrong.",
        "",
        "## Steps to reproduce", "",
        f"1. Configure a backend `{host}` with one of these drivers and `replication_device = backend_id:backend-b, ...`; "
        "create replicated volumes" + (" and replicated groups" if groups else "") + ".",
        f"2. Lose backend A; run `cinder failover-host {host} --backend_id backend-b`.",
        f"3. `cinder freeze-host {host}`; stop every cinder-volume of the backend; "
        f"`cinder service-disable {host} cinder-volume`"
        + (" (for a cluster: `cinder cluster-disable cluster@replicated` too)" if aa else "") + ".",
        "4. In cinder.conf, make B the backend's primary and C its `replication_device = backend_id:backend-c, ...`.",
        f"5. `cinder-manage db reset_active_backend --backend-host {host} --enable-replication` "
        f"(or `cinder-promote reset-active-backend --backend-host {host} --enable-replication`).",
        "6. Start cinder-volume.",
        f"7. `openstack volume show <volume> -c replication_status`, or `cinder-promote status --backend-host {host}` "
        "and `cinder-promote check`.",
        "",
        "## Expected result", "",
        f"At startup the driver's `{HOOK}` pairs every replicated volume with C (or finds the pairs that "
        "exist) and reports it: the volumes and groups say `enabled`, with the new pairs' "
        "`replication_driver_data`, and the service stays `enabled`.",
        "",
        "## Actual result", "",
        f"The driver has no `{HOOK}`: the service says `enabled` but every volume still says `failed-over`"
        " with the old pair's data; `cinder-promote check` reports `volumes-contradict-service`"
        + (" and `groups-contradict-service`" if groups else "") + ". The admin must fix each volume by "
        "other means (retype it to a non-replicated type and back, or edit the database).",
        "",
        "## The driver's replication methods", "",
        "| method | what it does | defined in | file:line |",
        "| --- | --- | --- | --- |",
    ]
    for method in family.methods():
        if method.name == HOOK:
            continue
        lines.append(f"| `{method.name}` | {_WHAT.get(method.name, '')} | `{method.owner}` | "
                     f"`{method.where}` |")
    lines += [
        "",
        "| driver | failover_host | active-active | group replication | update_host_replication | CI |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for d in drivers:
        lines.append(f"| `{d.name}` | {_yes(d.implements('failover_host'))} | {_yes(d.active_active)} | "
                     f"{_yes(d.group_replication)} | {_yes(d.ready)} | {d.ci_wiki_name or '-'} |")
    owner = sorted({m.owner for m in family.methods() if m.name == "failover_host"} or {first.name})
    lines += [
        "",
        "## What update_host_replication should return", "",
        f"Add `{HOOK}(self, context, replication_status, active_backend_id, volumes, groups=None)` to "
        f"{', '.join(_code(o) for o in owner)}, next to its `failover_host`, and return "
        "`(service_update, volume_updates, group_updates)`, the same shapes as `failover_host`:",
        "",
        "- `replication_status == 'enabled'` and `active_backend_id is None` (the admin promoted B with "
        "`--enable-replication`): set up (or find, since the method must be idempotent) the pair of each "
        "replicated volume with the `replication_device` now in cinder.conf, with one bulk query to the "
        "array, and return `({'replication_status': 'enabled'}, [{'volume_id': v.id, 'updates': "
        "{'replication_status': 'enabled', 'replication_driver_data': <the new pair's data>}}, ...], "
        + ("[{'group_id': g.id, 'updates': {'replication_status': 'enabled'}}, ...])`" if groups else "None)`")
        + "; leave out volumes that are not replicated (`not-capable`, `disabled`).",
        "- `replication_status == 'disabled'`: replication is torn down; return "
        "`({'replication_status': 'disabled'}, [{'volume_id': v.id, 'updates': {'replication_status': "
        "'disabled'}}, ...], ...)`.",
        "- anything else (still `failed-over`, `error`): `(None, [], [])`, nothing changes.",
        "",
        "Keys allowed: volumes `replication_status`, `replication_extended_status`, `replication_driver_data`, "
        "`provider_id`, `provider_location`, `provider_auth`, `status`; groups `replication_status`, "
        "`status`; service `replication_status`, `active_backend_id`. Every id must be one of those passed "
        "in, at most once; values are strings or None that fit their columns. The whole answer is validated "
        "before anything is written; an exception, or one bad entry, writes nothing and leaves the service "
        "in `error`."
        + (" In an active-active cluster only the member holding the fence calls it, once for the cluster."
           if aa else ""),
        "",
        "Verify it without a running service: `cinder-promote update-host-replication --backend-host "
        f"{host} --driver <module>:<Class> --driver-option key=value` runs the hook offline on a stopped "
        "service, and `cinder-promote bench startup` times it for thousands of volumes.",
        "",
        "## Environment", "",
        f"- Cinder {survey.cinder_version or '(version unknown)'}"
        + (" with the cinder-promote patch series" if survey.hook_in_base else "") + ".",
        f"- Found by `cinder-promote drivers` {__version__} "
        + ("(the driver modules imported)" if all(d.how == "imported" for d in drivers)
           else "(read from the source: " + ", ".join(f"{d.module}: {d.import_error or 'not imported'}"
                                                       for d in drivers if d.how == "read") + ")") + ".",
        "- Tags: drivers replication",
        "",
    ]
    return BugReport(family, title, "\n".join(lines))


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def bug_reports(survey: Survey) -> list[BugReport]:
    """One report per family whose drivers do not all implement the hook."""
    return [bug_report(f, survey) for f in survey.families() if not f.ready]


def write_bug_reports(reports: Sequence[BugReport], folder: Path) -> list[Path]:
    """Write the reports into `folder` (created if needed); refuse, writing nothing, when a file
    there would be overwritten that this command did not write."""
    targets = [(folder / r.filename, r) for r in reports]
    foreign = [str(path) for path, _ in targets if path.exists() and not _ours(path)]
    if foreign:
        raise Refused(f"refused to write the bug reports into {folder}: files there were not written by "
                      "cinder-promote; nothing was written", details=[f"{p} exists" for p in foreign])
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--bug-reports {folder}: not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    for path, report in targets:
        path.write_text(report.text)
    return [path for path, _ in targets]


def _ours(path: Path) -> bool:
    try:
        with path.open(errors="replace") as f:
            return f.readline().rstrip("\n") == MARKER
    except OSError:
        return False
