"""Every janitor command as one function: it takes the paths and typed options (checked by
``Options.parse(origin=...)``, worded by flag or keyword), owns all of its steps, and returns
frozen data. The command line, the Python API (``janitor.api``) and a web page call these
same functions; they only parse their inputs and show the results. Callbacks (``warn``,
``on_*``, ``progress``) report as the work goes, for long work and for output printed run by
run; they never decide anything."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from janitor.domain.checkpoints import ScanError, ScanReport, UnfinishedUpload
from janitor.domain.disk import Disk, RootPicture, RunUse
from janitor.domain.errors import InvalidValue, UsageError
from janitor.domain.paths import shown_path
from janitor.domain.plans import Plan, RunPlan, RunSummary
from janitor.domain.policy import Overrides, Policy
from janitor.storage import config, layout
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import FileSystem
from janitor.storage.locate import absolute, resolve, storage_of
from janitor.storage.scan import scan as do_scan
from janitor.usecases import options as check
from janitor.usecases.tools import TorchLayer

if TYPE_CHECKING:  # annotations; each command imports what only it runs (scan loads no executor)
    from janitor.domain.results import ExecutionReport, RunFinal, RunResult
    from janitor.domain.trash import EmptyResult, GoneRunTrash, RestoreResult, TrashedFile

Warn = Callable[[str], None]


T = TypeVar("T")


def collector_paused(fn: Callable[..., T]) -> Callable[..., T]:
    """No cyclic garbage collection while ``fn`` builds a report: at 200k files the
    collector's passes over the growing heap cost more than the work itself. On again when
    ``fn`` returns or raises (the API and the tests run commands in-process)."""

    @functools.wraps(fn)
    def paused(*args: Any, **kwargs: Any) -> T:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return paused


def _quiet(message: str) -> None:
    pass


# ------------------------------------------------------------------ scan


@dataclass(frozen=True)
class ScanOptions:
    trainer: str | None = None
    cache: bool = True  # False: --no-cache
    plot: str | None = None  # draw a run's plan, or a root's disk use, into this .svg/.png
    metric: str | None = None  # the curve to draw with --plot

    @classmethod
    def parse(cls, origin: check.Origin = "flag", **given: Any) -> ScanOptions:
        spell = check.Spelling(origin)
        opts = cls(
            trainer=check.text(given.get("trainer"), spell("trainer")),
            cache=check.flag(given.get("cache", True), spell("cache", "--no-cache")),
            plot=check.text(given.get("plot"), spell("plot")),
            metric=check.text(given.get("metric"), spell("metric")),
        )
        if opts.metric is not None and opts.plot is None:
            raise UsageError(
                f"{spell('metric')} on scan is for {spell('plot')} (the curve to draw)"
            )
        return opts


def scan(paths: list[str], trainer: str | None = None, cache: bool = True,
         save_cache: bool = True) -> ScanReport:  # fmt: skip
    """The runs under ``paths`` (one storage), every file checked."""
    fs, roots = storage_of(paths)
    return do_scan(roots, fs=fs, trainer=trainer, cache=cache, save_cache=save_cache)


@dataclass(frozen=True)
class ScanOutcome:
    report: ScanReport
    summaries: tuple[RunSummary, ...]
    warnings: tuple[str, ...] = ()
    disks: tuple[Disk, ...] = ()  # the file systems holding the runs, with forecasts


Draw = Callable[[RunPlan, str, Any, str | None], bytes]
DrawRoot = Callable[[RootPicture, str], bytes]


@collector_paused
def scan_report(paths: list[str], options: ScanOptions, *, draw: Draw | None = None,
                draw_root: DrawRoot | None = None, warn: Warn = _quiet) -> ScanOutcome:  # fmt: skip
    """``scan --json`` / ``--plot``: every run with its summary (what prune and finalize
    would free, traps, trash) and the file systems holding them; with ``options.plot``,
    ``draw(plan, path, metric values, metric name)`` makes the picture of a run folder's
    plan, ``draw_root(picture, path)`` that of a logs root's disk use, written here."""
    from janitor.core.forecast import save_pattern
    from janitor.usecases.disks import disks
    from janitor.usecases.inspect import summarize

    fs, roots = storage_of(paths)
    now = time.time()
    with fs.listing(roots[0]) if len(roots) == 1 else contextlib.nullcontext():
        report = do_scan(roots, fs=fs, trainer=options.trainer, cache=options.cache)
        files = ConfigFiles(fs)  # each janitor.toml read once for all runs
        summaries = summarize(report, now, fs=fs, files=files)
        found = disks(((r.path, save_pattern(r)) for r in report.runs), now, fs, files=files)
        if options.plot is not None:
            _plot(report, summaries, found, options, draw, draw_root, fs, files)
    warnings = tuple(files.warnings(r.path for r in report.runs))
    for w in warnings:
        warn(w)
    return ScanOutcome(report, summaries, warnings, found)


