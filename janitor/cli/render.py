"""Formatting at the edge: reports and plans to text (humanized) and to JSON (raw numbers)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

import humanize

from janitor.domain.paths import is_url, shown_path

if TYPE_CHECKING:  # annotations only: rendering one result never loads every type
    from janitor.domain.checkpoints import CheckpointSet, ScanError, ScanReport, UnfinishedUpload
    from janitor.domain.disk import Disk, Forecast
    from janitor.domain.plans import Plan, RunPlan, RunSummary
    from janitor.domain.results import ExecutionReport, RunFinal, RunResult
    from janitor.domain.trash import GoneRunTrash

JSON_VERSION = 1


def size(n: int) -> str:
    """Decimal units, like disk vendors and `df -H`: "2.6 GB"; "0 B", never "0 Bytes"."""
    return f"{n} B" if n < 1000 else humanize.naturalsize(n)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def dump_json(doc: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")


# ---------------------------------------------------------------- scan


def _set_json(s: CheckpointSet) -> dict:
    return {
        "number": s.number,
        "step": s.step,
        "latest_only": s.latest_only,
        "base": s.base,
        "status": s.status,
        "missing": list(s.missing),
        "folder": s.folder,
        "problem": s.problem,
        "protect": list(s.protect),
        "size": s.size,
        "mtime": iso(s.mtime),
        "files": [
            {
                "name": f.name,
                "path": f.path,
                "prefix": f.prefix,
                "size": f.size,
                "mtime": iso(f.mtime),
                "complete": f.complete,
                "problem": f.problem,
            }
            for f in s.files
        ],
    }


def run_json(summary: RunSummary) -> dict:
    run = summary.run
    newest, newest_complete = run.newest, run.newest_complete
    return {
        "path": run.path,
        "name": run.name,
        "trainer": run.trainer,
        "trainer_reason": run.trainer_reason,
        "sets": [_set_json(s) for s in run.sets],
        "complete_sets": sum(1 for s in run.candidates if s.status == "complete"),
        "newest_number": newest.number if newest else None,
        "newest_complete_number": newest_complete.number if newest_complete else None,
        "newest_step": newest.step if newest else None,
        "newest_complete_step": newest_complete.step if newest_complete else None,
        "incomplete_files": [
            {"name": f.name, "path": f.path, "problem": f.problem} for f in run.incomplete_files
        ],
        "big_bytes": run.big_bytes,
        "small_bytes": run.small_bytes,
        "small_models": [
            {
                "name": m.name,
                "path": m.path,
                "format": m.format,
                "epoch": m.epoch,
                "step": m.step,
                "size": m.size,
                "mtime": iso(m.mtime),
                "complete": m.complete,
                "note": m.problem,
            }
            for m in run.small_models
        ],
        "ignored": [{"path": i.path, "why": i.why} for i in run.ignored],
        "warnings": [{"code": t.code, "message": t.message} for t in summary.traps],
        "keep_last_1_frees": summary.keep_last_1_frees,
        "prune_frees": summary.prune_frees,
        "prune_rules": summary.prune_rules,
        "looks_finished": summary.looks_finished,
        "idle_seconds": round(summary.idle, 3),
        "finalize_frees": summary.finalize_frees,
        "trash_bytes": summary.trash_bytes,
        "trash_files": summary.trash_files,
        "journal": summary.journal,
    }


def _forecast_json(f: Forecast) -> dict:
    p = f.pattern
    return {
        "run": p.run,
        "name": p.name,
        "save_size": p.size,
        "save_interval_seconds": None if p.interval is None else round(p.interval, 3),
        "last_save": iso(p.last_save),
        "saves_left": f.saves_left,
        "full_in_seconds": None if f.full_in is None else round(f.full_in, 3),
        "next_save_fits": f.next_save_fits,
    }


def disks_json(disks: Sequence[Disk]) -> list[dict]:
    return [
        {
            "mount": d.mount,
            "type": d.kind,
            "size": d.size,
            "free": d.free,
            "floor": d.floor,
            "runs": list(d.runs),
            "forecasts": [_forecast_json(f) for f in d.forecasts],
        }
        for d in disks
    ]


def scan_json(
    report: ScanReport, summaries: tuple[RunSummary, ...], disks: Sequence[Disk] = ()
) -> dict:
    runs = [run_json(s) for s in summaries]
    return {
        "version": JSON_VERSION,
        "roots": list(report.roots),
        "runs": runs,
        "file_systems": disks_json(disks),
        "errors": [{"path": e.path, "message": e.message} for e in report.errors],
        **({"unfinished_uploads": [u.as_dict() for u in report.uploads]} if report.uploads else {}),
        "trash_of_gone_runs": [g.as_dict() for g in report.gone_trash],
        "totals": {
            "runs": len(runs),
            "sets": sum(len(r.candidates) for r in report.runs),
            "big_bytes": sum(r.big_bytes for r in report.runs),
            "small_bytes": sum(r.small_bytes for r in report.runs),
            "keep_last_1_frees": sum(s.keep_last_1_frees for s in summaries),
            "prune_frees": sum(s.prune_frees or 0 for s in summaries),
        },
    }


def _span(steps: list[int]) -> str:
    if not steps:
        return ""
    lo, hi = min(steps), max(steps)
    return f", step {lo}" if lo == hi else f", steps {lo}..{hi}"


def _label(s: CheckpointSet | None) -> str:
    return "none" if s is None else s.label


def scan_text(
    report: ScanReport,
    summaries: tuple[RunSummary, ...],
    out: TextIO | None = None,
    disks: Sequence[Disk] = (),
) -> None:
    out = out or sys.stdout
    for summary in summaries:
        scan_run_text(summary, out)
    scan_footer(
        report.errors, len(report.runs), sum(len(r.candidates) for r in report.runs),
        sum(r.big_bytes for r in report.runs), sum(r.small_bytes for r in report.runs),
        sum(s.prune_frees or 0 for s in summaries),
        journals={s.journal for s in summaries if s.journal}, out=out, uploads=report.uploads,
        disks=disks,
        gone_trash=report.gone_trash,
    )  # fmt: skip


def duration(seconds: float) -> str:
    """A rough span, as a forecast deserves: "40 s", "12 min", "3.5 h", "6 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def forecast_text(f: Forecast) -> str:
    """``alice: 1.3 GB every ~12 min; 3.1 GB free → full in ~28 min (2 saves)``."""
    p = f.pattern
    pace = "per save (one save so far)" if p.interval is None else f"every ~{duration(p.interval)}"
    if f.full_in is not None and f.full_in > FORESEEN:
        return f"{p.name}: {size(p.size)} {pace}; {size(f.free)} free → not full within 30 days"
    full = "" if f.full_in is None else f" → full in ~{duration(f.full_in)}"
    return (
        f"{p.name}: {size(p.size)} {pace}; {size(f.free)} free{full} "
        f"({count(f.saves_left, 'save')})"
    )


