"""janitor from Python: scan -> plan -> execute, for training scripts, trainer plugins and
notebook cells. The same engine as the command line: one scan, one planner per run, the same
executor, lock and journal.

    import janitor
    report = janitor.scan("logs")                 # ScanReport: runs, sets, errors, raw numbers
    plan = report.plan(keep_last=1)               # keywords = the long options of `prune`
    print(plan.expected_freed_size)               # bytes; per set keep/remove and why
    result = plan.execute()                       # or plan.execute(trash=True)
    print(result.freed_size, result.errors)

Every command of the command line has its function here (``prune``, ``finalize``,
``extract_small``, ``info``, ``pin``, ``unpin``, ``restore``, ``trash_list``, ``trash_empty``,
``log``, ``watch``), each calling the same use case (``janitor.usecases.commands``) as the
command does, with the command's long options as keywords, checked the same way and named
as keywords in errors (``idle argument``). Paths are a ``str``, an ``os.PathLike`` or an
iterable of them; counts are ints, booleans bools; durations a ``timedelta`` or a string
with a unit ("2d"); sizes an int of bytes or a string with a unit ("20GB").

Everything returned is frozen data with raw numbers (bytes, POSIX times). ``import janitor``
imports nothing heavy; torch is imported by ``extract_small``, ``info`` and ``finalize`` only,
wired in by ``janitor.compose`` (the one composition point).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from janitor.compose import TORCH
from janitor.domain import checkpoints, plans, results
from janitor.domain.errors import UsageError
from janitor.usecases import commands
from janitor.usecases import options as check


def _copy(cls, obj):
    return cls(**{f.name: getattr(obj, f.name) for f in fields(obj) if f.init})


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
        self,
        *,
        trash: bool = False,
        truncate: bool | None = None,
        lock_timeout: float = 10.0,
        progress: Callable[[results.Removed], None] | None = None,
    ) -> PruneResult:
        """Carry the plan out: under each run's lock, re-planned by the same planner on the
        run as it is then (a set that changed since is left alone), journaled; ``progress``
        is told each file removed."""
        done = commands.execute(
            self, trash=trash, truncate=truncate, lock_timeout=lock_timeout, progress=progress
        )
        return _copy(PruneResult, done)


@dataclass(frozen=True)
class ScanReport(checkpoints.ScanReport):
    """Runs found under the scanned paths, their checkpoint sets, small models and errors."""

    def plan(self, **rules: Any) -> PrunePlan:
        """The prune plan under these rules and the ``janitor.toml`` files; with no rule at
        all, keep-last 1. Changes nothing. The keywords are the rules' long options of
        ``janitor prune`` (``janitor.domain.rules``): keep_last, keep_every, keep_within,
        keep_best, metric, mode, max_size, remove_incomplete, older_than; a count is an int,
        a yes/no a bool, a duration a ``timedelta`` or text with a unit ("2d"), a size an
        int of bytes or text with a unit ("20GB")."""
        return _copy(PrunePlan, commands.plan(self, _rules(rules, every=True)))


def _rules(options: dict[str, Any], every: bool = False):
    """The retention-rule keywords taken out of ``options`` (each keyword of a declared
    rule, ``janitor.domain.rules``), checked and worded by keyword; ``every``: all of
    ``options`` are rule keywords (an unknown one is named)."""
    from janitor.domain.rules import rules
    from janitor.usecases.prune import parse_overrides

    names = {k for r in rules() for k in (r.keyword, r.switch.keyword if r.switch else None)}
    given = {k: options.pop(k) for k in list(options) if every or k in names}
    return parse_overrides(origin="keyword", **given)


def _paths(paths: Any) -> list[str]:
    return check.paths(paths, "paths argument")


def scan(*paths: Any, trainer: str | None = None, cache: bool = True) -> ScanReport:
    """Find training runs under ``paths`` (logs roots, run folders or checkpoint files:
    each a str, an os.PathLike or an iterable of them). ``cache=False`` reads every
    checkpoint again (``janitor scan --no-cache``)."""
    roots = _paths(paths[0] if len(paths) == 1 else paths)
    opts = commands.ScanOptions.parse("keyword", trainer=trainer, cache=cache)
    return _copy(ScanReport, commands.scan(roots, opts.trainer, opts.cache))


def prune(
    paths: Any, *, progress: Callable[[results.Removed], None] | None = None, **options: Any
) -> commands.PruneOutcome:
    """``janitor prune``: the rules of ``ScanReport.plan`` and prune's other long options as
    keywords (dry_run, trash, truncate, trainer, fix_resume, lock_timeout, cache,
    purge_versions). Returns the plan, what was done (None in a dry run), the
    ``fix_resume`` moves and the warnings; ``progress`` is told each file removed."""
    rules = _rules(options)
    opts = commands.PruneOptions.parse("keyword", rules, **options)
    return commands.prune(_paths(paths), opts, progress=progress)


def finalize(
    paths: Any,
    *,
    idle: str | timedelta = "30m",
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> list[results.RunFinal]:
    """``janitor finalize``: training is over; verified small models for the newest complete
    step (and the best ``keep_best`` by ``metric`` / the listed ``steps``), then every big
    checkpoint of each run goes. Keywords: keep_best, metric, mode, steps, idle, force,
    dry_run, trash, truncate, trainer, purge_versions. ``progress(done, total)``: tensors
    verified."""
    opts = commands.FinalizeOptions.parse("keyword", idle=idle, **options)
    outcome = commands.finalize(_paths(paths), opts, TORCH, on_tensor=progress)
    return list(outcome.finals)


def extract_small(
    paths: Any,
    out: str | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
):
    """Write the small inference model of a big G file or a trainer's export, or the
    inference part of an HF ``checkpoint-<step>/`` folder or a Lightning ``.ckpt``; returns
    what was written (``output``, ``format``, ``step``, ...). ``options`` are the long options
    of ``janitor extract-small``: format, name, author, sr, version, f0, vocoder, step, force,
    skip_existing, like, info, half. Several paths: an ``ExtractReport`` (what was written,
    what failed); ``progress(done, total)`` is told each input done."""
    from janitor.usecases.small import extract_options
    from janitor.usecases.small import extract_small as do_extract

    one = isinstance(paths, str | os.PathLike)
    opts = extract_options("keyword", output=out, **options)
    report = do_extract(_paths(paths), opts, TORCH, origin="keyword", progress=progress)
    return report.extracted[0] if one else report


def info(paths: Any):
    """What a checkpoint is (kind, epoch, step, format, every small-model field), as a dict;
    several paths: an ``InfoReport``."""
    from janitor.usecases.small import info as do_info

    report = do_info(_paths(paths), TORCH)
    return report.files[0] if isinstance(paths, str | os.PathLike) else report


def pin(run: Any, steps: Any) -> commands.Pins:
    """Pin steps of a run (never removed; stored in RUN/janitor.toml)."""
    return commands.pin(_path(run, "run"), steps, origin="keyword")


def unpin(run: Any, steps: Any) -> commands.Pins:
    """Remove pins from a run; ``not_pinned``: the steps that were not pinned."""
    return commands.pin(_path(run, "run"), steps, origin="keyword", unpin=True)


def restore(
    run: Any, step: int | None = None, copy: str | None = None, *, to: Any = None
) -> commands.Restored:
    """Move files ``prune(trash=True)`` put in the trash back into the run (made again if it
    is gone), or into ``to``, the run's new folder after a rename."""
    return commands.restore(_path(run, "run"), step, copy, to=to, origin="keyword")