def _plot(report: ScanReport, summaries: tuple[RunSummary, ...], found: tuple[Disk, ...],
          options: ScanOptions, draw: Draw | None, draw_root: DrawRoot | None,
          fs: FileSystem, files: ConfigFiles) -> None:  # fmt: skip
    """A run folder: its plan (its janitor.toml rules) as a picture, the metric curve the
    plan's own (keep-best) or --metric. A logs root: its disk use by run beside the free
    space of its file systems."""
    from janitor.storage.metrics import load_scalars
    from janitor.usecases.prune import plan_run

    if draw is None or draw_root is None:
        raise UsageError("--plot needs a drawing (the command line's)")
    target = options.plot
    assert target is not None
    fs_out, where = resolve(target)
    runs = report.runs
    if len(runs) != 1 or len(report.roots) != 1 or fs.realpath(report.roots[0]) != runs[0].path:
        if options.metric is not None:
            raise UsageError("--metric draws one run's curve: give --plot a run folder")
        picture = root_picture(report, summaries, found, fs, files)
        fs_out.write_atomic(where, draw_root(picture, target))
        return
    (run,) = runs
    rp = plan_run(run, fs=fs, files=files)
    metric = options.metric
    name = metric or rp.planner.as_dict().get("rules", {}).get("metric")
    values = load_scalars(run.path, name) if metric else getattr(rp.planner, "metric", None)
    fs_out.write_atomic(where, draw(rp, target, values, name))


def root_picture(report: ScanReport, summaries: tuple[RunSummary, ...], found: tuple[Disk, ...],
                 fs: FileSystem, files: ConfigFiles | None = None) -> RootPicture:  # fmt: skip
    """Each run's bytes: kept and removable under its rules (janitor.toml), small models,
    trash; beside the file systems holding them."""
    from janitor.usecases.prune import plan_run

    uses = []
    now = time.time()
    for summary in summaries:
        run = summary.run
        removable = sum(d.set.size for d in plan_run(run, now=now, fs=fs, files=files).removals)
        uses.append(RunUse(run.name, run.path, run.big_bytes - removable, removable,
                           run.small_bytes, summary.trash_bytes))  # fmt: skip
    return RootPicture(", ".join(report.roots), tuple(uses), found)


@dataclass(frozen=True)
class ScanTotals:
    """``scan``'s text report, run by run: what the footer needs."""

    errors: tuple[ScanError, ...]
    runs: int
    totals: tuple[int, int, int, int]  # sets, big bytes, small bytes, what prune would free
    journals: frozenset[str]
    unchecked: int
    uploads: tuple[UnfinishedUpload, ...]
    warnings: tuple[str, ...] = ()
    disks: tuple[Disk, ...] = ()  # the file systems holding the runs, with forecasts
    gone_trash: tuple[GoneRunTrash, ...] = ()  # the trash of runs that are gone