FORESEEN = 30 * 86400.0  # a forecast further out than this says so, not a number of days


def disk_block(d: Disk, out: TextIO) -> None:
    """A file system that holds runs: its figures, the active runs' forecasts, warnings."""
    w = out.write
    kind = f" ({d.kind})" if d.kind else ""
    floor = f"; keeps {size(d.floor)} free (min-free)" if d.floor is not None else ""
    w(f"disk {shown_path(d.mount)}{kind}: {size(d.size)}, {size(d.free)} free, "
      f"{count(len(d.runs), 'run')}{floor}\n")  # fmt: skip
    for f in d.forecasts:
        w(f"  {forecast_text(f)}\n")
    for f in d.forecasts:
        if not f.next_save_fits:
            w(f"warning: {f.pattern.name}'s next save ({size(f.pattern.size)}) does not fit: "
              f"{size(f.free)} free on {shown_path(d.mount)}; free space before it saves "
              "(`janitor prune`)\n")  # fmt: skip


def scan_run_text(summary: RunSummary, out: TextIO | None = None) -> None:
    """One run's block of ``janitor scan`` (printed as soon as the run is scanned)."""
    w = (out or sys.stdout).write
    run = summary.run
    sets = run.candidates
    complete = sum(1 for s in sets if s.status == "complete")
    w(f"{run.name}  {shown_path(run.path)}  [{run.profile.label}: {run.trainer_reason}]\n")
    span = _span([s.number for s in sets if not s.latest_only])  # the steps
    unchecked = f", {run.unchecked} not checked" if run.unchecked else ""
    w(f"  sets         {len(sets)} ({complete} complete{unchecked}){span}\n")
    w(f"  newest       {_label(run.newest)}; newest complete {_label(run.newest_complete)}\n")
    nfiles = sum(len(s.files) for s in run.sets)
    w(f"  big files    {size(run.big_bytes)} in {count(nfiles, 'file')}\n")
    w(f"  small models {size(run.small_bytes)} in {count(len(run.small_models), 'file')}\n")
    if summary.trash_files:
        w(f"  trash        {size(summary.trash_bytes)} in {count(summary.trash_files, 'file')}"
          f" ({still(run.path)}; `janitor trash list`)\n")  # fmt: skip
    for s in run.sets:
        if s.base:
            w(f"  protected    {', '.join(f.name for f in s.files)}: pretrained base\n")
    for f in run.incomplete_files:
        w(f"  incomplete   {f.name}: {f.problem}\n")
    for s in sets:
        if s.problem:
            w(f"  incomplete   {s.name}/: {s.problem}\n")
    for s in sets:
        if s.status == "partial":
            w(f"  partial      {s.label}: no {', '.join(s.missing)} file\n")
    for m in run.small_models:
        if m.problem:
            shown = "" if m.complete else "incomplete: "
            w(f"  small model  {m.name}: {shown}{m.problem}\n")
        elif m.format == "release":
            w(f"  small model  {m.name}: compress_model.py release file, not a checkpoint\n")
    for i in run.ignored:
        w(f"  ignored      {os.path.basename(i.path)}: {i.why}\n")
    if summary.prune_frees is None:
        pass  # prune would refuse the run's rules: a warning below says why
    elif run.unchecked:  # counted as if complete: prune reads them before removing any
        w(f"  prune would free up to {size(summary.prune_frees)} under {summary.prune_rules} "
          f"(not checked: {count(run.unchecked, 'set')} older than the newest complete "
          "one)\n")  # fmt: skip
    else:
        w(f"  prune would free {size(summary.prune_frees)} under {summary.prune_rules}\n")
    if summary.pin_sources:
        w(f"  pinned       {pins_text(summary.pin_sources)}\n")
    if summary.looks_finished:
        w(
            f"  looks finished: idle {humanize.naturaldelta(summary.idle)}, small model for "
            f"the newest step present; `janitor finalize` would free "
            f"{size(summary.finalize_frees)}\n"
        )
    for t in summary.traps:
        w(f"  warning: {t.message}\n")
    w("\n")


