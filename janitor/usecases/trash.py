"""The trash commands: put trashed copies back (``restore``) and delete them for good
(``trash empty``), each under the run's lock and journaled."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext

from janitor.domain.errors import UsageError, oserror_text
from janitor.domain.paths import shown_path
from janitor.domain.trash import EmptyResult, FileError, RestoreResult, TrashCopy
from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.journal import Journal, now_iso
from janitor.storage.locks import locked_run
from janitor.storage.trash import gone_runs, trash_contents, trash_copies, trash_records


def _error_text(exc: OSError) -> str:
    return oserror_text(exc, missing="vanished before it could be moved")


def _in_the_trash(copies: list[TrashCopy]) -> str:
    return ", ".join(c.copy for c in copies)


def _nothing_for(run_path: str, fs: FileSystem) -> str:
    """The message for a run with nothing in the trash, naming the trash of runs that are
    gone in its logs root (a renamed run's copies are under its old name)."""
    text = f"{run_path}: nothing in the trash for this run"
    gone = gone_runs(layout.logs_root(run_path), fs)
    if not gone:
        return text
    names = ", ".join(os.path.basename(g) for g in gone)
    trash = shown_path(layout.trash_root(layout.logs_root(run_path)))
    return (
        f"{text}; {trash} holds the trash of runs that are gone: {names} (a renamed run? "
        f"`janitor restore {shown_path(gone[0])} --to {shown_path(run_path)}`)"
    )


def restore(
    run_path: str,
    step: int | None = None,
    copy: str | None = None,
    fs: FileSystem = LOCAL,
    to: str | None = None,
) -> RestoreResult:
    """Move trashed files back into the run: one copy (``copy``: its id or one of its trash
    file names), or the newest copy of ``step`` / of every step in the trash. The files of a
    copy go back together or not at all, and never over a file already in the run. They go
    into ``to`` if given (the run renamed), else into ``run_path``, made again if it is gone.

    Raises ``UsageError`` naming what is in the trash when nothing matches the request."""
    journal = Journal(layout.state_dir(run_path), fs)
    target = to or run_path
    with locked_run(run_path, fs=fs), locked_run(target, fs=fs) if to else nullcontext():
        copies = trash_copies(trash_contents(run_path, fs))
        if not copies:
            raise UsageError(_nothing_for(run_path, fs), path=run_path)
        what = f"in the trash: {_in_the_trash(copies)} (see `janitor trash list`)"
        remaining: list[TrashCopy] = []
        if copy is not None:
            chosen = [
                c for c in copies
                if copy == c.copy or copy in {os.path.basename(f.trash_path) for f in c.files}
            ]  # fmt: skip
            if not chosen:
                raise UsageError(f"--copy {copy}: no such copy for {run_path}; {what}")
            if step is not None and not chosen[0].matches_step(step):
                raise UsageError(f"--copy {copy} is not a copy of step {step}; {what}")
        else:
            matching = [c for c in copies if step is None or c.matches_step(step)]
            if not matching:
                raise UsageError(
                    f"nothing in the trash for step {step} of {run_path}; {what}", path=run_path
                )
            newest: dict[object, TrashCopy] = {}
            for c in matching:  # copies of a step come oldest first: the last one wins
                key = c.number if c.number is not None else c.copy
                if key in newest:
                    remaining.append(newest[key])
                newest[key] = c
            chosen = list(newest.values())
        restored, moved, blocked, errors = [], [], [], []
        if not fs.is_dir(target):  # the run folder was deleted (or `--to` names a new one)
            fs.makedirs(target)
        for c in chosen:
            taken, problems = [], []
            for f in c.files:
                dest = os.path.join(target, f.name)
                try:
                    fs.stat(dest)
                    taken.append(f.name)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    problems.append(FileError(dest, oserror_text(exc)))
            if problems:
                errors.extend(problems)
                continue
            if taken:
                blocked.append((c, tuple(taken)))
                continue
            done = []
            for f in c.files:
                dest = os.path.join(target, f.name)
                try:
                    fs.rename(f.trash_path, dest)
                except OSError as exc:
                    errors.append(FileError(f.trash_path, _error_text(exc)))
                    continue
                done.append((f.trash_path, dest))
                journal.append(
                    {"event": "restore", "time": now_iso(), "run": target, "number": f.number,
                     "step": f.step, "copy": f.copy, "path": dest,
                     "trash_path": f.trash_path, "size": f.size}
                )  # fmt: skip
            moved.extend(done)
            if done:
                restored.append(c)
    return RestoreResult(
        tuple(restored), tuple(moved), tuple(remaining), tuple(blocked), tuple(errors)
    )


def empty_trash(
    runs: Sequence[str],
    older_than: float | None,
    now: float,
    fs: FileSystem = LOCAL,
    *,
    dry_run: bool = False,
) -> EmptyResult:
    """Delete the trashed files of ``runs`` (runs of one logs root) for good: only those
    trashed more than ``older_than`` seconds before ``now`` (by the journal's time of the
    move, or the file's ctime, which a rename sets, when the journal does not know it).
    ``dry_run``: what would be deleted, nothing is."""
    if not runs:
        return EmptyResult(dry_run=dry_run)
    state = layout.state_dir(runs[0])
    records = trash_records(state, fs)
    removed, kept, errors = [], [], []
    with nullcontext() if dry_run else Journal(state, fs).writer() as log:
        for run_path in runs:
            with locked_run(run_path, fs=fs):
                for f in trash_contents(run_path, fs, records):
                    if older_than is not None and now - f.trashed <= older_than:
                        kept.append(f)
                        continue
                    if dry_run:
                        removed.append(f)
                        continue
                    try:
                        if fs.stat(f.trash_path).kind == "dir":  # a trashed checkpoint folder
                            fs.remove_tree(f.trash_path)
                        else:
                            fs.remove(f.trash_path)
                    except OSError as exc:
                        errors.append(FileError(f.trash_path, _error_text(exc)))
                        continue
                    removed.append(f)
                    log.append(
                        {"event": "trash-empty", "time": now_iso(), "run": run_path,
                         "copy": f.copy, "path": f.trash_path, "size": f.size}
                    )  # fmt: skip
    return EmptyResult(tuple(removed), tuple(kept), tuple(errors), dry_run)
