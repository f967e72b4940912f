"""What the page's buttons do, as plain functions (no gradio here): each takes the logs root,
the run and the user's choices, calls the Python API (``janitor.api``) or a use case, and
returns text and table rows to show. Nothing is decided here: plans, removals, pins and
restores are the use cases'; this module only words their results.

A destructive action acts only on the plan the user has just seen: ``prune`` is handed that
plan (``PrunePlan``) and carries it out; the executor re-plans under the run's lock and
removes only what both plans remove. If the run changed in between, ``prune`` says so and
returns the new plan to show."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from janitor import api
from janitor.domain.errors import JanitorError, UsageError
from janitor.usecases.overview import Overview, overview

Progress = Callable[[float, str], None]
TRASH_NOTE = (
    "A move to the trash frees nothing until the trash is emptied "
    "(`janitor trash empty`); Restore brings a step back."
)
RUN_COLUMNS = ["run", "trainer", "disk use", "newest complete step", "small models", "trash",
               "warnings"]  # fmt: skip
PLAN_COLUMNS = ["step", "files", "size", "decision", "why"]
JOURNAL_COLUMNS = ["time", "event", "run", "step", "file", "size"]
TRASH_COLUMNS = ["step", "copy", "files", "size", "trashed"]


def _quiet(fraction: float, text: str) -> None:
    pass


def size(n: int | None) -> str:
    """Bytes in words (1000-based, as the command line's ``naturalsize``)."""
    if n is None:
        return "unknown"
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


def when(t: float | None) -> str:
    return "" if not t else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def one_line(exc: BaseException) -> str:
    """An error as one readable line: janitor's own words, or the kind and message."""
    text = " ".join(str(exc).split())
    if isinstance(exc, JanitorError | OSError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------ the logs root


@dataclass(frozen=True)
class RootView:
    header: str  # markdown: the root, free space, totals, errors
    rows: list[list[Any]]
    choices: list[tuple[str, str]]  # (run name, run path) for the run picker


def root_view(root: str, skip: Sequence[str] = ()) -> RootView:
    """The runs of a logs root with disk use, newest complete step, warnings, small models
    and trash; the free space of its file system."""
    if not root or not root.strip():
        raise UsageError("logs root: give a folder (or s3:// URL) holding training runs")
    view = overview(root.strip(), skip)
    return RootView(_header(view), [_run_row(v) for v in view.runs],
                    [(v.summary.run.name, v.summary.run.path) for v in view.runs])  # fmt: skip


def _header(view: Overview) -> str:
    lines = [
        f"**{view.root}**: {len(view.runs)} runs, {size(view.disk_use)} of checkpoints, "
        f"{size(view.trash_bytes)} in the trash, free space: {size(view.free)}",
    ]
    lines += [f"- warning: {w}" for w in view.warnings]
    lines += [f"- error: {e.path}: {e.message}" for e in view.errors]
    return "\n".join(lines)


def _run_row(v) -> list[Any]:
    s = v.summary
    run = s.run
    newest = run.newest_complete
    warnings = [t.message for t in s.traps]
    if v.active:
        warnings.insert(0, "training now: prune and finalize leave it alone")
    trash = f"{size(s.trash_bytes)} ({s.trash_files} files)" if s.trash_files else ""
    return [run.name, run.trainer, size(run.big_bytes + run.small_bytes),
            "" if newest is None else newest.label, len(run.small_models), trash,
            "; ".join(warnings)]  # fmt: skip


# ------------------------------------------------------------------ plan and prune


@dataclass(frozen=True)
class PlanView:
    text: str  # markdown: what the plan frees, or what prune did
    rows: list[list[Any]]
    plan: api.PrunePlan | None  # the plan shown: the one Prune may carry out
    steps: list[str]  # the run's complete steps (choices for Extract, Pin, Finalize)


def _run_path(run: str | None) -> str:
    if not run:
        raise UsageError("run: pick a run first (Load the logs root, then choose a run)")
    return run


def _plan_of(run: str) -> api.PrunePlan:
    return api.scan(run).plan()


def plan_rows(plan: api.PrunePlan) -> list[list[Any]]:
    return [
        [d.set.label, ", ".join(f.name for f in d.set.files), size(d.set.size),
         "keep" if d.keep else "remove", "; ".join(d.reasons)]
        for rp in plan.runs for d in rp.decisions
    ]  # fmt: skip


def _plan_view(plan: api.PrunePlan, text: str) -> PlanView:
    steps = [str(s.step) for rp in plan.runs for s in rp.run.sets
             if s.step is not None and s.status == "complete" and not s.base]  # fmt: skip
    return PlanView(text, plan_rows(plan), plan, steps)


def _plan_text(plan: api.PrunePlan) -> str:
    removals = sum(len(rp.removals) for rp in plan.runs)
    rules = "; ".join(dict.fromkeys(rp.planner.describe() for rp in plan.runs)) or "none"
    notes = [n for rp in plan.runs for n in (*rp.notes, *(t.message for t in rp.traps))]
    lines = [f"Dry run under {rules}: {removals} sets to remove, "
             f"{size(plan.expected_freed_size)} to free. Nothing has been removed."]  # fmt: skip
    return "\n".join(lines + [f"- {n}" for n in notes])


def dry_run(run: str | None) -> PlanView:
    """The run's plan under its configured rules (its janitor.toml files; none: keep-last 1),
    with a reason per set. Changes nothing."""
    plan = _plan_of(_run_path(run))
    return _plan_view(plan, _plan_text(plan))


def _decisions(plan: api.PrunePlan) -> dict[int, bool]:
    return {d.set.number: d.keep for rp in plan.runs for d in rp.decisions}


def prune(run: str | None, shown: api.PrunePlan | None, trash: bool = False,
          progress: Progress = _quiet) -> PlanView:  # fmt: skip
    """Carry out the plan the user has just seen (``shown``), nothing else: the executor
    removes only what that plan and the fresh plan under the lock both remove. Returns what
    was done and the run's plan as it is now (a changed plan is said so)."""
    path = _run_path(run)
    if shown is None or not any(rp.run.path == os.path.realpath(path) for rp in shown.runs):
        raise UsageError("Prune: press Dry run first (Prune carries out the plan shown)")
    total = max(1, sum(len(rp.removals) for rp in shown.runs))
    done: list[str] = []

    def removed(item) -> None:
        done.append(item.path)
        progress(min(1.0, len(done) / total), os.path.basename(item.path))

    result = shown.execute(trash=trash, progress=removed)
    fresh = _plan_of(path)
    skipped = [s for r in result.results for s in r.skipped]
    notes = [n for r in result.results for n in r.notes]
    errors = [f"{e.path}: {e.message}" for e in result.errors]
    verb = "moved to the trash" if trash else "removed"
    lines = [f"Prune: {len(done)} files {verb}; {size(result.freed_size)} freed"
             + (f", {size(result.trashed_size)} in the trash (freed once emptied)" if trash
                else "") + "."]  # fmt: skip
    if skipped or _removed_numbers(result) != _planned_numbers(shown):
        lines.append("**The run changed since the dry run**: only what both plans remove was "
                     "removed. The new plan is shown below; press Prune again to carry it "
                     "out.")  # fmt: skip
    lines += [f"- left alone: {s}" for s in skipped]
    lines += [f"- note: {n}" for n in notes]
    lines += [f"- error: {e}" for e in errors]
    view = _plan_view(fresh, "")
    return PlanView("\n".join(lines) + "\n\n" + _plan_text(fresh), view.rows, fresh, view.steps)


def _planned_numbers(plan: api.PrunePlan) -> set[int]:
    return {d.set.number for rp in plan.runs for d in rp.removals}


def _removed_numbers(result: api.PruneResult) -> set[int]:
    return {r.number for rr in result.results for r in rr.removed}


# ------------------------------------------------------------------ small models, finalize


def _steps(chosen: Iterable[Any], what: str) -> list[int]:
    out = []
    for s in chosen or ():
        text = str(s).strip()
        if not text.isdigit():
            raise UsageError(f"{what}: steps are whole numbers, got {text!r}")
        out.append(int(text))
    if not out:
        raise UsageError(f"{what}: choose at least one step")
    return out


def extract(run: str | None, steps: Iterable[Any], progress: Progress = _quiet) -> str:
    """Write the small inference model of each chosen step's G file (existing ones are
    kept)."""
    path = _run_path(run)
    wanted = _steps(steps, "Extract")
    (found,) = api.scan(path).runs or (None,)
    if found is None:
        raise UsageError(f"{path}: no run here")
    by_step = {s.step: s for s in found.sets}
    g = found.profile.generator
    files = []
    for step in wanted:
        s = by_step.get(step)
        f = s.file(g) if s is not None else None
        if f is None:
            raise UsageError(f"Extract: step {step} has no {g} file in {found.name}")
        files.append(f.path)
    report = api.extract_small(
        files, skip_existing=True, progress=lambda i, n: progress(i / n, f"{i}/{n} extracted")
    )
    lines = [f"- {os.path.basename(e.output)}" + (" (already there)"
             if getattr(e, "skipped", False) else "") for e in report.extracted]  # fmt: skip
    lines += [f"- failed: {p.path}: {p.message}" for p in report.failed]
    return "Small models:\n" + "\n".join(lines)


def finalize(run: str | None, steps: Iterable[Any] = (), dry_run: bool = True,
             trash: bool = False, progress: Progress = _quiet) -> str:  # fmt: skip
    """Training is over: verified small models for the newest complete step (and the chosen
    ``steps``), then every big checkpoint goes. A run training now is refused (as by
    ``janitor finalize``)."""
    path = _run_path(run)
    chosen = _steps(steps, "Finalize") if steps else []
    finals = api.finalize(path, steps=chosen, dry_run=dry_run, trash=trash,
                          progress=lambda i, n: progress(i / max(n, 1), "verifying"))  # fmt: skip
    lines = []
    for f in finals:
        if f.refused:
            lines.append(f"{f.run.name}: refused: {f.refused}")
            continue
        kept = ", ".join(f"{os.path.basename(k.output)} ({k.action})" for k in f.kept)
        if f.result is None:
            lines.append(f"{f.run.name}: would keep {kept or 'nothing new'}; would free "
                         f"{size(f.expected_freed)} (dry run: nothing removed)")  # fmt: skip
        else:
            lines.append(
                f"{f.run.name}: kept {kept}; freed {size(f.result.freed)}"
                + (f", {size(f.result.trashed)} in the trash" if trash else "")
            )
            lines += [f"- error: {e.path}: {e.message}" for e in f.result.errors]
        lines += [f"- {n}" for n in f.notes]
    return "\n".join(lines) or "Finalize: no run here"


# ------------------------------------------------------------------ pins, trash, journal


def pin(run: str | None, steps: Iterable[Any], unpin: bool = False) -> str:
    path = _run_path(run)
    wanted = _steps(steps, "Unpin" if unpin else "Pin")
    pins = api.unpin(path, wanted) if unpin else api.pin(path, wanted)
    shown = ", ".join(str(s) for s in sorted(pins.pinned)) or "none"
    extra = (f" (not pinned: {', '.join(map(str, sorted(pins.not_pinned)))})"
             if pins.not_pinned else "")  # fmt: skip
    return f"Pinned steps of {os.path.basename(pins.run)}: {shown}{extra}"


def trash_rows(run: str | None) -> list[list[Any]]:
    listing = api.trash_list(_run_path(run))
    return [
        [c.step if c.step is not None else c.number, c.copy, ", ".join(f.name for f in c.files),
         size(c.size), when(c.trashed)]
        for _, _, copies in listing.runs for c in copies
    ]  # fmt: skip


def restore(run: str | None, step: Any) -> str:
    path = _run_path(run)
    chosen = None if step in (None, "") else _steps([step], "Restore")[0]
    done = api.restore(path, chosen)
    r = done.result
    lines = [f"Restored {', '.join(f'step {c.step}' for c in r.restored) or 'nothing'} "
             f"into {os.path.basename(done.run)}."]  # fmt: skip
    lines += [f"- {c.copy}: names taken ({', '.join(names)}); left in the trash"
              for c, names in r.blocked]  # fmt: skip
    lines += [f"- error: {e.path}: {e.message}" for e in r.errors]
    return "\n".join(lines)


def journal_rows(path: str | None) -> list[list[Any]]:
    """What janitor removed, trashed and restored there, newest first."""
    log = api.log(_run_path(path))
    return [
        [r.get("time", ""), r.get("event", ""), os.path.basename(r.get("run") or ""),
         r.get("step", r.get("number", "")), os.path.basename(r.get("path", "")),
         size(r["size"]) if isinstance(r.get("size"), int) else ""]
        for r in reversed(log.records)
    ]  # fmt: skip