def scan_footer(
    errors: Sequence[ScanError], runs: int, sets: int, big: int, small: int, frees: int,
    journals: Iterable[str] = (), out: TextIO | None = None, unchecked: int = 0,
    uploads: Sequence[UnfinishedUpload] = (), disks: Sequence[Disk] = (),
    gone_trash: Sequence[GoneRunTrash] = (),
) -> None:  # fmt: skip
    """After the runs: folders that could not be read, unfinished uploads, the trash of runs
    that are gone, the journals, the file systems (with the active runs' forecasts), and
    the totals."""
    w = (out or sys.stdout).write
    for e in errors:
        w(f"error: {shown_path(e.path)}: {e.message}\n")
    for u in uploads:
        age = humanize.naturaldelta(max(time.time() - u.initiated, 0))
        w(f"unfinished upload: {u.path}: {size(u.size)} in parts, started {age} ago "
          "(not a checkpoint; its parts are billed until the upload is aborted)\n")  # fmt: skip
    for g in gone_trash:
        run = shown_path(g.run_path)
        w(f"trash of a run that is gone: {run} ({count(g.files, 'file')}, {size(g.size)} in "
          f"{shown_path(g.trash_dir)}): `janitor restore {run} --to FOLDER` puts them back, "
          f"`janitor trash empty {run}` deletes them\n")  # fmt: skip
    if not runs:
        w("no training runs found\n")
        return
    for journal in sorted(journals):
        w(f"journal: {shown_path(journal)} (`janitor log` reads it)\n")
    for d in disks:
        disk_block(d, out or sys.stdout)
    w(
        f"{count(runs, 'run')}, {count(sets, 'set')}; big checkpoints {size(big)}, small models "
        f"{size(small)}; prune would free {'up to ' if unchecked else ''}{size(frees)}"
        + (f" ({count(unchecked, 'set')} not checked)\n" if unchecked else "\n")
    )


# ---------------------------------------------------------------- prune


def _moved_bytes(rp: RunPlan | Plan, trash: bool) -> dict[str, int]:
    """The plan's bytes as JSON fields: freed when deleted, trashed when moved (still on disk)."""
    return {
        "expected_freed": 0 if trash else rp.expected_freed,
        "expected_trashed": rp.expected_freed if trash else 0,
    }


