"""``prune --fix-resume``: move the stale sets the trainer would wrongly resume from (an old
latest-only file, higher steps left by an earlier run) to the trash, journaled and
restorable; never deleted. A dry run shows the same moves, and the prune plan after them is
made on a view of the runs without the files that would move."""

from __future__ import annotations

import time

from janitor.core.planners import FixResumePlanner
from janitor.domain.checkpoints import ScanReport
from janitor.domain.plans import RunPlan
from janitor.domain.results import RunResult
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import FileSystem, Without
from janitor.usecases.executor import Executor


def fix_resume(
    report: ScanReport, mover: Executor, dry_run: bool = False, files: ConfigFiles | None = None
) -> list[tuple[RunPlan, RunResult | None]]:
    """(plan, result) for each run with stale sets; the result is None in a dry run.
    ``mover`` must move to the trash."""
    if not mover.trash:
        raise ValueError("--fix-resume only ever moves to the trash")
    files = ConfigFiles(mover.fs) if files is None else files
    fixes = []
    for run in report.runs:
        shown = FixResumePlanner(files.pins(run.path)).plan(run, time.time())
        if shown.removals:
            fixes.append((shown, None if dry_run else mover.execute(shown)))
    return fixes


def view_after(fixes: list[tuple[RunPlan, RunResult | None]], fs: FileSystem) -> FileSystem:
    """The storage as it will be once a dry run's moves are done: those files hidden."""
    moving = frozenset(
        p
        for rp, _ in fixes
        for d in rp.removals
        for p in (d.set.folder, *(f.path for f in d.set.files))
        if p is not None
    )
    return Without(fs, moving)
