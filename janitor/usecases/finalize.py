"""`janitor finalize`: when training is over, keep only verified small models.

The one command allowed to remove a run's newest big checkpoint, and only after proving that
the small model of every kept step exists and holds exactly that G's weights. Stages: checks;
targets (newest complete, best K, listed steps); the small model of each found or made and
verified by a ``SmallModels`` maker handed in from above (the torch layer: this module never
imports torch); then a ``FinalizePlanner`` plan under the protection law's finalize waiver
(every complete or partial set removed; pinned sets, incomplete files and pretrained bases
left), carried out by the same executor as ``prune``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Protocol

from janitor.core import law
from janitor.core.planners import FinalizePlanner, candidates
from janitor.core.policy import best_reason, rank_best
from janitor.domain.checkpoints import CheckpointSet, Run
from janitor.domain.errors import JanitorError, NoRoom
from janitor.domain.extract import SmallModelCheck
from janitor.domain.policy import Policy
from janitor.domain.results import Kept, RunFinal, RunResult
from janitor.storage import activity
from janitor.storage.config import ConfigFiles
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.metrics import load_metric
from janitor.usecases.executor import Executor


class SmallModels(Protocol):
    """Finds or writes the small model of a G file and verifies it against the G."""

    def ensure(self, g_path: str, dry_run: bool) -> SmallModelCheck: ...


def targets(
    run: Run,
    steps: Sequence[int],
    keep_best: int | None,
    metric: str | None,
    mode: str,
    fs: FileSystem = LOCAL,
) -> list[tuple[CheckpointSet, str]]:
    """The sets whose small models must exist: newest complete, best K, listed steps."""
    g = run.profile.generator
    complete = [s for s in run.candidates if s.status == "complete" and s.file(g)]
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
            c for c in candidates(run, metric=load_metric(run, metric, fs)) if c.number in by_number
        ]
        for c in rank_best(scored, keep_best, mode):
            out.setdefault(c.number, (by_number[c.number], best_reason(c, policy)))
    return [out[n] for n in sorted(out)]


NOTHING_LEFT = "nothing left to finalize: no big checkpoints in the run"


def finalize_run(
    run: Run,
    small_models: SmallModels,
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
    fs: FileSystem = LOCAL,
    files: ConfigFiles | None = None,
) -> RunFinal:
    """``files``: the command's janitor.toml files (read once for all its runs)."""
    now = time.time() if now is None else now
    if not run.candidates:  # finalized already (or never saved a set): done, not refused
        return RunFinal(run, notes=(NOTHING_LEFT,))
    g = run.profile.generator
    if not any(s.status == "complete" and s.file(g) for s in run.candidates):
        return RunFinal(run, refused="no complete G checkpoint: nothing to keep a small model of")
    last = activity.last_trainer_write(run, fs)
    alive = activity.trainer_alive(run, fs)
    if law.is_active(last, now, idle, alive) and not force:
        why = (
            f"a training process it names in {activity.PIDS_FILE} is running"
            if alive
            else f"a trainer's file changed {int(now - last)} s ago (under --idle {int(idle)} s)"
        )
        return RunFinal(
            run, refused=f"looks active: {why}; pass --force if training is really over"
        )
    kept: list[Kept] = []
    short: list[tuple[CheckpointSet, str, NoRoom]] = []  # no room for their small models yet
    try:
        for s, why in targets(run, steps, keep_best, metric, mode, fs):
            try:
                kept.append(Kept(s, why, small_models.ensure(s.file(g).path, dry_run)))
            except NoRoom as exc:
                short.append((s, why, exc))
    except JanitorError as exc:  # e.g. a G that refuses to load: this run stays as it is
        return RunFinal(run, tuple(kept), refused=f"{exc}: nothing removed")
    bad = _unverified(kept)
    if bad:
        return RunFinal(run, tuple(kept), refused=f"{bad}: nothing removed")
    executor = executor or Executor(fs)
    pins = (files or ConfigFiles(fs)).pins(run.path)
    first = None
    if short:
        made = _make_room(run, kept, short, small_models, pins, dry_run, executor, now, fs)
        if isinstance(made, RunFinal):
            return made
        run, first = made
        kept.sort(key=lambda k: k.step_set.number)
    planner = FinalizePlanner(tuple(k.step for k in kept), verified=not dry_run, pins=pins)
    plan = planner.plan(run, now)
    if dry_run or not plan.removals:
        return RunFinal(run, tuple(kept), plan=plan, result=first)
    result = executor.execute(plan)
    return RunFinal(run, tuple(kept), plan=plan, result=_joined(first, result))


