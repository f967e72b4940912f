"""What ``scan`` reports beyond the files: per run, the resume traps, what ``prune`` would
free under the run's own rules (its janitor.toml files, pins honoured) and what ``finalize``
would, and whether it looks finished. Computed here so that rendering only formats."""

from __future__ import annotations

import time

from janitor.core import law
from janitor.core.planners import FinalizePlanner, RulesPlanner, candidates
from janitor.core.resume import traps
from janitor.domain.checkpoints import Run, ScanReport
from janitor.domain.errors import UsageError
from janitor.domain.plans import RunSummary, Trap
from janitor.domain.policy import Policy
from janitor.storage import activity, layout
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import LOCAL, FileSystem, disk_text, nearly_full
from janitor.storage.journal import Journal
from janitor.usecases.prune import planner_for

FINISHED_IDLE = 24 * 3600.0  # scan calls a run finished after a day without writes
KEEP_LAST_1 = Policy(keep_last=1)


def summarize_run(
    run: Run, now: float, fs: FileSystem = LOCAL, files: ConfigFiles | None = None
) -> RunSummary:
    """``files``: the command's janitor.toml files (read once for all its runs)."""
    files = ConfigFiles(fs) if files is None else files
    settings = files.run(run.path)
    try:  # the planner `prune` makes for this run: the same rules, pins and metric values
        planner: RulesPlanner | None = planner_for(run, fs=fs, files=files)
    except UsageError as exc:  # rules prune would refuse: said, and the scan goes on
        planner, refused = None, (Trap("rules-invalid", f"prune cannot plan this run: {exc}"),)
    else:
        refused = ()
    pins = planner.pins if planner is not None else settings.pinned
    # the run's candidates once, for the three figures (keep-last 1 and finalize use no metric)
    cands = candidates(run, pins, planner.metric if planner is not None else None, now)
    prune_frees = planner.frees(run, now, cands) if planner is not None else None
    if planner is not None and planner.policy.effective() == KEEP_LAST_1:
        keep_last_1_frees = prune_frees
    else:
        keep_last_1_frees = RulesPlanner(KEEP_LAST_1, pins=pins).frees(run, now, cands)
    idle = now - run.last_activity
    newest = run.newest_complete
    has_small = newest is not None and any(m.step == newest.number for m in run.small_models)
    try:
        trashed = [e for e in fs.listdir(layout.trash_dir(run.path)) if e.kind == "file"]
    except OSError:
        trashed = []
    journal = layout.journal_path(layout.state_dir(run.path))
    return RunSummary(
        run=run,
        traps=traps(run) + _cut_short(run, fs) + refused,
        keep_last_1_frees=keep_last_1_frees,
        prune_frees=prune_frees,
        prune_rules=planner.describe() if planner is not None else None,
        finalize_frees=FinalizePlanner((), pins=pins).frees(run, now, cands),
        idle=idle,
        looks_finished=has_small
        and not law.is_active(run.last_activity, now, FINISHED_IDLE)
        and not activity.trainer_alive(run, fs),  # read only for a run that looks finished
        trash_bytes=sum(e.size for e in trashed),
        trash_files=len(trashed),
        journal=journal if fs.exists(journal) else None,
        sources=settings.rule_sources(),
        pin_sources=settings.pin_sources(),
    )


def _cut_short(run: Run, fs: FileSystem) -> tuple[Trap, ...]:
    """Truncated checkpoints on a disk with (almost) no room left: saves a full disk cut
    short (the trainer crashed on ENOSPC); they stay incomplete, never taken for complete."""
    cut = [f.name for f in run.incomplete_files if (f.problem or "").startswith("truncated")]
    local = fs.local_path(run.path)
    if not cut or local is None or not nearly_full(local):
        return ()
    return (
        Trap(
            "cut-short-by-full-disk",
            f"{', '.join(cut)} looks like a save cut short by a full disk "
            f"({disk_text(local)}): free space, then let the trainer save again",
        ),
    )


def summarize(
    report: ScanReport,
    now: float | None = None,
    fs: FileSystem = LOCAL,
    files: ConfigFiles | None = None,
) -> tuple[RunSummary, ...]:
    now = time.time() if now is None else now
    files = ConfigFiles(fs) if files is None else files
    return tuple(summarize_run(r, now, fs, files) for r in report.runs)


FILE_EVENTS = ("remove", "trash", "restore", "trash-empty")


def journal_log(path: str, fs: FileSystem = LOCAL) -> tuple[str, list[dict]]:
    """The journal covering ``path`` (a logs root, or a run folder) and its records of files
    removed, trashed, restored or deleted from the trash, oldest first (a run folder: only
    that run's)."""
    real = fs.realpath(path)
    journal = Journal(layout.state_dir_of_root(real), fs)
    run = None
    if not fs.exists(journal.path):  # not a logs root with a journal: a run folder
        journal, run = Journal(layout.state_dir(real), fs), real
    records = [
        r for r in journal.read().records
        if r.get("event") in FILE_EVENTS and (run is None or r.get("run") == run)
    ]  # fmt: skip
    return journal.path, records