def trash_list(path: Any) -> commands.TrashListing:
    """Every file in the trash of a logs root (every run) or of a run folder."""
    return commands.trash_list(_path(path, "path"))


def trash_empty(path: Any, older_than: str | timedelta | None = None, *, dry_run: bool = False):
    """Delete files in the trash for good: every run's of a logs root, or one run's (only
    those trashed more than ``older_than`` ago); ``dry_run``: what would be deleted."""
    return commands.trash_empty(_path(path, "path"), older_than, dry_run=dry_run, origin="keyword")


def log(path: Any = ".") -> commands.Log:
    """What janitor removed, trashed, restored: the journal's records, oldest first."""
    return commands.log(_path(path, "path"))


def watch(paths: Any, *, log: Callable[[dict], None] | None = None, **options: Any):
    """``janitor watch`` in the background: returns the started watcher (call ``stop()``).
    Keywords: the rules of ``ScanReport.plan``, extract_on_save, poll, settle (seconds),
    rescan (minutes), trash, truncate, trainer; ``log`` gets each event as a dict."""
    rules = _rules(options)
    opts = commands.WatchOptions.parse("keyword", rules, **options)
    return commands.watch(_paths(paths), opts, log=log or (lambda record: None))


def _path(value: Any, name: str) -> str:
    if not isinstance(value, str | os.PathLike):
        raise UsageError(f"{name} argument: expected a path (str or os.PathLike), got {value!r}")
    return check.paths(value, f"{name} argument")[0]
