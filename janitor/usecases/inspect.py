"""What ``scan`` reports beyond the files: per run, the resume traps, what ``prune
--keep-last 1`` (pins honoured) and ``finalize`` would free, and whether it looks finished.
Computed here so that rendering only formats."""

from __future__ import annotations

import time

from janitor.core.planners import FinalizePlanner, RulesPlanner
from janitor.core.resume import traps
from janitor.domain.checkpoints import Run, ScanReport
from janitor.domain.plans import RunSummary
from janitor.domain.policy import Policy
from janitor.storage import config
from janitor.storage.fs import LOCAL, FileSystem

FINISHED_IDLE = 24 * 3600.0  # scan calls a run finished after a day without writes


def summarize_run(run: Run, now: float, fs: FileSystem = LOCAL) -> RunSummary:
    keep_last_1 = RulesPlanner(Policy(keep_last=1), pins=config.pins(run.path, fs))
    idle = now - run.last_activity
    newest = run.newest_complete
    has_small = newest is not None and any(m.step == newest.number for m in run.small_models)
    return RunSummary(
        run=run,
        traps=traps(run),
        keep_last_1_frees=keep_last_1.frees(run, now),
        finalize_frees=FinalizePlanner(()).frees(run, now),
        idle=idle,
        looks_finished=idle >= FINISHED_IDLE and has_small,
    )


def summarize(
    report: ScanReport, now: float | None = None, fs: FileSystem = LOCAL
) -> tuple[RunSummary, ...]:
    now = time.time() if now is None else now
    return tuple(summarize_run(r, now, fs) for r in report.runs)
