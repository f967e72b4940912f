"""Prune one run: read its rules (janitor.toml files, then this invocation's overrides), its
pins and metric values; plan; and carry the plan out through the executor. Used by
``janitor prune``, ``janitor watch`` and the Python API alike."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Container, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from janitor.core.planners import RulesPlanner
from janitor.core.values import check_rule
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


def parse_overrides(
    *,
    keep_last: int | None = None,
    keep_every: int | None = None,
    keep_within: str | None = None,
    keep_best: int | None = None,
    metric: str | None = None,
    mode: str | None = None,
    max_size: str | int | None = None,
    remove_incomplete: bool = False,
    older_than: str | None = None,
    origin: Literal["flag", "keyword"] = "flag",
) -> Overrides:
    """The rules of one invocation, as typed (``2d``, ``20GB``) on the command line or given
    as keywords to the Python API; errors name the flag or keyword."""
    spell = Overrides(origin=origin).source
    older = spell("remove_incomplete_older_than")
    if older_than is not None and not remove_incomplete:
        raise UsageError(f"{older} goes with {spell('remove_incomplete')}")
    if remove_incomplete and older_than is None:
        raise UsageError(f"{spell('remove_incomplete')} needs {older} DURATION (e.g. 1d)")

    given = {
        "keep_last": keep_last, "keep_every": keep_every, "keep_within": keep_within,
        "keep_best": keep_best, "metric": metric, "mode": mode, "max_size": max_size,
        "remove_incomplete_older_than": older_than,
    }  # fmt: skip
    values = {k: check_rule(k, v, spell(k)) for k, v in given.items() if v is not None}
    return Overrides(**values, origin=origin)  # combined with janitor.toml in planner_for


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
        stopped as a kill would stop them: the journal has what the next prune finishes)."""
        plans = [plan_run(run, self.overrides, time.time(), self.fs, self.files) for run in runs]
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