def _make_room(
    run: Run,
    kept: list[Kept],
    short: list[tuple[CheckpointSet, str, NoRoom]],
    small_models: SmallModels,
    pins: frozenset[int],
    dry_run: bool,
    executor: Executor,
    now: float,
    fs: FileSystem,
) -> tuple[Run, RunResult | None] | RunFinal:
    """A full disk: the small models of ``short`` do not fit. First the sets whose small
    models exist and verify (``kept``) go, under the finalize waiver; then the missing small
    models are made (appended to ``kept``). The run as it is then and what was removed; or
    the refusal, naming the room needed."""
    needed = sum(exc.needed for *_, exc in short)
    room = "no room for the small models of steps " + ", ".join(
        f"{s.number} ({exc})" for s, _, exc in short
    )
    safe = [k for k in kept if not k.problems]
    if dry_run or not safe:
        why = "nothing is safe to remove first (no small model exists and verifies)"
        if safe:
            why = f"finalize would first remove steps {_steps(safe)} (small models verified)"
        return RunFinal(run, tuple(kept), refused=f"{room}; {why}; free {needed} bytes and "
                        "run finalize again: nothing removed")  # fmt: skip
    only = frozenset(k.step_set.number for k in safe)
    planner = FinalizePlanner(tuple(k.step for k in safe), pins=pins, only=only)
    first = executor.execute(planner.plan(run, now))
    run = _reread(run, fs)
    removed = f"removed steps {_steps(safe)} first (small models verified, {first.freed} bytes)"
    g = run.profile.generator
    try:
        for s, why, _ in short:
            kept.append(Kept(s, why, small_models.ensure(s.file(g).path, dry_run)))
    except NoRoom as exc:
        return RunFinal(run, tuple(kept), result=first,
                        refused=f"{room}; {removed}; still short: {exc}; free "
                        f"{exc.needed - exc.free} more bytes and run finalize again")  # fmt: skip
    except JanitorError as exc:
        return RunFinal(run, tuple(kept), result=first, refused=f"{exc}; {removed}")
    bad = _unverified(kept)
    if bad:
        return RunFinal(run, tuple(kept), result=first, refused=f"{bad}; {removed}")
    return run, dataclasses.replace(first, notes=(*first.notes, f"a full disk: {removed}"))


def _unverified(kept: Sequence[Kept]) -> str | None:
    names = ", ".join(os.path.basename(k.output) for k in kept if k.problems)
    return f"verification failed for {names}" if names else None


def _steps(kept: Sequence[Kept]) -> str:
    return ", ".join(str(k.step_set.number) for k in kept)


def _reread(run: Run, fs: FileSystem) -> Run:
    """The run as it is on disk now (after removals)."""
    from janitor.storage.scan import scan

    for found in scan([run.path], fs=fs, trainer=run.trainer, save_cache=False).runs:
        if found.path == run.path:
            return found
    return run


def _joined(first: RunResult | None, then: RunResult) -> RunResult:
    if first is None:
        return then
    return RunResult(
        then.run_path, first.removed + then.removed, first.errors + then.errors,
        first.skipped + then.skipped, first.notes + then.notes,
    )  # fmt: skip