def plan_json(
    plan: Plan, execution: ExecutionReport | None, dry_run: bool, trash: bool = False
) -> dict:
    results = {r.run_path: r for r in (execution.results if execution else ())}
    runs = []
    for rp in plan.runs:
        result = results.get(rp.run.path)
        removed = {r.path: r for r in result.removed} if result else {}
        sets = []
        for d in rp.decisions:
            entry = _set_json(d.set)
            entry.update({"action": "keep" if d.keep else "remove", "reasons": list(d.reasons)})
            if result is not None and not d.keep:
                gone = [removed[f.path] for f in d.set.files if f.path in removed]
                entry["removed"] = len(gone) == len(d.set.files)
                entry["trashed"] = [r.trash_path for r in gone if r.trash_path]
            sets.append(entry)
        runs.append(
            {
                "path": rp.run.path,
                "name": rp.run.name,
                "trainer": rp.run.trainer,
                "policy": rp.planner.as_dict().get("rules", {}),
                "planner": rp.planner.as_dict(),
                "sets": sets,
                **_moved_bytes(rp, trash),
                "freed": result.freed if result else 0,
                "freed_linked": result.freed_linked if result else 0,
                "trashed": result.trashed if result else 0,
                "notes": list(rp.notes) + (list(result.notes) if result else []),
                "skipped": list(result.skipped) if result else [],
                "errors": [
                    {"path": e.path, "message": e.message}
                    for e in (result.errors if result else ())
                ],
                "warnings": [{"code": t.code, "message": t.message} for t in rp.traps],
            }
        )
    return {
        "version": JSON_VERSION,
        "dry_run": dry_run,
        "trash": trash,
        "runs": runs,
        **_moved_bytes(plan, trash),
        "freed": execution.freed if execution else 0,
        "freed_linked": execution.freed_linked if execution else 0,
        "trashed": execution.trashed if execution else 0,
        "errors": [{"path": e.path, "message": e.message} for e in plan.errors]
        + [{"path": e.path, "message": e.message} for e in (execution.errors if execution else ())],
    }


COLLAPSE = 3  # this many consecutive removed sets with the same reasons or more: one row


def _rows(decisions, verbose: bool):
    """Table rows: one per set, except that consecutive removed sets with the same reasons
    collapse into one range row (``steps 1000–2990 (1,000 sets)``) unless ``verbose``."""
    groups: list[list] = []
    for d in decisions:
        last = groups[-1] if groups else None
        if (not verbose and last and not d.keep and not last[0].keep
                and d.reasons == last[0].reasons and d.set.step is not None
                and last[-1].set.step is not None):  # fmt: skip
            last.append(d)
        else:
            groups.append([d])
    for g in groups:
        if len(g) < COLLAPSE:
            for d in g:
                yield d.set.label, _files_text(d.set), d.set.size, d.keep, d.reasons
            continue
        prefixes = dict.fromkeys(f.prefix for d in g for f in d.set.files)
        label = f"steps {g[0].set.step}\u2013{g[-1].set.step} ({len(g):,} sets)"
        files = f"{', '.join(prefixes)}: {sum(len(d.set.files) for d in g):,} files"
        yield label, files, sum(d.set.size for d in g), False, g[0].reasons


def pins_text(sources: Mapping[int, Sequence[str]]) -> str:
    """'300, 500 (logs/alice/janitor.toml:1); 100 (logs/janitor.toml:4 [runs.alice])': each
    pinned step with the files that pin it."""
    by_files: dict[tuple[str, ...], list[int]] = {}
    for step in sorted(sources):
        by_files.setdefault(tuple(sources[step]), []).append(step)
    return "; ".join(
        f"{', '.join(map(str, steps))} ({', '.join(files)})" for files, steps in by_files.items()
    )