@collector_paused
def scan_stream(paths: list[str], options: ScanOptions, block: Callable[[RunSummary], Any],
                emit: Callable[[Any], None], warn: Warn = _quiet) -> ScanTotals:  # fmt: skip
    """``scan``'s text report: ``block(summary)`` of each run (maybe in a worker process: what
    it returns is all that is kept) handed to ``emit`` as the walk meets the run, never all
    runs at once. Big files are read only as the report's lines need them."""
    from janitor.core.forecast import save_pattern
    from janitor.storage.scan import scan_runs_mapped, unfinished_uploads
    from janitor.storage.trash import gone_runs_trash
    from janitor.usecases.disks import disks
    from janitor.usecases.inspect import summarize_run

    fs, roots = storage_of(paths)
    errors: list = []
    seen: dict[str, Any] = {}  # run folder -> its save pattern
    journals: set[str] = set()
    totals, now, unchecked = [0, 0, 0, 0], time.time(), 0
    files = ConfigFiles(fs)  # each janitor.toml read once (before workers fork: inherited)

    def one(run):  # may run in a worker process: what it returns is all that is kept
        summary = summarize_run(run, now, fs, files)
        numbers = (len(run.candidates), run.big_bytes, run.small_bytes, summary.prune_frees or 0)
        warnings = files.warnings([run.path])  # where its files were read
        shown = block(summary)
        return (run.path, shown, summary.journal, numbers, run.unchecked, save_pattern(run),
                warnings)  # fmt: skip

    with fs.listing(roots[0]) if len(roots) == 1 else contextlib.nullcontext():
        files.warm(roots)  # inside the root's one listing (a bucket: no request per file)
        blocks = scan_runs_mapped(roots, errors, one, fs=fs, trainer=options.trainer,
                                  cache=options.cache, lazy=True)  # fmt: skip
        warned: dict[str, None] = {}
        with contextlib.closing(blocks):  # a reader gone (`| head`): workers ended first
            for path, shown, journal, numbers, not_checked, pattern, run_warnings in blocks:
                warned.update(dict.fromkeys(run_warnings))
                if path in seen:  # a run folder given twice (logs and logs/alice)
                    continue
                emit(shown)
                seen[path] = pattern
                if journal:
                    journals.add(journal)
                for i, n in enumerate(numbers):
                    totals[i] += n
                unchecked += not_checked
        warnings = tuple(warned)
        for w in warnings:
            warn(w)
        uploads = unfinished_uploads(fs, roots)
        gone = gone_runs_trash(roots, seen, fs)
    return ScanTotals(tuple(errors), len(seen), (totals[0], totals[1], totals[2], totals[3]),
                      frozenset(journals), unchecked, uploads, warnings,
                      disks(seen.items(), now, fs, files=files), gone)  # fmt: skip


# ------------------------------------------------------------------ plan and execute (API)


def plan(report: ScanReport, overrides: Overrides) -> Plan:
    """The prune plan of a scan report under ``overrides`` and the janitor.toml files."""
    from janitor.usecases.prune import plan as make_plan

    fs, _ = storage_of(report.roots)
    return make_plan(report, overrides, time.time(), fs=fs)


def execute(plan: Plan, *, trash: bool = False, truncate: bool | None = None,
            lock_timeout: float = 10.0,
            progress: Callable[[Any], None] | None = None) -> ExecutionReport:  # fmt: skip
    """Carry a plan out, run by run, under each run's lock (re-planned there), journaled;
    ``progress`` is told each file removed."""
    from janitor.domain.results import ExecutionReport
    from janitor.usecases.executor import Executor

    fs, _ = storage_of(rp.run.path for rp in plan.runs)
    executor = Executor(fs, trash=trash, truncate=truncate, lock_timeout=lock_timeout,
                        on_removed=progress)  # fmt: skip
    return ExecutionReport(tuple(executor.execute(rp) for rp in plan.runs))


# ------------------------------------------------------------------ prune


