"""janitor from Python: scan -> plan -> execute, for training scripts, trainer plugins and
notebook cells. The same engine as the command line: one scan, one planner per run, the same
executor, lock and journal.

    import janitor
    report = janitor.scan("logs")                 # ScanReport: runs, sets, errors, raw numbers
    plan = report.plan(keep_last=1)               # keywords = the long options of `prune`
    print(plan.expected_freed_size)               # bytes; per set keep/remove and why
    result = plan.execute()                       # or plan.execute(trash=True)
    print(result.freed_size, result.errors)

Everything returned is frozen data with raw numbers (bytes, POSIX times). ``import janitor``
imports nothing heavy; torch is imported by ``extract_small`` and ``finalize`` only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from janitor.domain import checkpoints, plans, results
from janitor.domain.errors import InvalidValue, UsageError


def _copy(cls, obj):
    return cls(**{f.name: getattr(obj, f.name) for f in fields(obj) if f.init})


def _duration(value: str | timedelta | None) -> str | None:
    """Durations as on the command line ("2d", "36h") or a ``timedelta``."""
    if isinstance(value, timedelta):
        return f"{value.total_seconds()}s"
    return value


@dataclass(frozen=True)
class PruneResult(results.ExecutionReport):
    """What ``PrunePlan.execute`` did, run by run; per-file errors are collected, not raised."""

    @property
    def freed_size(self) -> int:
        return self.freed

    @property
    def trashed_size(self) -> int:
        return self.trashed


@dataclass(frozen=True)
class PrunePlan(plans.Plan):
    """Per run: every set with keep/remove and its reasons, and the planner that decided."""

    @property
    def expected_freed_size(self) -> int:
        return self.expected_freed

    def execute(
        self, *, trash: bool = False, truncate: bool | None = None, lock_timeout: float = 10.0
    ) -> PruneResult:
        """Carry the plan out: under each run's lock, re-planned by the same planner on the
        run as it is then (a set that changed since is left alone), journaled."""
        from janitor.storage.locate import storage_of
        from janitor.usecases.executor import Executor

        fs, _ = storage_of(rp.run.path for rp in self.runs)
        executor = Executor(fs, trash=trash, truncate=truncate, lock_timeout=lock_timeout)
        return PruneResult(tuple(executor.execute(rp) for rp in self.runs))


@dataclass(frozen=True)
class ScanReport(checkpoints.ScanReport):
    """Runs found under the scanned paths, their checkpoint sets, small models and errors."""

    def plan(
        self,
        *,
        keep_last: int | None = None,
        keep_every: int | None = None,
        keep_within: str | timedelta | None = None,
        keep_best: int | None = None,
        metric: str | None = None,
        mode: str | None = None,
        max_size: str | int | None = None,
        remove_incomplete: bool = False,
        older_than: str | timedelta | None = None,
    ) -> PrunePlan:
        """The prune plan under these rules (the long options of ``janitor prune``) and the
        ``janitor.toml`` files; with no rule at all, keep-last 1. Changes nothing."""
        from janitor.storage.locate import storage_of
        from janitor.usecases.prune import parse_overrides
        from janitor.usecases.prune import plan as make_plan

        overrides = parse_overrides(
            keep_last=keep_last, keep_every=keep_every, keep_within=_duration(keep_within),
            keep_best=keep_best, metric=metric, mode=mode, max_size=max_size,
            remove_incomplete=remove_incomplete, older_than=_duration(older_than),
            origin="keyword",
        )  # fmt: skip
        fs, _ = storage_of(self.roots)
        return _copy(PrunePlan, make_plan(self, overrides, time.time(), fs=fs))


def scan(*paths: str, trainer: str | None = None, cache: bool = True) -> ScanReport:
    """Find training runs under ``paths`` (logs roots, run folders or checkpoint files).
    ``cache=False`` reads every checkpoint again (``janitor scan --no-cache``)."""
    from janitor.storage.locate import storage_of
    from janitor.storage.scan import scan as do_scan

    if not paths:
        raise UsageError("scan() needs at least one path")
    fs, roots = storage_of(str(p) for p in paths)
    return _copy(ScanReport, do_scan(roots, fs=fs, trainer=trainer, cache=cache))


def extract_small(g_path: str, out: str | None = None, **opts: Any):
    """Write the trainer's small inference model of a big G file; returns what was written
    (``output``, ``format``, ``epoch``, ``step``, detected facts). ``opts`` are the long
    options of ``janitor extract-small``: format (applio, rvc, release, gpt-sovits), name,
    author, sr, version, f0, vocoder, step, force, skip_existing, like (rvc: savee or
    extract), info (rvc like extract), half (release)."""
    from janitor.torchio.extract import Options, extract_one

    try:
        options = Options(output=out, **opts)
    except TypeError as exc:
        raise UsageError(f"extract_small(): {exc}") from None
    return extract_one(str(g_path), options)


def finalize(
    run_path: str,
    *,
    dry_run: bool = False,
    keep_best: int | None = None,
    metric: str | None = None,
    mode: str = "min",
    steps: Sequence[int] = (),
    idle: str | timedelta = "30m",
    force: bool = False,
    trash: bool = False,
) -> list[results.RunFinal]:
    """Training is over: verified small models for the newest complete step (and the best
    ``keep_best`` / listed ``steps``), then every big checkpoint of the run goes."""
    from janitor.domain.policy import Policy
    from janitor.storage.config import parse_duration
    from janitor.storage.locate import storage_of
    from janitor.storage.scan import scan as do_scan
    from janitor.torchio.extract import TorchSmallModels
    from janitor.usecases.executor import Executor
    from janitor.usecases.finalize import finalize_run

    try:
        Policy(keep_best=keep_best, metric=metric, mode=mode)
    except InvalidValue as exc:
        raise UsageError(exc.worded(f"{exc.field} argument")) from None
    idle_s = parse_duration(_duration(idle), "idle argument")
    fs, (root,) = storage_of([str(run_path)])
    executor = Executor(fs, trash=trash)
    makers = TorchSmallModels()
    return [
        finalize_run(
            run,
            makers,
            steps=tuple(steps),
            keep_best=keep_best,
            metric=metric,
            mode=mode,
            idle=idle_s,
            force=force,
            dry_run=dry_run,
            executor=executor,
            fs=fs,
        )  # fmt: skip
        for run in do_scan([root], fs=fs, save_cache=not dry_run).runs
    ]
