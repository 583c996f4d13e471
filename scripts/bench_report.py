"""Write docs/benchmarks.md and its charts from one run of the benches.

    python scripts/bench_report.py RUN.json [--out docs]

RUN.json is pytest-benchmark's `--benchmark-json` output of `pytest benches`
(scripts/bench-report makes it and calls this). Every ratio is computed from
two medians of that one run. The page is generated: edit this script, not
the page.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# benches/test_startup.py's boots: Cinder as released, a full promotion at every boot (the worst
# case), and a restart whose driver's answer changes nothing (the common case).
STARTUP_CASES = {"unpatched": "unpatched", "patched": "patched, full promotion", "patched-restart": "patched, restart"}


def startup_case(extra_info: dict) -> str:
    """How a start-up boot is named in the report."""
    return STARTUP_CASES.get(extra_info["who"], extra_info["who"])
STARTUP_PHASES = ("init_host", "hook", "load_volumes", "load_snapshots", "count_capacity", "publish_capabilities",
                  "cleanup", "init_host_with_rpc", "gc")

LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
DIALECTS = ("sqlite", "postgresql", "mysql")


def load(path: Path) -> tuple[dict, list[dict]]:
    run = json.loads(path.read_text())
    return run, run["benchmarks"]


def median(b: dict) -> float:
    return float(b["stats"]["median"])


def by(benchmarks: list[dict], **match: Any) -> list[dict]:
    return [b for b in benchmarks if all(b["extra_info"].get(k) == v for k, v in match.items())]


def one(benchmarks: list[dict], **match: Any) -> dict | None:
    found = by(benchmarks, **match)
    return found[0] if found else None


def seconds(s: float) -> str:
    return f"{s * 1000:,.1f} ms" if s < 1 else f"{s:,.2f} s"


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


# What one batch may cost: 10,000 records of ~1.2 KB and the database driver's buffer of them, or
# asyncpg's COPY buffer; a structure of the whole answer at a million volumes would be ten times this.
BATCH_BOUND = 64 * 2**20


def memory_bounds(e: dict) -> tuple[int, int]:
    """(how far the load rose above the records it keeps, how much the write phase added)."""
    peaks = e.get("peak_by_phase_bytes")
    if peaks is None:  # an older run: from the (downsampled) curve
        peaks = {}
        for _, rss, phase in e["samples"]:
            peaks[phase] = max(peaks.get(phase, 0), rss)
    ended = e["rss_at_end_of"]
    overshoot = max(0, peaks.get("load", 0) - ended.get("load", 0))
    growth = max(0, peaks.get("apply", 0) - ended.get("plan", ended.get("driver", 0)))
    return overshoot, growth


def planner_peak(e: dict) -> int:
    """How far the planner's working set rose above the memory at the end of the driver's call."""
    peaks = e.get("peak_by_phase_bytes") or {}
    return max(0, peaks.get("plan", 0) - e["rss_at_end_of"].get("driver", 0))


def plan_bytes(e: dict) -> int:
    """What the plan holds when the write starts (resident memory then, less at the end of the driver's call)."""
    ended = e["rss_at_end_of"]
    return max(0, ended.get("plan", 0) - ended.get("driver", 0))


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


class Report:
    def __init__(self, run: dict, benchmarks: list[dict], note: str = "") -> None:
        self.run, self.b, self.note = run, benchmarks, note
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, str, bool | None, str]] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    # -- sections -------------------------------------------------------------------------

    def hook(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for dialect in DIALECTS:
            ours = one(self.b, kind="hook", who="cinder-promote", dialect=dialect)
            cinder = one(self.b, kind="hook", who="cinder", dialect=dialect)
            if ours is None or cinder is None:
                continue
            ours_rate = ours["extra_info"]["rows"] / median(ours)
            cinder_rate = cinder["extra_info"]["rows"] / median(cinder)
            out[dialect] = {"ours": ours, "cinder": cinder, "ours_rate": ours_rate, "cinder_rate": cinder_rate,
                            "ratio": ours_rate / cinder_rate}
        return out

    def write(self) -> dict[tuple[str, str], dict]:
        out: dict[tuple[str, str], dict] = {}
        for dialect in DIALECTS:
            for case in ("distinct", "same"):
                ours = one(self.b, kind="write", dialect=dialect, case=case, method="ours")
                floors = [b for b in by(self.b, kind="write", dialect=dialect, case=case) if b["extra_info"]["method"] != "ours"]
                if ours is None or not floors:
                    continue
                best = min(floors, key=median)
                out[(dialect, case)] = {"ours": ours, "floors": floors, "best": best, "ratio": median(ours) / median(best)}
        return out

    def read(self) -> dict[str, dict]:
        """Per database: the read floors and the best of them."""
        out: dict[str, dict] = {}
        for dialect in DIALECTS:
            floors = by(self.b, kind="read", dialect=dialect)
            if floors:
                out[dialect] = {"floors": floors, "best": min(floors, key=median)}
        return out

    def floor_sum(self, hook: dict, write: dict, read: dict) -> dict[str, dict]:
        """Per database: the whole hook against its best read floor plus its best write floor (distinct
        values), as timed beside each round of the hook (`floors_beside`), else (older runs) the best of
        the read and write benches. Each floor: method, seconds and the rows it was timed on."""
        out: dict[str, dict] = {}
        for dialect, h in hook.items():
            e = h["ours"]["extra_info"]
            beside = e.get("floors_beside")
            if beside:
                r = {"method": beside["read"]["method"], "s": beside["read"]["median_s"], "rows": e["volumes"]}
                w = {"method": beside["write"]["method"], "s": beside["write"]["median_s"], "rows": e["volumes"]}
            else:
                r_bench, w_bench = read.get(dialect), write.get((dialect, "distinct"))
                if r_bench is None or w_bench is None:
                    continue
                r, w = ({"method": b["extra_info"]["method"], "s": median(b), "rows": b["extra_info"]["rows"]}
                        for b in (r_bench["best"], w_bench["best"]))
            floors = r["s"] + w["s"]
            out[dialect] = {"read": r, "write": w, "floors_s": floors, "beside": bool(beside),
                            "ratio": median(h["ours"]) / floors}
        return out

    def render(self) -> str:
        machine = self.run["machine_info"]
        facts = machine.get("cinder_promote", {})
        commit = self.run.get("commit_info", {})
        hook, write, read = self.hook(), self.write(), self.read()
        sums = self.floor_sum(hook, write, read)

        self.add("# Benchmarks", "",
                 "Generated by `make bench-report` (scripts/bench-report runs `pytest benches` and then"
                 " scripts/bench_report.py on its JSON, kept beside this page as `benchmarks.json`). Do not edit by"
                 " hand: rerun it.", "")
        self.add("## How to rerun", "",
                 "```sh",
                 "make bench          # the benches alone (starts PostgreSQL and MariaDB); prints pytest-benchmark's tables",
                 "make bench-report   # the benches, then this page and its charts",
                 "CINDER_PROMOTE_BENCH_SCALE=0.05 make bench   # a quick smoke run of the benches on 5% of the rows",
                 "cinder-promote bench startup --volumes 100000 --db-url URL --memory --chart hook.png   # one hook, by phase",
                 "```", "",
                 "The benches live in `benches/` (pytest-benchmark). `make test` never runs them (pytest's testpaths"
                 " is `tests/`), and no test asserts a duration: the targets are judged here, on ratios.", "")
        self.machine(machine, facts, commit)
        self.method()
        self.target_table(hook, write, sums)
        self.hook_section(hook, write)
        self.floors_section(hook, write, read, sums)
        self.write_section(write)
        self.startup_section(sums)
        self.planner_section()
        self.memory_section()
        self.process_section()
        return "\n".join(self.lines) + "\n"

    def machine(self, machine: dict, facts: dict, commit: dict) -> None:
        dbs = facts.get("databases", {})
        load = facts.get("load_average_at_start")
        busy = facts.get("busy_processes_at_start") or []
        self.add("## The machine and the run", "",
                 f"- Run: {self.run.get('datetime', '?')}, commit `{str(commit.get('id', '?'))[:12]}`"
                 f"{' (with uncommitted changes)' if commit.get('dirty') else ''}.",
                 f"- CPU: {facts.get('cpus', '?')} cores, {facts.get('cpu_model') or machine.get('cpu', {}).get('brand_raw', '?')};"
                 f" memory {facts.get('memory_kib', 0) / 2**20:,.1f} GiB; {machine.get('system', '?')} {machine.get('release', '')}.",
                 f"- Python {machine.get('python_version', '?')}; databases: "
                 + "; ".join(f"{LABELS.get(k, k)}: {v}" for k, v in dbs.items()) + ".",
                 "- PostgreSQL and MariaDB are the private loopback servers of `scripts/servers` (PostgreSQL with"
                 " `fsync=off`, `synchronous_commit=off`; MariaDB with `innodb_flush_log_at_trx_commit=0`), the same"
                 " for every method compared.",
                 f"- Load average {', '.join(f'{x:.2f}' for x in load) if load else '?'} when the run started"
                 f"{'; busy then: ' + ', '.join(busy) if busy else ''}. {self.note + ' ' if self.note else ''}Absolute"
                 " times move with whatever else runs; each ratio compares two medians of rounds taken close together in"
                 " the same run.",
                 f"- Scale: {facts.get('scale', 1)} (1 = the sizes stated below).", "")

    def method(self) -> None:
        self.add("## Method", "",
                 "- Every comparison is a ratio of two medians measured in the same run on the same machine, against a"
                 " baseline of that run: the pure-Python twin, the database's floor method, Cinder's own loop, or"
                 " cinder-manage.",
                 "- Rounds never reuse a written table: PostgreSQL leaves a dead row version behind each UPDATE and InnoDB"
                 " skips rows whose values do not change. SQLite and PostgreSQL rounds get a fresh copy of the seeded"
                 " database (file copy; `CREATE DATABASE ... TEMPLATE`), MariaDB rounds share one database, and every"
                 " round writes values no earlier round wrote. Seeded tables are analyzed, as autovacuum would have done."
                 " Before each timed round the copy is written out (`CHECKPOINT` on PostgreSQL, then `sync`; on MariaDB"
                 " the round waits for InnoDB's purge of the last round's write), so that no round pays for the"
                 " write-back of what preparing it, or an earlier round, left in memory. Every method writes values of"
                 " the same length (the reference driver's answer to a new target): on MariaDB a longer value than the"
                 " last round's cannot be written in place.",
                 "- The floors are the database and its driver alone: they run with Python's cyclic collector off. The"
                 " hook, and `ours` in the write benches, run with it as the hook's work has it (its youngest generation"
                 " only, `records_spared_by_collector`).",
                 "- The data: a stopped, promoted service `bench-node@bench` whose volumes (four pools) and groups are"
                 " `failed-over`; the reference driver answers a distinct pair per volume (`replication_status`,"
                 " `replication_driver_data`, `replication_extended_status`) and one shared update for the groups.",
                 "- Cinder's loop is Cinder 29.0.0's own `VolumeManager.failover` pattern with real Cinder objects in"
                 " Cinder's venv (`VolumeList.get_all`, then `volume.update()` and `volume.save()` per volume and per"
                 " group), booted once and timed per round without its start-up. It runs on fewer rows (2,000 volumes"
                 " and 20 groups) than the hook (100,000 and 100): they are compared in rows per second. The hook and"
                 " Cinder's loop of one database run one after the other, five timed rounds each after one untimed"
                 " warm-up round (first connections, both processes' caches).", "")

    def target_table(self, hook: dict, write: dict, sums: dict) -> None:
        rows = []
        for dialect in DIALECTS:
            h = hook.get(dialect)
            if h:
                rows.append((f"Whole hook at {h['ours']['extra_info']['volumes']:,} volumes, {LABELS[dialect]}",
                             ">= 100x Cinder's rows/s",
                             f"{h['ratio']:,.1f}x ({h['ours_rate']:,.0f} vs {h['cinder_rate']:,.0f} rows/s)",
                             h["ratio"] >= 100, "`pytest benches/test_hook.py`"))
        for dialect, f in sums.items():
            rows.append((f"Whole hook against the floors, {LABELS[dialect]}", "<= 1.25x best read floor + best write floor",
                         f"{f['ratio']:.2f}x ({seconds(median(hook[dialect]['ours']))} vs {f['read']['method']}"
                         f" {seconds(f['read']['s'])} + {f['write']['method']} {seconds(f['write']['s'])}"
                         f"{', timed beside each round' if f['beside'] else ''})", f["ratio"] <= 1.25,
                         "`pytest benches/test_hook.py`" if f["beside"] else
                         "`pytest benches/test_hook.py benches/test_read.py benches/test_write.py`"))
        for dialect in DIALECTS:
            w = write.get((dialect, "distinct"))
            if w:
                rows.append((f"Write phase, distinct values, {LABELS[dialect]}", "<= 1.5x the floor",
                             f"{w['ratio']:.2f}x ({seconds(median(w['ours']))} vs {w['best']['extra_info']['method']}"
                             f" {seconds(median(w['best']))})", w["ratio"] <= 1.5, "`pytest benches/test_write.py`"))
        for dialect in DIALECTS:
            w = write.get((dialect, "same"))
            if w:
                by_ids = next((b for b in w["floors"] if b["extra_info"]["method"] == "by-ids"), None)
                also = (f"; {median(w['ours']) / median(by_ids):.2f}x the same UPDATE by the named ids"
                        if by_ids is not None and by_ids is not w["best"] else "")
                rows.append((f"Write phase, identical values, {LABELS[dialect]}", "<= 1.5x the floor",
                             f"{w['ratio']:.2f}x ({seconds(median(w['ours']))} vs {w['best']['extra_info']['method']}"
                             f" {seconds(median(w['best']))}{also})", w["ratio"] <= 1.5, "`pytest benches/test_write.py`"))
        for shape in ("distinct", "mixed"):
            native = one(self.b, kind="planner", engine="native", size=100_000, shape=shape)
            twin = one(self.b, kind="planner", engine="reference", size=100_000, shape=shape)
            if native and twin:
                ratio = median(twin) / median(native)
                rows.append((f"Native planner at 100,000 updates ({shape} answer): speed", ">= 20x the twin",
                             f"{ratio:.1f}x ({seconds(median(native))} vs {seconds(median(twin))})", ratio >= 20,
                             "`pytest benches/test_planner.py`"))
                over = native["extra_info"]["peak_over_input"]
                rows.append((f"Native planner at 100,000 updates ({shape} answer): peak memory", "<= 2x the driver's input",
                             f"{over:.2f}x ({mib(native['extra_info']['peak_bytes'])} for {mib(native['extra_info']['input_bytes'])})",
                             over <= 2, "`pytest benches/test_planner.py`"))
        million = max(by(self.b, kind="memory"), key=lambda b: b["extra_info"]["volumes"], default=None)
        if million:
            e = million["extra_info"]
            overshoot, growth = memory_bounds(e)
            rows.append((f"{e['volumes']:,} volumes on PostgreSQL, memory",
                         f"the hook's buffers bounded by the batch ({e['load_batch']:,} rows), whatever the size",
                         f"done in {seconds(e['total_s'])}, peak {mib(e['peak_bytes'])}; the load rose {mib(overshoot)} above"
                         f" the records it keeps, the write added {mib(growth)}; the planner's working set, O(n) by design"
                         f" (whole answer validated before any write), peaked {mib(planner_peak(e))} above the answer"
                         f" ({planner_peak(e) / max(1, e['answer_bytes']):.2f}x its size)",
                         overshoot <= BATCH_BOUND and growth <= BATCH_BOUND, "`pytest benches/test_million.py`"))
        patched = [b for b in by(self.b, kind="startup") if b["extra_info"]["who"] != "unpatched"]
        for b in sorted(patched, key=lambda b: (b["extra_info"]["dialect"], b["extra_info"]["volumes"], b["extra_info"]["who"])):
            e = b["extra_info"]
            base_s = self.startup_base_s(b)
            if base_s is None:
                continue
            added = median(b) / base_s - 1
            case = startup_case(e)
            rows.append((f"cinder-volume `init_host` at {e['volumes']:,} volumes, {LABELS[e['dialect']]}, {case}",
                         "the hook adds <= 10% to the unpatched start-up",
                         f"{added * 100:+.1f}% ({seconds(median(b))} patched vs {seconds(base_s)} unpatched)",
                         added <= 0.10, "`pytest benches/test_startup.py`"))
        self.add("## Targets (issues 4 and 15)", "", "| target | wanted | measured | verdict | bench |", "| --- | --- | --- | --- | --- |")
        for name, wanted, measured, ok, command in rows:
            self.add(f"| {name} | {wanted} | {measured} | {verdict(ok)} | {command} |")
        self.add("", "![ratios of the run](benchmarks.png)", "")

    def hook_section(self, hook: dict, write: dict) -> None:
        self.add("## The whole hook against Cinder's own loop", "",
                 "| database | cinder-promote (fence, load, driver, plan, write, release) | Cinder 29.0.0's per-object loop | ratio |",
                 "| --- | --- | --- | --- |")
        for dialect, h in hook.items():
            o, c = h["ours"], h["cinder"]
            self.add(f"| {LABELS[dialect]} | {o['extra_info']['volumes']:,} volumes + {o['extra_info']['groups']} groups in"
                     f" {seconds(median(o))}: {h['ours_rate']:,.0f} rows/s | {c['extra_info']['volumes']:,} volumes +"
                     f" {c['extra_info']['groups']} groups in {seconds(median(c))}: {h['cinder_rate']:,.0f} rows/s |"
                     f" {h['ratio']:,.1f}x |")
        self.add("", "Phases of the hook (medians, seconds):", "", "| database | fence | load | driver | plan | apply |",
                 "| --- | --- | --- | --- | --- | --- |")
        for dialect, h in hook.items():
            p = h["ours"]["extra_info"]["phases_s"]
            self.add(f"| {LABELS[dialect]} | " + " | ".join(f"{p.get(k, 0):.3f}" for k in ("fence", "load", "driver", "plan", "apply")) + " |")
        self.add("")
        notes = []
        for dialect, h in hook.items():
            if h["ratio"] >= 100:
                continue
            w = write.get((dialect, "distinct"))
            if not w:
                continue
            rows = w["best"]["extra_info"]["rows"]
            floor_rate = rows / median(w["best"])
            p = h["ours"]["extra_info"]["phases_s"]
            rest = sum(v for k, v in p.items() if k != "apply")
            notes.append(
                f"- **{LABELS[dialect]} misses the 100x target** ({h['ratio']:.1f}x). The write phase alone is bounded by the"
                f" database's own cost of updating Cinder's `volumes` rows: the floor method ({w['best']['extra_info']['method']},"
                f" nothing else) writes {floor_rate:,.0f} rows/s in this run, {floor_rate / h['cinder_rate']:.0f}x Cinder's loop: at"
                f" 100x Cinder's loop the whole hook has {rows / (100 * h['cinder_rate']):.2f} s, of which the floor's write"
                f" alone takes {rows / floor_rate:.2f} s. The hook's apply took"
                f" {p.get('apply', 0):.2f} s of {sum(p.values()):.2f} s; everything else (fence, load, driver, plan) {rest:.2f} s.")
        if notes:
            self.add("What holds it back:", "", *notes,
                     "- On PostgreSQL an UPDATE writes a new version of each ~500-byte row and, since the pages of a freshly"
                     " loaded table have no free space for a heap-only update, a new entry in each of the table's six"
                     " indexes (`EXPLAIN (ANALYZE, WAL)`: about 8 WAL records per row). That is the same for every method and"
                     " for Cinder's own saves; only a table with free space in its pages (fillfactor, which we may not"
                     " change on Cinder's tables) would make it cheaper.", "")

    def floors_section(self, hook: dict, write: dict, read: dict, sums: dict) -> None:
        if not read:
            return
        self.add("## The load against each database's read floor", "",
                 "The host's 100,000 live volumes (every column, pools included, by id) read by the database driver"
                 " alone (`benches/floors.py`, read floors), five rounds after one warm-up; the hook's own load is the"
                 " `load` phase above. The whole hook is then compared with the sum of the best read floor and the best"
                 " write floor (distinct values) of its database: what the database and its fastest driver need at"
                 " least to read and write the same rows, with no driver, planning or fence."
                 + (" Those two floors are timed again right before each round of the hook, each settled first as in its"
                    " own bench (the write on a copy of its own), and the sum below takes their medians from there:"
                    " measured minutes apart, the same code moved by up to a fifth between benches of one run on this"
                    " shared machine." if any(f["beside"] for f in sums.values()) else ""), "",
                 "| database | method | median | rows/s | hook's load / this |", "| --- | --- | --- | --- | --- |")
        for dialect, r in read.items():
            load = hook[dialect]["ours"]["extra_info"]["phases_s"].get("load") if dialect in hook else None
            for b in sorted(r["floors"], key=median):
                m = median(b)
                self.add(f"| {LABELS[dialect]} | {b['extra_info']['method']} | {seconds(m)} |"
                         f" {b['extra_info']['rows'] / m:,.0f} | {f'{load / m:.2f}x' if load else 'n/a'} |")
        self.add("")
        if sums:
            self.add("| database | whole hook | best read floor | best write floor | sum | hook / sum |",
                     "| --- | --- | --- | --- | --- | --- |")
            for dialect, f in sums.items():
                self.add(f"| {LABELS[dialect]} | {seconds(median(hook[dialect]['ours']))} |"
                         f" {f['read']['method']} {seconds(f['read']['s'])} |"
                         f" {f['write']['method']} {seconds(f['write']['s'])} | {seconds(f['floors_s'])} |"
                         f" {f['ratio']:.2f}x |")
            self.add("")
            stale = []
            for dialect, f in sums.items():
                own = {"read": read.get(dialect, {}).get("best"), "write": write.get((dialect, "distinct"), {}).get("best")}
                for kind, best in own.items():
                    if f["beside"] and best is not None and best["extra_info"]["method"] != f[kind]["method"]:
                        stale.append(f"- {LABELS[dialect]}: the {kind} floor timed beside the hook is"
                                     f" `{f[kind]['method']}`, but the fastest in this run's own {kind} bench was"
                                     f" `{best['extra_info']['method']}` ({seconds(median(best))}); floors.py's"
                                     f" BEST_{kind.upper()} names the fastest of the earlier full runs.")
            if stale:
                self.add(*stale, "")

    def startup_base_s(self, b: dict) -> float | None:
        """The unpatched start a patched case is compared with: the median of the unpatched boots taken
        beside its own (`paired_unpatched_s`), else of the unpatched case's boots."""
        e = b["extra_info"]
        if e.get("paired_unpatched_s"):
            return statistics.median(e["paired_unpatched_s"])
        base = one(self.b, kind="startup", who="unpatched", dialect=e["dialect"], volumes=e["volumes"])
        return None if base is None else median(base)

    def startup_section(self, sums: dict) -> None:
        rows = sorted(by(self.b, kind="startup"), key=lambda b: (b["extra_info"]["dialect"], b["extra_info"]["volumes"],
                                                                   b["extra_info"]["who"]))
        if not rows:
            return
        self.add("## The feared start-up cost: cinder-volume's `init_host`, patched against unpatched", "",
                 "A real cinder-volume service (`Service.create` then `start()`: the driver's `do_setup`, `init_host`"
                 " over every volume of the host, the RPC servers, `init_host_with_rpc`) booted on a database holding the"
                 " host's volumes, once with Cinder 29.0.0 as released and once with the patch series, whose `init_host`"
                 " runs the startup hook with cinder-promote's reference driver (`benches/test_startup.py`). Each boot is"
                 " a fresh process; the time is the service's start, measured inside it ("
                 + ", ".join(f"{n} boots per case at {v:,} volumes" for v, n in sorted(
                     {b["extra_info"]["volumes"]: len(b["stats"]["data"]) for b in rows}.items())) + ")."
                 + (" Each patched boot comes right after an unpatched one on the same database (`unpatched beside it`,"
                    " the median of those boots), and `vs unpatched` compares with them: the machine drifts between cases"
                    " run minutes apart." if any(b["extra_info"].get("paired_unpatched_s") for b in rows) else ""), "",
                 "| database | volumes | Cinder | median | unpatched beside it | vs unpatched | hook inside it |",
                 "| --- | --- | --- | --- | --- | --- | --- |")
        for b in rows:
            e = b["extra_info"]
            hook_s = e.get("hook_s")
            base_s = self.startup_base_s(b) if e["who"] != "unpatched" else None
            paired = e.get("paired_unpatched_s")
            versus = f"{(median(b) / base_s - 1) * 100:+.1f}%" if base_s is not None else "-"
            self.add(f"| {LABELS[e['dialect']]} | {e['volumes']:,} | {startup_case(e)} |"
                     f" {seconds(median(b))} | {seconds(statistics.median(paired)) if paired else '-'} | {versus} |"
                     f" {seconds(hook_s) if hook_s is not None else '-'} |")
        self.add("")
        self.startup_misses(rows, sums)
        phased = [b for b in rows if b["extra_info"].get("phases_s")]
        if phased:
            names = [n for n in STARTUP_PHASES if any(n in b["extra_info"]["phases_s"] for b in phased)]
            self.add("Where the start's time goes (medians of the boots; `init_host` holds the steps after it up to"
                     " `cleanup`, which is CleanableManager's part of it; `gc` is the cyclic collector's time anywhere"
                     " in the start, `full gc` its full collections; the hook's own phases follow its time):", "",
                     "| database | volumes | Cinder | " + " | ".join(names) + " | full gc | the hook's phases |",
                     "| --- | --- | --- | " + " | ".join("---" for _ in names) + " | --- | --- |")
            for b in phased:
                e = b["extra_info"]
                cells = [seconds(e["phases_s"][n]) if n in e["phases_s"] else "-" for n in names]
                hook_phases = ", ".join(f"{k} {seconds(v)}" for k, v in (e.get("hook_phases_s") or {}).items()) or "-"
                full = e.get("full_collections")
                self.add(f"| {LABELS[e['dialect']]} | {e['volumes']:,} | {startup_case(e)} | "
                         + " | ".join(cells) + f" | {'-' if full is None else f'{full:g}'} | {hook_phases} |")
            self.add("")

    def startup_misses(self, rows: list[dict], sums: dict) -> None:
        """For each start-up case over the target: what the database alone needs of the 10% it is
        allowed, and where the start's growth went (the hook, Cinder's own load and collector)."""
        missed = []
        for b in rows:
            e = b["extra_info"]
            base = one(self.b, kind="startup", who="unpatched", dialect=e["dialect"], volumes=e["volumes"])
            base_s = self.startup_base_s(b)
            f = sums.get(e["dialect"])
            if e["who"] == "unpatched" or base is None or base_s is None or f is None or median(b) <= 1.1 * base_s:
                continue
            # The floors of this run were measured at the hook bench's size: taken per row.
            read_s = f["read"]["s"] * e["volumes"] / f["read"]["rows"]
            write_s = f["write"]["s"] * e["volumes"] / f["write"]["rows"] if e["who"] == "patched" else 0.0
            budget = 0.1 * base_s
            missed.append(
                f"- **{LABELS[e['dialect']]}, {e['volumes']:,} volumes, {startup_case(e)}**"
                f" ({(median(b) / base_s - 1) * 100:+.1f}%): the 10% target allows {seconds(budget)}; the"
                f" database's own floors for these rows take {seconds(read_s + write_s)} of it"
                f" ({(read_s + write_s) / base_s * 100:.1f}% of the unpatched start: read"
                f" `{f['read']['method']}` {seconds(read_s)}"
                + (f", write `{f['write']['method']}` {seconds(write_s)}" if write_s else ", nothing written")
                + "; the floors of this run, per row)" + self.startup_left(e, budget - read_s - write_s)
                + f"; the start took {seconds(median(b) - base_s)} more,"
                f" of which the hook {seconds(e['hook_s'])}" + self.startup_rest(e, base["extra_info"]) + ".")
        if missed:
            self.add("What holds the start-up back where it misses the target:", "", *missed, "")

    @staticmethod
    def startup_left(patched: dict, left_s: float) -> str:
        """What the target leaves beside the floors, against what the driver's answer and its planning took."""
        phases = patched.get("hook_phases_s") or {}
        answer_s = phases.get("driver", 0.0) + phases.get("plan", 0.0)
        if left_s <= 0:
            return ", more than the target allows"
        return (f", which leaves {seconds(left_s)} for everything else the hook does; the driver's answer and its"
                f" planning alone took {seconds(answer_s)}")

    @staticmethod
    def startup_rest(patched: dict, unpatched: dict) -> str:
        """Where the rest of a start's growth went: Cinder's own steps, as medians against the unpatched
        boots taken beside the patched ones (`paired_unpatched_phases_s`), else the unpatched case's."""
        paired = patched.get("paired_unpatched_phases_s")
        base, which = (paired, "beside it") if paired else (unpatched["phases_s"], "of the unpatched case")
        steps = [(name, patched["phases_s"].get(name, 0.0) - base.get(name, 0.0)) for name in ("load_volumes", "gc")]
        return f"; Cinder's own steps against the unpatched boots {which}: " + ", ".join(
            f"`{name}` {'+' if delta >= 0 else '-'}{seconds(abs(delta))}" for name, delta in steps)

    def write_section(self, write: dict) -> None:
        self.add("## The write phase against each database's floor", "",
                 "Same updates, same run; each round on a fresh copy with new values (see Method). `ours` is the hook's"
                 " own write phase (`hook.write_plan` in `bulk.transaction`: on PostgreSQL, with the asyncpg connection it"
                 " opens) on the planner's plan of that answer. The floors are written on the database driver alone"
                 " (`benches/floors.py`).", "",
                 "| database | answer | method | median | rows/s | ours / this |", "| --- | --- | --- | --- | --- | --- |")
        for (dialect, case), w in write.items():
            ours = median(w["ours"])
            for b in [w["ours"], *sorted(w["floors"], key=median)]:
                m = median(b)
                self.add(f"| {LABELS[dialect]} | {case} | {b['extra_info']['method']} | {seconds(m)} |"
                         f" {b['extra_info']['rows'] / m:,.0f} | {ours / m:.2f}x |")
        self.add("")
        slow = [(d, w) for (d, case), w in write.items() if case == "same" and w["ratio"] > 1.5]
        for dialect, w in slow:
            self.add(f"- **{LABELS[dialect]}, identical values, misses 1.5x** ({w['ratio']:.2f}x) against"
                     f" `{w['best']['extra_info']['method']}`. The hook writes exactly the rows the driver named"
                     " (SPEC section 5): by id chunks, or, on MariaDB, by host when a locking read of the host's live"
                     " ids under the UPDATE's locks proves them equal to the named ids, because a volume created on the host meanwhile must"
                     " not be written. Against the same UPDATE by the named ids (`by-ids`) the hook's write is in the"
                     " table above.")
        mysql_same = write.get(("mysql", "same"))
        if mysql_same and mysql_same["ratio"] > 1.5:
            host = median(mysql_same["best"])
            by_ids = sorted((b for b in mysql_same["floors"] if b["extra_info"]["method"].startswith("by-ids")), key=median)
            if by_ids:
                per_id = (median(by_ids[0]) - host) / by_ids[0]["extra_info"]["rows"] * 1e6
                named = ", ".join(f"`{b['extra_info']['method']}` {median(b) / host:.2f}x" for b in by_ids)
                fastest, in_lists = by_ids[0], next((b for b in by_ids if b["extra_info"]["method"] == "by-ids"), None)
                if median(fastest) / host <= 1.5:
                    verdict = f"`{fastest['extra_info']['method']}` is within 1.5x"
                elif in_lists is not None and fastest is not in_lists:
                    verdict = (f"none is within 1.5x; the fastest, `{fastest['extra_info']['method']}`, takes"
                               f" {median(fastest) / median(in_lists):.2f}x the time of the IN lists the hook sends,"
                               " which it keeps (one statement per chunk, no temporary table) while both miss 1.5x")
                else:
                    verdict = "none is within 1.5x, and the IN lists the hook sends are the fastest of them"
                self.add("- On MariaDB the hook's write of identical values is the UPDATE by host, then the exact-rows"
                         " proof under its locks (docs/decisions.md): a locking read of the host's live ids, compared as"
                         " a set with the named ids. Measured by hand on 100,000 volumes the read and the comparison took"
                         " about 0.1 s after an UPDATE of about 0.4 s: the proof is what separates the hook from"
                         " `set-based`.")
                self.add(f"- On MariaDB naming the rows costs, even the fastest way, {per_id:.1f} us per id more than the"
                         " UPDATE by host, which walks the rows in order: the ids are parsed (an IN list of more than"
                         " 1,000 values becomes a materialized subquery) and each is looked up by primary key. Every"
                         f" way of naming them measured in this run, against the UPDATE by host: {named}"
                         " (`benches/floors.py`: IN lists, a MEMORY temporary table of the ids joined, one `JSON_TABLE`"
                         f" join). Each writes exactly the named rows; {verdict}.")
        if slow:
            self.add("")

    def planner_section(self) -> None:
        self.add("## The planner: native against its pure-Python twin", "",
                 "The driver's answer is built with the bulk helper, as a driver builds it: `distinct` is the reference"
                 " driver's answer after a promotion (three columns, one of them distinct per volume); `mixed` has a third"
                 " changing status, a third distinct pairs and a third one shared update. Peak memory is measured in a"
                 " process of its own (`benches/planner_memory.py`): the resident high-water mark during the call (reset"
                 " just before it) minus the resident memory before it, so it includes the native module's allocations"
                 " and the plan it returns. The driver's input is the size of the answer's Python objects.", "",
                 "| answer | updates | native | twin | speed-up | native peak / input | twin peak / input |",
                 "| --- | --- | --- | --- | --- | --- | --- |")
        groups: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
        for b in by(self.b, kind="planner"):
            e = b["extra_info"]
            groups[(e["shape"], e["size"])][e["engine"]] = b
        for (shape, size), engines in sorted(groups.items()):
            n, t = engines.get("native"), engines.get("reference")
            if not (n and t):
                continue
            self.add(f"| {shape} | {n['extra_info']['updates']:,} | {seconds(median(n))} | {seconds(median(t))} |"
                     f" {median(t) / median(n):.1f}x | {n['extra_info']['peak_over_input']:.2f}x of"
                     f" {mib(n['extra_info']['input_bytes'])} | {t['extra_info']['peak_over_input']:.2f}x |")
        self.add("")
        missed = [(shape, median(e["reference"]) / median(e["native"])) for (shape, size), e in sorted(groups.items())
                  if size == 100_000 and "native" in e and "reference" in e
                  and median(e["reference"]) / median(e["native"]) < 20]
        if missed:
            self.add("What holds the native planner back"
                     f" ({', '.join(f'{shape} answer {ratio:.1f}x' for shape, ratio in missed)} at 100,000 updates):", "",
                     "- Reading the driver's answer, which needs the GIL: for each entry the entry dict, its id, the map of"
                     " live rows, the updates dict and its strings, each a separate Python object (about six cache misses"
                     " per entry in a 50 MiB answer). A profile at 100,000 distinct updates (perf, `_native` built with"
                     " timing probes) put it at about 45 ms of 80 ms, the checking and planning without the GIL at about"
                     " 25 ms, building the plan's lists about 6 ms. The profile first showed the lookups in the map of"
                     " live rows (a cache miss each: now matched in the map's own order, as drivers answer) and reference"
                     " counting of every item (now borrowed); what is left has no single hot spot.",
                     "- The twin's time includes Python's garbage collector walking the heap it grows, so the ratio moves"
                     " with what else the process holds: the same code measured between 10x and 16x on the distinct answer across"
                     " runs of this machine.", "")

    def memory_section(self) -> None:
        runs = sorted(by(self.b, kind="memory"), key=lambda b: b["extra_info"]["volumes"])
        if not runs:
            return
        self.add("## A million volumes on PostgreSQL: the memory curve", "",
                 "The whole hook in a process of its own, resident memory sampled every 20 ms"
                 " (`benches/hook_memory.py`; `cinder-promote bench startup --memory` draws the same curve)."
                 " The volume records handed to the driver and the driver's answer are O(n) by the driver API (a"
                 " list in, a list out). What the hook itself adds while it streams is bounded by the batch: the load reads"
                 f" {runs[-1]['extra_info']['load_batch']:,} rows at a time through a server-side cursor (the load never"
                 " rises above the records it keeps), and the write is one COPY that asyncpg encodes as it sends (the"
                 " write adds nothing that grows with the rows). The validation and planning of the whole answer must"
                 " happen before any write (SPEC section 5), so the planner's working set is O(n): about half the size of"
                 " the driver's answer while it runs (the peak of the curve), after which the plan keeps references to the"
                 " driver's strings rather than copies.", "",
                 "| volumes | total | load | driver | plan | apply | records (load) | driver's answer | load above its records"
                 " | planner's peak above the answer | plan kept | write adds | peak |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for b in runs:
            e = b["extra_info"]
            p = e["phases_s"]
            self.add(f"| {e['volumes']:,} | {seconds(e['total_s'])} | " + " | ".join(f"{p.get(k, 0):.2f} s" for k in ("load", "driver", "plan", "apply"))
                     + f" | {mib(e['records_bytes'])} ({e['records_bytes'] / e['volumes']:,.0f} B/volume) |"
                     f" {mib(e['answer_bytes'])} ({e['answer_bytes'] / e['volumes']:,.0f} B/volume) |"
                     f" {mib(memory_bounds(e)[0])} | {mib(planner_peak(e))} | {mib(plan_bytes(e))} | {mib(memory_bounds(e)[1])} |"
                     f" {mib(e['peak_bytes'])} |")
        self.add("", "![memory of the hook over time](benchmarks-memory.png)", "")

    def process_section(self) -> None:
        rows = by(self.b, kind="process")
        if not rows:
            return
        self.add("## Whole-process time against cinder-manage", "",
                 "From exec to exit, interpreter start-up and imports included (Cinder 29.0.0's `cinder-manage` in its"
                 " venv). The reset runs on a stopped, disabled, frozen, failed-over service put back before each round;"
                 " cinder-manage's reset checks nothing and writes one row, ours checks every precondition, writes with"
                 " compare-and-swap and journals.", "",
                 "| command | database | cinder-promote | cinder-manage | ratio |", "| --- | --- | --- | --- | --- |")
        seen = set()
        for b in rows:
            e = b["extra_info"]
            key = (e["command"], e.get("dialect"))
            if key in seen:
                continue
            seen.add(key)
            ours = one(rows, command=e["command"], dialect=e.get("dialect"), who="cinder-promote")
            cinder = one(rows, command=e["command"], dialect=e.get("dialect"), who="cinder-manage")
            if ours and cinder:
                self.add(f"| `{e['command']}` | {LABELS.get(e.get('dialect') or '', '-')} | {seconds(median(ours))} |"
                         f" {seconds(median(cinder))} | {median(cinder) / median(ours):.1f}x faster |")
        self.add("")


def charts(run: dict, benchmarks: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = Report(run, benchmarks)
    hook, write = report.hook(), report.write()
    fig, axes = plt.subplots(2, 2, figsize=(11, 9.5))

    ax = axes[0][0]
    names = [LABELS[d] for d in hook]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [h["ours_rate"] for h in hook.values()], 0.4, label="cinder-promote hook")
    ax.bar([i + 0.2 for i in x], [h["cinder_rate"] for h in hook.values()], 0.4, label="Cinder's per-object loop")
    for i, h in enumerate(hook.values()):
        ax.text(i, h["ours_rate"] * 1.1, f"{h['ratio']:.1f}x", ha="center", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylim(top=max((h["ours_rate"] for h in hook.values()), default=1) * 20)  # room for the labels and legend
    ax.set_xticks(list(x), names)
    ax.set_ylabel("rows per second (log)")
    ax.set_title("Whole hook vs Cinder's loop", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[0][1]
    labels, values, colors = [], [], []
    for (dialect, case), w in write.items():
        for b in [w["ours"], *sorted(w["floors"], key=median)]:
            labels.append(f"{LABELS[dialect]} {case}\n{b['extra_info']['method']}")
            values.append(b["extra_info"]["rows"] / median(b))
            colors.append("tab:blue" if b["extra_info"]["method"] == "ours" else "tab:gray")
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=5.5)
    ax.invert_yaxis()
    ax.set_xlabel("rows per second")
    ax.set_title("Write phase (blue) vs floor methods (grey)", fontsize=10)

    ax = axes[1][0]
    for engine, style in (("native", "o-"), ("reference", "s--")):
        points = sorted((b["extra_info"]["updates"], median(b)) for b in by(benchmarks, kind="planner", engine=engine, shape="distinct"))
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, label="native" if engine == "native" else "pure-Python twin")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("updates (distinct answer)")
    ax.set_ylabel("seconds (log)")
    ax.set_title("Planner", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1][1]
    rows = by(benchmarks, kind="process")
    keys = []
    for b in rows:
        k = (b["extra_info"]["command"], b["extra_info"].get("dialect"))
        if k not in keys:
            keys.append(k)
    for j, who in enumerate(("cinder-promote", "cinder-manage")):
        vals = []
        for command, dialect in keys:
            b = one(rows, command=command, dialect=dialect, who=who)
            vals.append(median(b) if b else 0)
        ax.bar([i + (j - 0.5) * 0.4 for i in range(len(keys))], vals, 0.4, label=who)
    ax.set_xticks(range(len(keys)), [f"{c}\n{LABELS.get(d or '', '')}" for c, d in keys], fontsize=7)
    ax.set_ylabel("seconds, whole process")
    ax.set_title("Process time vs cinder-manage", fontsize=10)
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(out / "benchmarks.png", dpi=100)
    plt.close(fig)

    runs = sorted(by(benchmarks, kind="memory"), key=lambda b: b["extra_info"]["volumes"])
    if runs:
        from cinder_promote.bench import plot_memory

        fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
        for ax, b in zip(axes[0], runs):
            plot_memory(ax, [tuple(s) for s in b["extra_info"]["samples"]])
            ax.set_title(f"{b['extra_info']['volumes']:,} volumes on PostgreSQL", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "benchmarks-memory.png", dpi=100)
        plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--note", default="", help="A sentence about the machine during the run (e.g. that it was shared).")
    args = parser.parse_args()
    run, benchmarks = load(args.run)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.run.resolve() != (args.out / "benchmarks.json").resolve():
        shutil.copyfile(args.run, args.out / "benchmarks.json")
    charts(run, benchmarks, args.out)
    (args.out / "benchmarks.md").write_text(Report(run, benchmarks, args.note).render())
    print(f"wrote {args.out / 'benchmarks.md'}, benchmarks.png, benchmarks-memory.png and benchmarks.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
