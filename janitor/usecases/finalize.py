"""`janitor finalize`: when training is over, keep only verified small models.

The one command allowed to remove a run's newest big checkpoint, and only after proving that
the small model of every kept step exists and holds exactly that G's weights. Stages:
``prepare`` (checks, finds or plans small models; reads tensors only to verify), then the
plan (every complete or partial set of the run removed; incomplete files and pretrained
bases left), then the same executor as ``prune``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from janitor.core.planners import RunPlan, SetDecision, candidates
from janitor.core.policy import Policy, best_reason, rank_best
from janitor.domain.errors import JanitorError
from janitor.storage.metrics import load_scalars
from janitor.storage.scan import CheckpointSet, Run

if TYPE_CHECKING:
    from janitor.usecases.executor import Executor, RunResult

EVENTS_PREFIX = "events.out.tfevents."
FINISHED_IDLE = 24 * 3600.0  # scan calls a run finished after a day without writes


@dataclass(frozen=True, slots=True)
class Hint:
    looks_finished: bool
    idle: float  # seconds since the last write
    frees: int  # bytes `finalize` would free


def hint(run: Run, now: float) -> Hint:
    """For scan: idle long, and a small model exists for the newest complete step?"""
    idle = now - run.last_activity
    newest = run.newest_complete
    has_small = newest is not None and any(m.step == newest.number for m in run.small_models)
    frees = sum(d.set.size for d in final_plan(run, "").removals)
    return Hint(idle >= FINISHED_IDLE and has_small, idle, frees)


@dataclass(frozen=True)
class Kept:
    """A step whose small model must exist (and be verified) before anything goes."""

    step_set: CheckpointSet
    why: str
    output: str = ""
    epoch: int = 0
    step: int = 0
    action: str = ""  # "exists" | "extract" | "extracted"
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunFinal:
    run: Run
    kept: tuple[Kept, ...] = ()
    refused: str | None = None  # why nothing is removed from this run
    plan: RunPlan | None = None
    result: RunResult | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def expected_freed(self) -> int:
        return self.plan.expected_freed if self.plan else 0


def last_activity(run: Run) -> float:
    """Newest mtime of the run's files, TensorBoard events in sub-folders (eval/) included."""
    newest = run.last_activity
    for entry in os.scandir(run.path):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            try:
                for sub in os.scandir(entry.path):
                    if sub.name.startswith(EVENTS_PREFIX):
                        newest = max(newest, sub.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return newest


def targets(
    run: Run, steps: Sequence[int], keep_best: int | None, metric: str | None, mode: str
) -> list[tuple[CheckpointSet, str]]:
    """The sets whose small models must exist: newest complete, best K, listed steps."""
    complete = [s for s in run.candidates if s.status == "complete" and s.file("G")]
    by_number = {s.number: s for s in complete}
    out: dict[int, tuple[CheckpointSet, str]] = {}
    newest = complete[-1]
    out[newest.number] = (newest, "newest complete")
    for step in steps:
        if step not in by_number:
            raise JanitorError(f"{run.path}: step {step} has no complete G file")
        out.setdefault(step, (by_number[step], "asked for with --steps"))
    if keep_best:
        policy = Policy(keep_best=keep_best, metric=metric, mode=mode)
        scored = [
            c
            for c in candidates(run, metric=load_scalars(run.path, metric))
            if c.number in by_number
        ]
        for c in rank_best(scored, keep_best, mode):
            out.setdefault(c.number, (by_number[c.number], best_reason(c, policy)))
    return [out[n] for n in sorted(out)]


def final_plan(run: Run, why: str) -> RunPlan:
    """Pure: every set goes except incomplete ones (never deleted) and pretrained bases."""
    decisions = []
    for s in run.sets:
        if s.base:
            decisions.append(SetDecision(s, True, ("pretrained base model",)))
        elif s.status == "incomplete":
            decisions.append(SetDecision(s, True, ("incomplete: never removed by finalize",)))
        else:
            decisions.append(SetDecision(s, False, (why,)))
    return RunPlan(run, Policy(), tuple(decisions))


def _ensure_small(s: CheckpointSet, why: str, dry_run: bool) -> Kept:
    """Find the step's small model by the trainer's naming, or extract it; then verify it."""
    from janitor.torchio.extract import Options, epoch_of, extract_one, verify_small

    g = s.file("G").path
    done = extract_one(g, Options(skip_existing=True, dry_run=dry_run))
    action = "exists" if done.skipped else ("extract" if done.planned else "extracted")
    problems: tuple[str, ...] = ()
    if not done.planned:
        problems = tuple(verify_small(done.output, g, epoch_of(g), done.step))
    return Kept(s, why, done.output, done.epoch, done.step, action, problems)


def finalize_run(
    run: Run,
    *,
    steps: Sequence[int] = (),
    keep_best: int | None = None,
    metric: str | None = None,
    mode: str = "min",
    idle: float = 1800.0,
    force: bool = False,
    dry_run: bool = False,
    executor: Executor | None = None,
    now: float | None = None,
) -> RunFinal:
    now = time.time() if now is None else now
    if not any(s.status == "complete" and s.file("G") for s in run.candidates):
        return RunFinal(run, refused="no complete G checkpoint: nothing to keep a small model of")
    active = now - last_activity(run)
    if active < idle and not force:
        return RunFinal(
            run,
            refused=f"looks active: a file changed {int(active)} s ago (under --idle "
            f"{int(idle)} s); pass --force if training is really over",
        )
    kept: list[Kept] = []
    try:
        chosen = targets(run, steps, keep_best, metric, mode)
        for s, why in chosen:
            kept.append(_ensure_small(s, why, dry_run))
    except JanitorError as exc:  # e.g. a G that refuses to load: this run stays as it is
        return RunFinal(run, tuple(kept), refused=f"{exc}: nothing removed")
    bad = [k for k in kept if k.problems]

    if bad:
        names = ", ".join(os.path.basename(k.output) for k in bad)
        return RunFinal(
            run, tuple(kept), refused=f"verification failed for {names}: nothing removed"
        )
    steps_text = ", ".join(str(k.step) for k in kept)
    why = f"finalized: small models verified for steps {steps_text}"
    if dry_run:
        why = f"finalize: small models for steps {steps_text} exist or will be extracted"
    plan = final_plan(run, why)
    if dry_run or not plan.removals:
        return RunFinal(run, tuple(kept), plan=plan)
    if executor is None:
        from janitor.usecases.executor import Executor

        executor = Executor()
    result = executor.execute(plan, lambda fresh: final_plan(fresh, why))
    return RunFinal(run, tuple(kept), plan=plan, result=result)