def run_plan_text(rp: RunPlan, out: TextIO, quiet: bool = False, verbose: bool = False) -> None:
    if quiet:
        return
    from rich.console import Console
    from rich.table import Table, box

    console = Console(file=out, width=max(100, Console(file=out).width), highlight=False)
    console.print(
        f"[bold]{rp.run.name}[/bold]  {shown_path(rp.run.path)}  ({rp.planner.describe()})",
        markup=True,
        soft_wrap=True,  # paths stay whole, to copy
    )
    pin_sources = getattr(rp.planner, "pin_sources", None)
    if pin_sources:
        console.print(f"  pinned: {pins_text(pin_sources)}", markup=False, soft_wrap=True)
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for col in ("set", "files", "size", "action", "why"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for label, files, nbytes, keep, reasons in _rows(rp.decisions, verbose):
        action = "[green]keep[/green]" if keep else "[red]remove[/red]"
        table.add_row(label, files, size(nbytes), action, "; ".join(reasons))
    console.print(table)
    for note in rp.notes:
        console.print(f"  note: {note}", markup=False, soft_wrap=True)
    for t in rp.traps:
        console.print(f"  [yellow]warning:[/yellow] {_escape(t.message)}", soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def still(path: str) -> str:
    """Where trashed files still are: on the disk, or in the bucket (object storage)."""
    return "still in the bucket" if is_url(path) else "still on disk"


def trashed(path: str) -> str:
    """ "to the trash (still on disk)" for a run at ``path``."""
    return f"to the trash ({still(path)})"


def _files_text(s: CheckpointSet) -> str:
    if s.folder:  # a checkpoint folder: its files are listed by --json
        return f"{s.name}/ ({count(len(s.files), 'file')})"
    return ", ".join(f.name for f in s.files)


def _outcome(
    freed: int, moved: int, deleted_files: int, moved_files: int, where: str, linked: int = 0,
    linked_files: int = 0,
) -> str:  # fmt: skip
    """What an execution did: "freed 2.6 GB (4 files)", "moved to the trash (still on disk):
    4 files, 2.6 GB", "deleted but still linked (another hard link keeps the bytes on disk):
    2 files, 1.3 GB", or several (``where``: a run's path)."""
    parts = []
    if moved_files:
        parts.append(f"moved {trashed(where)}: {count(moved_files, 'file')}, {size(moved)}")
    if deleted_files - linked_files or not parts and not linked_files:
        parts.append(f"freed {size(freed)} ({count(deleted_files - linked_files, 'file')})")
    if linked_files:
        parts.append(
            f"deleted but still linked (another hard link keeps the bytes on disk): "
            f"{count(linked_files, 'file')}, {size(linked)}"
        )
    return "; ".join(parts)


def _result_outcome(results) -> str:
    removed = [r for result in results for r in result.removed]
    moved = sum(1 for r in removed if r.trash_path)
    where = results[0].run_path if results else ""
    return _outcome(
        sum(x.freed for x in results), sum(x.trashed for x in results), len(removed) - moved,
        moved, where, sum(x.freed_linked for x in results), sum(1 for r in removed if r.linked),
    )  # fmt: skip


def _would(expected: int, trash: bool, where: str) -> str:
    if trash:
        return f"would move {size(expected)} {trashed(where)}"
    return f"would free {size(expected)}"


def run_result_text(
    rp: RunPlan, result: RunResult | None, out: TextIO, quiet: bool, trash: bool = False
) -> None:
    w = out.write
    if result is not None and not quiet:  # --quiet: errors and the total only
        for msg in result.skipped:
            w(f"  skipped: {msg}\n")
        for msg in result.notes:
            w(f"  note: {msg}\n")
    for e in result.errors if result else ():
        w(f"error: {shown_path(e.path)}: {e.message}\n")
    if quiet:
        return
    if result is None:
        w(f"  {_would(rp.expected_freed, trash, rp.run.path)}\n\n")
    else:
        w(f"  {_result_outcome([result])}\n\n")


def fix_resume_text(shown: RunPlan, result: RunResult | None, out: TextIO,
                    quiet: bool = False) -> None:  # fmt: skip
    """What --fix-resume moves (would move) to the trash, and what went wrong."""
    w = out.write
    name = shown.run.name
    if result is None and not quiet:
        names = ", ".join(f.name for d in shown.removals for f in d.set.files)
        w(f"{name}: --fix-resume would move to the trash: {names}\n")
    elif result is not None and result.removed and not quiet:
        names = ", ".join(os.path.basename(r.path) for r in result.removed)
        w(f"{name}: --fix-resume moved to the trash: {names}\n")
    for msg in result.skipped if result else ():
        w(f"  skipped: {msg}\n")
    for e in result.errors if result else ():
        w(f"error: {shown_path(e.path)}: {e.message}\n")


def prune_summary(
    plan: Plan, execution: ExecutionReport | None, out: TextIO, quiet: bool, trash: bool = False
) -> None:
    for e in plan.errors:
        out.write(f"error: {shown_path(e.path)}: {e.message}\n")
    if not plan.runs:
        out.write("no training runs found\n")
        return
    runs = count(len(plan.runs), "run")
    if execution is None:
        where = plan.runs[0].run.path
        out.write(f"{_would(plan.expected_freed, trash, where)} in {runs} (dry run)\n")
    elif not quiet or execution.freed or execution.trashed:
        out.write(f"{_result_outcome(execution.results)} in {runs}\n")


# ---------------------------------------------------------------- the trash


def _copy_label(c) -> str:
    return (
        f"step {c.step}"
        if c.step is not None
        else (f"latest-only ({c.number})" if c.number is not None else "not a checkpoint name")
    )


def trash_list_json(files) -> dict:
    return {
        "version": JSON_VERSION,
        "files": [
            {
                "run": f.run_path,
                "copy": f.copy,
                "step": f.step,
                "number": f.number,
                "original_path": f.original_path,
                "trash_path": f.trash_path,
                "size": f.size,
                "trashed_at": iso(f.trashed),
                "journaled": f.journaled,
            }
            for f in files
        ],
        "totals": {
            "files": len(files),
            "copies": len({(f.run_path, f.copy) for f in files}),
            "size": sum(f.size for f in files),
        },
    }


def trash_list_text(runs, out: TextIO | None = None) -> None:
    """``runs``: (run path, its trash folder, its copies) triples."""
    w = (out or sys.stdout).write
    total_copies = total_files = total_size = 0
    for run_path, trash_dir, copies in runs:
        if not copies:
            continue
        w(f"{os.path.basename(run_path)}  {shown_path(run_path)}  "
          f"(trash: {shown_path(trash_dir)})\n")  # fmt: skip
        width = max(len(c.copy) for c in copies)
        for c in copies:
            files = ", ".join(f.name for f in c.files)
            unknown = "" if all(f.journaled for f in c.files) else "; not in the journal"
            w(f"  {c.copy:<{width}}  {_copy_label(c)}: {files}  {size(c.size)}, "
              f"trashed {iso(c.trashed)}{unknown}\n")  # fmt: skip
            total_copies += 1
            total_files += len(c.files)
            total_size += c.size
        w("\n")
    if not total_files:
        w("the trash is empty\n")
        return
    copies = f"{total_copies} {'copy' if total_copies == 1 else 'copies'}"
    w(f"{copies} ({count(total_files, 'file')}, "
      f"{size(total_size)}) in the trash; `janitor restore RUN [STEP] [--copy ID]` brings one "
      "back\n")  # fmt: skip


def restore_text(result, run_path: str, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    for c in result.restored:
        for f in c.files:
            if (f.trash_path, f.original_path) in result.moved:
                w(f"restored {shown_path(f.original_path)} ({_copy_label(c)}, copy {c.copy})\n")
    for c in result.remaining:
        w(f"still in the trash: {_copy_label(c)}, older copy {c.copy} "
          f"(`janitor restore {shown_path(run_path)} --copy {c.copy}` once "
          f"{', '.join(f.name for f in c.files)} are free again)\n")  # fmt: skip
    for c, taken in result.blocked:
        w(
            f"skipped: {_copy_label(c)}, copy {c.copy}: {', '.join(taken)} already in the run; "
            "left in the trash (nothing is overwritten)\n"
        )
    w(f"{count(len(result.moved), 'file')} restored\n")


def empty_text(result, older_than: str | None, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    if result.dry_run:
        w(f"would free {size(result.freed)} ({count(len(result.removed), 'file')} would be "
          "deleted for good; dry run)\n")  # fmt: skip
    else:
        w(f"freed {size(result.freed)} ({count(len(result.removed), 'file')} deleted for good)\n")
    if result.kept:
        kept = sum(f.size for f in result.kept)
        w(f"kept {count(len(result.kept), 'file')} ({size(kept)}) trashed less than "
          f"{older_than} ago\n")  # fmt: skip


# ---------------------------------------------------------------- extract-small, info


def _bar():
    """A rich progress display on stderr, gone when done. It takes over stdout only when both
    are the terminal: output piped to a file or another program stays on stdout."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(
        console=Console(stderr=True), transient=True, redirect_stdout=sys.stdout.isatty()
    )


@contextmanager
def progress(enabled: bool, what: str = "extracting", total: int | None = None):
    """A rich progress bar on stderr for long work; yields ``advance()``. Shown only when
    ``enabled`` (not --quiet, not --json) and stderr is a terminal: cron mails, notebook
    logs and pipes get no bar."""
    if not enabled or not sys.stderr.isatty():
        yield lambda *_: None
        return
    with _bar() as bar:
        task = bar.add_task(what, total=total)
        yield lambda *_: bar.advance(task)


@contextmanager
def finalize_progress(enabled: bool, runs: int):
    """finalize's bar on stderr: runs done, and the tensors of the small model being
    verified (a full-size run takes ~20 s). Yields ``(next_run, on_tensor)``."""
    if not enabled or not sys.stderr.isatty():
        yield (lambda: None), (lambda done, total: None)
        return
    with _bar() as bar:
        run_task = bar.add_task("finalizing runs", total=runs)
        tensors = bar.add_task("verifying tensors", total=None, visible=False)

        def on_tensor(done: int, total: int) -> None:  # drawn at once when a model starts
            bar.update(tensors, completed=done, total=total, visible=done < total,
                       refresh=done == 1)  # fmt: skip

        yield (lambda: bar.advance(run_task)), on_tensor


class PassProgress:
    """The watcher's first full pass on stderr (every file is read once): starts at the first
    report, ends when every run is done. Only on a terminal, never with --json-log."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = _bar()
            self.task = self.bar.add_task("first pass over the runs", total=total)
            self.bar.start()
        self.bar.update(self.task, completed=done, total=total)
        if done >= total:
            self.bar.stop()
            self.enabled = False


def extracted_text(e, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    if e.skipped:
        w(f"exists, left alone: {shown_path(e.output)}\n")
        return
    w(f"wrote {shown_path(e.output)} ({size(e.size)}, {e.format} format)\n")
    if not hasattr(e, "detected"):  # a framework's small model (HF folder, Lightning ckpt)
        links = f"; {e.linked} hard-linked, {e.copied} copied" if e.format == "hf" else ""
        w(f"  from {shown_path(e.source)}: step {e.step}; {e.tensors} tensors verified{links}\n")
        for note in e.notes:
            w(f"  note: {note}\n")
        return
    w(f"  from {shown_path(e.source)}: epoch {e.epoch}, step {e.step} ({e.step_from})\n")
    detected = e.detected.as_dict()
    for key, fact in detected.items():
        if key != "config":
            w(f"  {key:<9}{fact['value']!s:<14} from {fact['from']}\n")
    if "config" in detected:
        w(f"  config   from {detected['config']['from']}\n")
    for note in e.notes:
        w(f"  note: {note}\n")


def info_text(doc: dict, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    w(f"{shown_path(doc['path'])}\n")
    for key, value in doc.items():
        if key in ("path", "metadata", "detected"):
            continue
        shown = size(value) if key == "size" else value
        if isinstance(value, dict) and "value" in value:
            shown = f"{value['value']} (from {value['from']})"
        w(f"  {key:<16}{shown}\n")
    for key, value in doc.get("metadata", {}).items():
        w(f"  {key:<16}{value}\n")
    for key, fact in doc.get("detected", {}).items():
        if key == "error":
            w(f"  detection       {fact}\n")
        elif key != "config":
            w(f"  {key:<16}{fact['value']} (from {fact['from']})\n")


# ---------------------------------------------------------------- finalize


def final_text(final, out: TextIO | None = None, trash: bool = False) -> None:
    w = (out or sys.stdout).write
    run = final.run
    w(f"{run.name}  {shown_path(run.path)}\n")
    for k in final.kept:
        verb = {"exists": "small model present", "extract": "would extract",
                "extracted": "extracted"}[k.action]  # fmt: skip
        state = "" if k.action == "extract" else ("; verified" if not k.problems else "")
        w(f"  keep {k.step_set.label} ({k.why}): {verb} {shown_path(k.output)}{state}\n")
        for p in k.problems:
            w(f"    verification failed: {p}\n")
    if final.refused:
        w(f"  refused: {final.refused}\n\n")
        return
    if final.plan is None and final.notes:
        w("".join(f"  {n}\n" for n in final.notes) + "\n")
        return
    if final.plan is not None:
        files = [f for d in final.plan.removals for f in d.set.files]
        left = [d for d in final.plan.decisions if d.keep]
        for d in left:
            w(f"  left: {', '.join(f.name for f in d.set.files)} ({'; '.join(d.reasons)})\n")
        if final.result is None:
            n, expected = count(len(files), "big checkpoint file"), size(final.expected_freed)
            if trash:
                w(f"  would move {n} ({expected}) {trashed(run.path)}\n\n")
            else:
                w(f"  would remove {n}, freeing {expected}\n\n")
            return
        run_result_text(final.plan, final.result, out or sys.stdout, quiet=False)


def finals_json(finals: list[RunFinal], dry_run: bool) -> dict:
    runs = []
    for f in finals:
        runs.append(
            {
                "path": f.run.path,
                "name": f.run.name,
                "refused": f.refused,
                "notes": list(f.notes),
                "kept": [
                    {
                        "step": k.step,
                        "epoch": k.epoch,
                        "reasons": [k.why],
                        "small_model": k.output,
                        "action": k.action,
                        "verified": not k.problems and k.action != "extract",
                        "problems": list(k.problems),
                    }
                    for k in f.kept
                ],  # fmt: skip
                "remove": [
                    f2.path for d in (f.plan.removals if f.plan else ()) for f2 in d.set.files
                ],
                "expected_freed": f.expected_freed,
                "freed": f.result.freed if f.result else 0,
                "trashed": f.result.trashed if f.result else 0,
                "errors": [
                    {"path": e.path, "message": e.message}
                    for e in (f.result.errors if f.result else ())
                ],
            }
        )
    return {"dry_run": dry_run, "runs": runs}


# ---------------------------------------------------------------- watch


def text_log(out=None) -> Callable[[dict], None]:
    """One human line per action: time, run, what happened, bytes (humanized)."""

    def write(record: dict) -> None:
        stream = out or sys.stdout
        event = record["event"]
        stamp = _now()
        if event == "removed":
            what = f"removed steps {', '.join(map(str, record['steps']))}"
            done = f"freed {size(record['freed'])}"
            if record.get("trashed"):  # --trash: moved, not freed
                done = f"moved {trashed(record['run'])}: {size(record['trashed'])}"
            line = f"{os.path.basename(record['run'])}: {what}, {done}"
        elif event == "extracted":
            verb = "small model exists" if record["skipped"] else "extracted"
            source = os.path.basename(record["source"])
            line = f"{verb}: {record['output']} (from {source}, verified)"
        elif event == "extract-failed":
            source = os.path.basename(record["source"])
            line = (
                f"extraction failed: {record['error']}; "
                f"{source} is kept until its small model is verified"
            )
        elif event == "watching":
            line = f"watching {', '.join(record['roots'])} ({record['mode']})"
        elif event == "stopped":
            line = (
                f"stopped: {count(record['removed'], 'file')} removed, {size(record['freed'])} "
                f"freed, {count(record['extracted'], 'small model')}, "
                f"{count(record['errors'], 'error')}"
            )
        else:
            detail = record.get("message") or record
            line = f"{event}: {record.get('path', record.get('run', ''))} {detail}".strip()
        stream.write(f"{stamp} {line}\n")
        stream.flush()

    return write


def json_log(out=None) -> Callable[[dict], None]:
    def write(record: dict) -> None:
        stream = out or sys.stdout
        line = {"version": JSON_VERSION, "command": "watch", "time": _now(), **record}
        stream.write(json.dumps(line) + "\n")
        stream.flush()

    return write


# ---------------------------------------------------------------- the JSON envelope
# Every --json document: {"version", "command", "ok", <the command's fields>, "errors"}.
# Errors are {"path", "message"} everywhere (path null when the error is not about a file).


def envelope(command: str, ok: bool, body: dict | None = None, errors=()) -> dict:
    body = dict(body or {})
    body.pop("version", None)
    doc: dict[str, Any] = {"version": JSON_VERSION, "command": command, "ok": ok}
    doc.update(body)
    doc["errors"] = [*body.get("errors", ()), *map(error_json, errors)]
    return doc


def error_json(e: Any) -> dict:
    """A PathProblem, an (path, message) pair or a bare message."""
    if isinstance(e, dict):
        return {"path": e.get("path"), "message": e["message"]}
    if isinstance(e, str):
        return {"path": None, "message": e}
    if isinstance(e, tuple):
        return {"path": e[0], "message": e[1]}
    return {"path": e.path, "message": e.message}


def pins_json(run: str, pinned: frozenset[int], not_pinned: frozenset[int] = frozenset()) -> dict:
    return {"run": run, "pins": sorted(pinned), "not_pinned": sorted(not_pinned)}


def _copy_json(c) -> dict:
    return {"copy": c.copy, "step": c.step, "number": c.number, "size": c.size,
            "files": [f.name for f in c.files]}  # fmt: skip


def restore_json(result, run_path: str) -> dict:
    return {
        "run": run_path,
        "restored": [{"trash_path": src, "path": dst} for src, dst in result.moved],  # fmt: skip
        "copies": [_copy_json(c) for c in result.restored],
        "remaining": [_copy_json(c) for c in result.remaining],
        "blocked": [{**_copy_json(c), "taken": list(taken)} for c, taken in result.blocked],
        "errors": [error_json(e) for e in result.errors],
    }


def _trashed_file(f) -> dict:
    return {"run": f.run_path, "trash_path": f.trash_path, "size": f.size,
            "trashed_at": iso(f.trashed)}  # fmt: skip


def empty_json(result) -> dict:
    return {
        "removed": [_trashed_file(f) for f in result.removed],
        "kept": [_trashed_file(f) for f in result.kept],
        "freed": 0 if result.dry_run else result.freed,
        "expected_freed": result.freed,
        "dry_run": result.dry_run,
        "errors": [error_json(e) for e in result.errors],
    }


# ---------------------------------------------------------------- log

_LOG_VERB = {"remove": "removed", "trash": "trashed", "restore": "restored",
             "trash-empty": "deleted from trash"}  # fmt: skip


def log_text(journal: str, records: list[dict], out: TextIO | None = None) -> None:
    """The journal's file records, one line each: when, run, what, file, size, why, rule."""
    w = (out or sys.stdout).write
    if not records:
        w(f"nothing removed yet (journal: {shown_path(journal)})\n")
        return
    for r in records:
        when = str(r.get("time", ""))[:19].replace("T", " ")
        run = os.path.basename(str(r.get("run", "")))
        name = os.path.basename(str(r.get("path", "")))
        line = f"{when}  {run}  {_LOG_VERB.get(r['event'], r['event'])} {name}"
        if isinstance(r.get("size"), int):
            line += f" ({size(r['size'])})"
        if r.get("reasons"):
            line += f": {'; '.join(r['reasons'])}"
        if r.get("policy") and r["policy"] not in r.get("reasons", ()):
            line += f" [{r['policy']}]"
        w(line + "\n")
    w(f"{count(len(records), 'record')} in {shown_path(journal)}\n")


def log_json(journal: str, records: list[dict]) -> dict:
    return {"journal": journal, "records": records}