def _lock_timeout(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86400:
        raise UsageError(f"{what}: must be a number of seconds from 0 to 86400, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PruneOptions:
    rules: Overrides = field(default_factory=Overrides)
    dry_run: bool = False
    trash: bool = False
    truncate: bool | None = None
    trainer: str | None = None
    fix_resume: bool = False
    lock_timeout: float = 10.0
    cache: bool = True
    purge_versions: bool = False

    @classmethod
    def parse(cls, origin: check.Origin = "flag", rules: Overrides | None = None,
              **given: Any) -> PruneOptions:  # fmt: skip
        spell = check.Spelling(origin)
        flags = {n: check.flag(given.pop(n, False), spell(n))
                 for n in ("dry_run", "trash", "fix_resume", "purge_versions")}  # fmt: skip
        cache = check.flag(given.pop("cache", True), spell("cache", "--no-cache"))
        truncate = check.maybe_flag(given.pop("truncate", None), spell("truncate"))
        trainer = check.text(given.pop("trainer", None), spell("trainer"))
        wait = _lock_timeout(
            given.pop("lock_timeout", 10.0), spell("lock_timeout", "--lock-timeout")
        )
        if given:
            raise UsageError(f"{spell(sorted(given)[0])}: no such option of prune")
        return cls(rules or Overrides(origin=origin), truncate=truncate, trainer=trainer,
                   lock_timeout=wait, cache=cache, **flags)  # fmt: skip


@dataclass(frozen=True)
class PruneOutcome:
    """What prune planned and did; ``fixed``/``moved``: the --fix-resume moves (None
    without it; ``moved`` None in a dry run)."""

    plan: Plan
    execution: ExecutionReport | None
    fixed: Plan | None = None
    moved: ExecutionReport | None = None
    warnings: tuple[str, ...] = ()
    shortfalls: tuple[str, ...] = ()  # min-free / max-total not met: by how much, and why

    @property
    def failed(self) -> bool:
        return bool(self.plan.errors or self.shortfalls) or any(
            e is not None and e.errors for e in (self.execution, self.moved)
        )


@collector_paused
def prune(
    paths: list[str],
    options: PruneOptions,
    *,
    warn: Warn = _quiet,
    on_fix: Callable[[RunPlan, RunResult | None], None] | None = None,
    on_plan: Callable[[RunPlan], None] | None = None,
    on_run: Callable[[RunPlan, RunResult | None], None] | None = None,
    progress: Callable[[Any], None] | None = None,
    processes: bool = False,
) -> PruneOutcome:
    """Scan, (``fix_resume``: move the stale sets the trainer would resume from to the
    trash, then plan on the runs as they are after the moves), plan each run, carry the
    plans out (``dry_run``: not), and on a versioned bucket say what stays billed.
    ``on_plan`` gets each run's plan before it is carried out, ``on_run`` its result,
    ``progress`` each file removed; ``processes``: runs in forked workers where safe."""
    from janitor.domain.results import ExecutionReport
    from janitor.usecases.executor import Executor
    from janitor.usecases.fix_resume import fix_resume, view_after
    from janitor.usecases.pressure import Relief, relieve
    from janitor.usecases.prune import Pruner, planner_for

    store, roots = storage_of(paths)
    cache = {"cache": options.cache, "save_cache": not options.dry_run}
    report = do_scan(roots, fs=store, trainer=options.trainer, **cache)
    files = ConfigFiles(store)  # each janitor.toml read once for all runs
    warnings = list(files.warnings(r.path for r in report.runs))
    for w in warnings:
        warn(w)
    fs: FileSystem = store
    fixes: list = []
    if options.fix_resume:
        for run in report.runs:  # every run's rules are checked before anything moves
            planner_for(run, options.rules, store, files)
        mover = Executor(store, trash=True, lock_timeout=options.lock_timeout, config=files)
        fixes = fix_resume(report, mover, options.dry_run, files)
        for shown, result in fixes:
            if on_fix is not None:
                on_fix(shown, result)
        fs = view_after(fixes, store) if options.dry_run else store
        report = do_scan(roots, trainer=options.trainer, fs=fs, **cache)
    executor = Executor(fs, trash=options.trash, truncate=options.truncate,
                        lock_timeout=options.lock_timeout, purge_versions=options.purge_versions,
                        on_removed=progress, config=files)  # fmt: skip
    pruner = Pruner(options.rules, executor, fs, files)
    plans, results = [], []
    relief = Relief([])

    def limits(planned: list[RunPlan]) -> list[RunPlan]:  # min-free, max-total
        nonlocal relief
        relief = relieve(planned, time.time(), fs, trash=options.trash)
        for note in relief.notes:
            warnings.append(note)
            warn(note)
        return relief.plans

    for rp, result in pruner.run_all(report.runs, dry_run=options.dry_run, shown=on_plan,
                                     processes=processes, adjust=limits):  # fmt: skip
        plans.append(rp)
        if result is not None:
            results.append(result)
        if on_run is not None:
            on_run(rp, result)
    done = Plan(tuple(plans), report.errors)
    execution = None if options.dry_run else ExecutionReport(tuple(results))
    freed = done.expected_freed if execution is None else execution.freed
    for w in versions_left(store, roots, freed, options.purge_versions):
        warnings.append(w)
        warn(w)
    fixed = Plan(tuple(rp for rp, _ in fixes)) if options.fix_resume else None
    moved = None
    if options.fix_resume and not options.dry_run:
        moved = ExecutionReport(tuple(result for _, result in fixes))
    short = tuple(relief.shortfalls(done=not options.dry_run))
    return PruneOutcome(done, execution, fixed, moved, tuple(warnings), short)


def versions_left(fs: FileSystem, paths: list[str], freed: int, purged: bool) -> list[str]:
    """On a versioned bucket, deleted objects stay as noncurrent versions: say so."""
    if freed and not purged and paths and fs.versioned(paths[0]):
        return [
            f"{paths[0]}: the bucket is versioned: removed objects stay as noncurrent "
            "versions and still take (billed) storage; --purge-versions also deletes the old "
            "versions of the objects janitor removes, or let a lifecycle rule expire them"
        ]
    return []


# ------------------------------------------------------------------ finalize


@dataclass(frozen=True)
class FinalizeOptions:
    keep_best: int | None = None
    metric: str | None = None
    mode: str = "min"
    steps: tuple[int, ...] = ()
    idle: float = 1800.0  # seconds
    force: bool = False
    dry_run: bool = False
    trash: bool = False
    truncate: bool | None = None
    trainer: str | None = None
    purge_versions: bool = False
    all_runs: bool = False  # --all: more than one run may be finalized
    origin: check.Origin = "flag"

    @classmethod
    def parse(cls, origin: check.Origin = "flag", **given: Any) -> FinalizeOptions:
        from janitor.core.values import check_rule

        spell = check.Spelling(origin)
        best, metric, mode = given.pop("keep_best", None), given.pop("metric", None), None
        if best is not None:
            best = check_rule("keep_best", check.count(best, spell("keep_best"), origin),
                              spell("keep_best"))  # fmt: skip
        metric = check.text(metric, spell("metric"))
        mode = check.text(given.pop("mode", None), spell("mode")) or "min"
        try:
            Policy(keep_best=best, metric=metric, mode=mode)
        except InvalidValue as exc:
            raise UsageError(exc.worded(spell(exc.field))) from None
        steps = check.steps(given.pop("steps", None), spell("steps"), origin)
        idle = check.duration(given.pop("idle", "30m"), spell("idle"))
        flags = {n: check.flag(given.pop(n, False), spell(n))
                 for n in ("force", "dry_run", "trash", "purge_versions")}  # fmt: skip
        flags["all_runs"] = check.flag(given.pop("all", False), spell("all"))
        truncate = check.maybe_flag(given.pop("truncate", None), spell("truncate"))
        trainer = check.text(given.pop("trainer", None), spell("trainer"))
        if given:
            raise UsageError(f"{spell(sorted(given)[0])}: no such option of finalize")
        return cls(best, metric, mode, steps, idle, truncate=truncate, trainer=trainer,
                   origin=origin, **flags)  # fmt: skip


@dataclass(frozen=True)
class FinalizeOutcome:
    finals: tuple[RunFinal, ...]
    errors: tuple[ScanError, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(
            f.refused or (f.result is not None and f.result.errors) for f in self.finals
        )


def finalize(
    paths: list[str],
    options: FinalizeOptions,
    torch: TorchLayer,
    *,
    warn: Warn = _quiet,
    on_run: Callable[[RunFinal], None] | None = None,
    on_tensor: Callable[[int, int], None] | None = None,
) -> FinalizeOutcome:
    """Training is over: verified small models for the newest complete step (and the best
    ``keep_best`` / listed ``steps``) of each run, then every big checkpoint goes.
    ``on_run`` gets each run's outcome as it is done, ``on_tensor(done, total)`` each tensor
    verified."""
    from janitor.usecases.executor import Executor
    from janitor.usecases.finalize import finalize_run

    fs, roots = storage_of(paths)
    report = do_scan(roots, fs=fs, trainer=options.trainer, save_cache=not options.dry_run)
    _one_run_or_all(report, options)
    files = ConfigFiles(fs)  # each janitor.toml read once for all runs
    executor = Executor(fs, trash=options.trash, truncate=options.truncate,
                        purge_versions=options.purge_versions, config=files)  # fmt: skip
    small_models = torch.small_models(on_tensor)
    finals = []
    for run in report.runs:
        final = finalize_run(
            run, small_models, steps=options.steps, keep_best=options.keep_best,
            metric=options.metric, mode=options.mode, idle=options.idle, force=options.force,
            dry_run=options.dry_run, executor=executor, fs=fs, files=files,
        )  # fmt: skip
        finals.append(final)
        if on_run is not None:
            on_run(final)
    freed = sum(f.result.freed for f in finals if f.result is not None)
    warnings = versions_left(fs, roots, freed, options.purge_versions)
    for w in warnings:
        warn(w)
    return FinalizeOutcome(tuple(finals), report.errors, tuple(warnings))


def _one_run_or_all(report: ScanReport, options: FinalizeOptions) -> None:
    """Finalizing removes every big checkpoint of a run, the newest included: more than one
    run (a logs root) only with ``--all``; a dry run shows them all."""
    runs = [r for r in report.runs if r.candidates]
    if len(runs) < 2 or options.all_runs or options.dry_run:
        return
    spell = check.Spelling(options.origin)
    names = ", ".join(r.name for r in runs[:8]) + (", ..." if len(runs) > 8 else "")
    dry = "--dry-run" if options.origin == "flag" else "dry_run=True"
    every = "--all" if options.origin == "flag" else "all=True"
    raise UsageError(
        f"{len(runs)} runs to finalize ({names}): finalize removes every big checkpoint of "
        f"each idle one; {dry} shows what would go, {every} finalizes them all, or name one "
        f"run folder ({spell('all')} not given)"
    )


# ------------------------------------------------------------------ watch


@dataclass(frozen=True)
class WatchOptions:
    rules: Overrides = field(default_factory=Overrides)
    extract_on_save: bool = False
    poll: float | None = None
    settle: float = 10.0
    rescan: float = 600.0  # seconds
    trash: bool = False
    truncate: bool | None = None
    trainer: str | None = None

    @classmethod
    def parse(cls, origin: check.Origin = "flag", rules: Overrides | None = None,
              **given: Any) -> WatchOptions:  # fmt: skip
        spell = check.Spelling(origin)
        poll = given.pop("poll", None)
        if poll is not None:
            poll = check.seconds(poll, spell("poll"), "seconds", 3600)
        settle = check.seconds(given.pop("settle", 10.0), spell("settle"), "seconds", 86400)
        rescan = check.seconds(given.pop("rescan", 10.0), spell("rescan"), "minutes", 7 * 24 * 60)
        flags = {n: check.flag(given.pop(n, False), spell(n)) for n in ("extract_on_save", "trash")}
        truncate = check.maybe_flag(given.pop("truncate", None), spell("truncate"))
        trainer = check.text(given.pop("trainer", None), spell("trainer"))
        if given:
            raise UsageError(f"{spell(sorted(given)[0])}: no such option of watch")
        return cls(rules or Overrides(origin=origin), poll=poll, settle=settle,
                   rescan=rescan * 60, truncate=truncate, trainer=trainer, **flags)  # fmt: skip


def watch(
    paths: list[str],
    options: WatchOptions,
    *,
    log: Callable[[dict], None] = lambda record: None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    until: Callable[[], Any] | None = None,
):
    """Watch the folders and prune (and extract) as the trainer writes, until ``until()``
    returns (the stop signal); without ``until`` the started watcher is returned (call its
    ``stop()``)."""
    from janitor.usecases.executor import Executor
    from janitor.usecases.watch import Watcher

    fs, roots = storage_of(paths)
    watcher = Watcher(
        roots, options.rules, poll=options.poll, settle=options.settle, rescan=options.rescan,
        extract_on_save=options.extract_on_save, trainer=options.trainer, fs=fs,
        executor=Executor(fs, trash=options.trash, truncate=options.truncate),
        log=log, progress=progress,
    )  # fmt: skip
    watcher.start()
    if until is None:
        return watcher
    try:
        until()
    finally:
        watcher.stop()
    return watcher


def stop_signals(handler: Callable[..., None]) -> None:
    """``handler`` on SIGINT/SIGTERM (the watcher's stop)."""
    from janitor.storage import platform

    platform.on_stop_signals(handler)


# ------------------------------------------------------------------ pins, trash, log


def _storage(path: str) -> FileSystem:
    return resolve(path)[0]


def _run_folder(path: str, fs: FileSystem) -> str:
    if not fs.is_dir(path):
        raise UsageError(f"{path}: not a run folder", path=path)
    return absolute(path)


def _trash_path(path: str, fs: FileSystem) -> str:
    """A folder the trash commands work on, links resolved (the journal records real paths):
    a logs root, a run folder, or a run folder that is gone (deleted or renamed) whose trash
    is still in its logs root's ``.janitor/trash``."""
    if fs.is_dir(path):
        return fs.realpath(absolute(path))
    gone = absolute(path)
    parent = layout.logs_root(gone)
    if fs.is_dir(parent):
        gone = os.path.join(fs.realpath(parent), os.path.basename(gone))
        if fs.is_dir(layout.trash_dir(gone)):
            return gone
    raise UsageError(
        f"{path}: not a run folder, and {shown_path(layout.trash_root(parent))} holds no trash "
        "of a run by that name"
    )


def _trash_runs(folder: str, fs: FileSystem) -> list[str]:
    """The runs whose trash a trash command covers: every run of a logs root, or the one run."""
    from janitor.storage.trash import trash_runs

    return trash_runs(folder, fs) if fs.is_dir(layout.trash_root(folder)) else [folder]


def _restore_target(to: str, source: str, fs: FileSystem, what: str) -> str:
    """``--to``: the folder trashed files go back into, in the same logs root as the trash
    (a move, never a copy); made when restoring if it does not exist yet."""
    target = fs.realpath(absolute(to)) if fs.is_dir(to) else absolute(to)
    if not fs.is_dir(target) and fs.exists(target):
        raise UsageError(f"{what} {to}: not a folder")
    if layout.logs_root(target) != layout.logs_root(source):
        raise UsageError(
            f"{what} {to}: not beside {shown_path(source)} (the trash goes back into a run "
            f"folder of the same logs root, {shown_path(layout.logs_root(source))})"
        )
    return target


@dataclass(frozen=True)
class Pins:
    run: str
    pinned: frozenset[int]
    not_pinned: frozenset[int] = frozenset()  # unpin: steps that were not pinned


def _pin_steps(steps: Any, what: str, origin: check.Origin) -> list[Any]:
    if isinstance(steps, str | bytes) or not isinstance(steps, Iterable):
        steps = [steps]
    steps = list(steps)
    if not steps:
        raise UsageError(f"{what}: needs at least one step")
    return steps


def pin(run: str, steps: Iterable[Any], *, origin: check.Origin = "flag", unpin: bool = False,
        verb_steps: str = "STEPS") -> Pins:  # fmt: skip
    """Pin (``unpin``: unpin) steps of a run, in RUN/janitor.toml."""
    spell = check.Spelling(origin)
    what = verb_steps if origin == "flag" else spell("steps")
    given = _pin_steps(steps, what, origin)
    wanted = frozenset(check.count(s, what, origin, maximum=config.MAX_STEP) for s in given)
    verb = "unpin" if unpin else "pin"
    fs = _storage(run)
    folder = _pin_target(verb, run, [str(s) for s in given], fs)
    files = ConfigFiles(fs)
    if not unpin:
        return Pins(folder, files.set_pins(folder, add=wanted))
    absent = wanted - files.pins(folder)
    return Pins(folder, files.set_pins(folder, drop=wanted), absent)


def _pin_target(verb: str, path: str, steps: list[str], fs: FileSystem) -> str:
    """The run folder pins go to: one holding checkpoints, or a folder with no run below it
    (a run not started yet). A logs root, a file or a missing folder is a usage error."""
    import os

    if not fs.exists(path):
        raise UsageError(f"{path}: no such folder (pins go to a run folder)", path=path)
    if not fs.is_dir(path):
        raise UsageError(
            f"{path}: not a run folder (pins go to the folder holding the checkpoints)", path=path
        )
    real = fs.realpath(path)
    runs = do_scan([path], fs=fs, save_cache=False).runs
    if not runs or any(r.path == real for r in runs):
        return real
    names = [os.path.relpath(r.path, real) for r in runs]
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} runs)" if len(names) > 5 else "")
    example = f"janitor {verb} {os.path.join(path, names[0])} {' '.join(steps)}"
    raise UsageError(
        f"{path}: a logs root, not a run (runs: {shown}); {verb} a run: {example}", path=path
    )


@dataclass(frozen=True)
class Restored:
    run: str
    result: RestoreResult

    @property
    def ok(self) -> bool:
        return not (self.result.errors or self.result.blocked)


def restore(run: str, step: Any = None, copy: str | None = None, *, to: Any = None,
            origin: check.Origin = "flag") -> Restored:  # fmt: skip
    """Move trashed files back into the run (the newest copy of each step, of ``step``, or
    ``copy``); a run folder that is gone is made again, or ``to`` (a renamed run) gets them."""
    from janitor.usecases.trash import restore as do_restore

    spell = check.Spelling(origin)
    step = check.count(step, spell("step", "STEP"), "keyword")
    copy = check.text(copy, spell("copy"))
    to = None if to is None else check.paths(to, spell("to"))[0]
    fs = _storage(run)
    run_path = _trash_path(run, fs)
    target = None if to is None else _restore_target(to, run_path, fs, spell("to"))
    try:
        return Restored(target or run_path, do_restore(run_path, step, copy, fs=fs, to=target))
    except UsageError as exc:
        raise UsageError(spell.reword(str(exc)), path=exc.path) from None


@dataclass(frozen=True)
class TrashListing:
    """Per run: its trash folder and the copies in it (``TrashCopy``); ``files``: every file."""

    runs: tuple[tuple[str, str, tuple[Any, ...]], ...]
    files: tuple[TrashedFile, ...]


def trash_list(path: str) -> TrashListing:
    from janitor.storage.trash import trash_contents, trash_copies

    fs = _storage(path)
    runs = _trash_runs(_trash_path(path, fs), fs)
    files = {r: trash_contents(r, fs) for r in runs}
    return TrashListing(
        tuple((r, layout.trash_dir(r), tuple(trash_copies(files[r]))) for r in runs),
        tuple(f for r in runs for f in files[r]),
    )


def trash_empty(path: str, older_than: Any = None, *, dry_run: Any = False,
                origin: check.Origin = "flag") -> EmptyResult:  # fmt: skip
    """Delete trashed files for good: every run's of a logs root, or one run's (also one that
    is gone); only those trashed more than ``older_than`` ago; ``dry_run``: what would go."""
    from janitor.usecases.trash import empty_trash

    spell = check.Spelling(origin)
    age = check.duration(older_than, spell("older_than"))
    dry_run = check.flag(dry_run, spell("dry_run"))
    fs = _storage(path)
    runs = _trash_runs(_trash_path(path, fs), fs)
    return empty_trash(runs, age, time.time(), fs, dry_run=dry_run)


@dataclass(frozen=True)
class Log:
    journal: str
    records: tuple[dict, ...]


def log(path: str = ".") -> Log:
    """What janitor removed, trashed, restored (a logs root: every run; a run folder: its own)."""
    from janitor.usecases.inspect import journal_log

    fs = _storage(path)
    if not fs.is_dir(path):
        raise UsageError(f"{path}: not a folder (a logs root or a run folder)", path=path)
    journal, records = journal_log(path, fs)
    return Log(journal, tuple(records))


__all__ = [
    "FinalizeOptions", "PruneOptions", "ScanOptions", "WatchOptions", "execute", "finalize",
    "log", "pin", "plan", "prune", "restore", "scan", "scan_report", "scan_stream",
    "trash_empty", "trash_list", "watch",
]  # fmt: skip
