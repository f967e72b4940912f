"""Prune one run: read its rules (janitor.toml files, then this invocation's overrides), its
pins and metric values; plan; and carry the plan out through the executor. Used by
``janitor prune``, ``janitor watch`` and the Python API alike."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from janitor.core.planners import RulesPlanner
from janitor.core.values import check_rule, check_switch
from janitor.domain import rules
from janitor.domain.checkpoints import Run, ScanReport
from janitor.domain.errors import InvalidValue, UsageError
from janitor.domain.plans import Plan, RunPlan
from janitor.domain.policy import Overrides
from janitor.domain.results import RunResult
from janitor.storage import platform
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.metrics import load_metric
from janitor.usecases.executor import Executor

NO_OVERRIDES = Overrides()
RUNS_AT_ONCE = 8  # runs carried out at once by `prune` (each under its own lock)


def parse_overrides(origin: Literal["flag", "keyword"] = "flag", **given: Any) -> Overrides:
    """The rules of one invocation, by the rules' Python keywords (``keep_last``,
    ``older_than``, ``remove_incomplete``; None or absent: not given), from the command line
    (``origin="flag"``: counts may be text, "2") or the Python API (``origin="keyword"``:
    counts are ints, yes/no are bools). Durations and sizes are text with a unit ("2d",
    "20GB"), or a ``timedelta`` and an int of bytes. Errors name the flag or keyword."""
    spell = Overrides(origin=origin).source
    values: dict[str, Any] = {}
    for r in rules.rules():
        value = given.pop(r.keyword, None)
        if r.switch is not None:  # the yes/no that must come with the value
            switch = given.pop(r.switch.keyword, None)
            on = switch is not None and check_switch(switch, spell(r.switch.keyword))
            if value is not None and not on:
                raise UsageError(f"{spell(r.name)} goes with {spell(r.switch.keyword)}")
            if on and value is None:
                example = f" {r.metavar} (e.g. 1d)" if r.metavar else ""
                raise UsageError(f"{spell(r.switch.keyword)} needs {spell(r.name)}{example}")
        if value is not None:
            values[r.name] = check_rule(r.name, value, spell(r.name), text=origin == "flag")
    if given:
        known = [k for r in rules.rules() for k in (r.keyword, *_switch(r))]
        name = sorted(given)[0]
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"unknown rule {name} ({hint}known: {', '.join(known)})")
    return Overrides(origin=origin, **values)  # combined with janitor.toml in planner_for


def _switch(r: rules.Rule) -> tuple[str, ...]:
    return (r.switch.keyword,) if r.switch else ()


def planner_for(
    run: Run,
    overrides: Overrides = NO_OVERRIDES,
    fs: FileSystem = LOCAL,
    files: ConfigFiles | None = None,
) -> RulesPlanner:
    """The run's rules with the source of every value (janitor.toml files, then
    ``overrides``), its pins with theirs, and the metric values ``--keep-best`` ranks by.
    ``files``: the command's janitor.toml files (read once for all its runs)."""
    files = ConfigFiles(fs) if files is None else files
    try:
        policy, sources = files.policy_for(run.path, overrides)
    except InvalidValue as exc:  # the last line of defence: config checks values first
        raise UsageError(exc.worded(overrides.source(exc.field))) from None
    effective = policy.effective()
    metric = load_metric(run, effective.metric, fs) if effective.keep_best else None
    settings = files.run(run.path)
    pin_sources = settings.pin_sources()
    return RulesPlanner(policy, sources, settings.pinned, metric, pin_sources=pin_sources)


def plan_run(
    run: Run,
    overrides: Overrides = NO_OVERRIDES,
    now: float | None = None,
    fs: FileSystem = LOCAL,
    files: ConfigFiles | None = None,
) -> RunPlan:
    now = time.time() if now is None else now
    return planner_for(run, overrides, fs, files).plan(run, now)


def plan(report: ScanReport, overrides: Overrides = NO_OVERRIDES, now: float | None = None,
         fs: FileSystem = LOCAL) -> Plan:  # fmt: skip
    now = time.time() if now is None else now
    files = ConfigFiles(fs)
    return Plan(tuple(plan_run(r, overrides, now, fs, files) for r in report.runs),
                report.errors)  # fmt: skip


@dataclass
class Pruner:
    """Plan and execute run after run with one executor (one lock, one journal view)."""

    overrides: Overrides = field(default_factory=Overrides)
    executor: Executor = field(default_factory=Executor)
    fs: FileSystem = LOCAL
    files: ConfigFiles | None = None  # the janitor.toml files; by default read on first use

    def __post_init__(self) -> None:
        if self.files is None:
            self.files = ConfigFiles(self.fs)

    def run(
        self,
        run: Run,
        *,
        dry_run: bool = False,
        in_flight: Container[str] = frozenset(),
        shown: Callable[[RunPlan], None] | None = None,
        prepare: Callable[[RunPlan], RunPlan] | None = None,
    ) -> tuple[RunPlan, RunResult | None]:
        """Plan ``run``; let ``prepare`` have a last say (``watch --extract-on-save`` makes
        small models first and keeps sets without one; the plan it returns carries a planner
        that does the same again under the lock); hand the plan to ``shown`` (to print it
        before anything happens); execute it unless ``dry_run``. Files in ``in_flight`` are
        never opened."""
        rp = plan_run(run, self.overrides, time.time(), self.fs, self.files)
        if prepare is not None:
            rp = prepare(rp)
        if shown is not None:
            shown(rp)
        if dry_run:
            return rp, None
        return rp, self.executor.execute(rp, in_flight)

    def run_all(
        self,
        runs: Sequence[Run],
        *,
        dry_run: bool = False,
        shown: Callable[[RunPlan], None] | None = None,
        workers: int = RUNS_AT_ONCE,
        processes: bool = False,
        adjust: Callable[[list[RunPlan]], list[RunPlan]] | None = None,
    ) -> Iterator[tuple[RunPlan, RunResult | None]]:
        """``run`` for each of ``runs``, yielded in order. Every run is planned first; then
        up to ``workers`` runs are carried out at once, each under its own lock and with its
        own journal records, as separate janitors would: removals in several folders at
        once overlap the file system's waits (``find -delete`` removes one file at a time).
        With ``processes`` (the command line, on a local disk where a fork is safe:
        ``platform.worker_processes``), each run is carried out in a forked worker process,
        else in a thread: threads pass the GIL back and forth at every unlink.
        ``shown`` gets each plan in order, as its result is yielded. If the caller stops
        early, runs not started yet are not started (in processes, runs under way are
        stopped as a kill would stop them: the journal has what the next prune finishes).
        ``adjust`` sees every plan before any is carried out (min-free, max-total)."""
        plans = [plan_run(run, self.overrides, time.time(), self.fs, self.files) for run in runs]
        if adjust is not None:
            plans = adjust(plans)
        busy = sum(1 for rp in plans if rp.removals)
        if dry_run or workers <= 1 or busy <= 1:
            for rp in plans:
                if shown is not None:
                    shown(rp)
                yield rp, None if dry_run else self.executor.execute(rp)
            return
        forks = 1  # processes only for runs on a local disk
        if processes and all(self.fs.local_path(rp.run.path) is not None for rp in plans):
            forks = platform.worker_processes(busy, most=workers, min_units=2)
        if forks > 1:
            results = self._in_processes(plans, forks)
        else:
            results = self._in_threads(plans, min(workers, len(plans)))
        with contextlib.closing(results):
            for rp, result in zip(plans, results, strict=True):
                if shown is not None:
                    shown(rp)
                yield rp, result

    def _in_threads(self, plans: list[RunPlan], workers: int) -> Iterator[RunResult]:
        from concurrent.futures import ThreadPoolExecutor  # here: scan never loads it

        pool = ThreadPoolExecutor(workers, thread_name_prefix="janitor-run")
        try:
            futures = [pool.submit(self.executor.execute, rp) for rp in plans]
            for future in futures:
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _in_processes(self, plans: list[RunPlan], workers: int) -> Iterator[RunResult]:
        results = platform.forked_imap(self.executor.execute, plans, workers)
        if results is None:  # no processes to be had: threads
            results = self._in_threads(plans, workers)
        yield from results
