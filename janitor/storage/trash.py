"""The trash on storage: ``<logs root>/.janitor/trash/<run>/``.

logs/.janitor/trash/<run>/ holds what `--trash` moved, under the original file names. The
files of one set moved together share a copy number: the first copy of step 100 is
G_100.pth + D_100.pth, the next G_100.pth.1 + D_100.pth.1, and so on; a new copy always
numbers above every copy of its step still in the trash. A copy's id is "<number>#<n>"
(n = copy number + 1, so copies of a step count 1, 2, ... oldest first); the trash file
name of any of its files names it too. Everything here is read from the trash folder
itself; the journal adds what it knows (when, the step), so a lost journal loses nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Container, Sequence
from datetime import datetime

from janitor.domain.checkpoints import CheckpointSet
from janitor.domain.profile import (
    BIG_RE,
    DEEPSPEED_TAG_RE,
    HF_CHECKPOINT_RE,
    LATEST_BASE,
    LIGHTNING_LAST_RE,
    LIGHTNING_RE,
)
from janitor.domain.trash import GoneRunTrash, TrashCopy, TrashedFile
from janitor.storage import layout
from janitor.storage.fs import LOCAL, FileSystem
from janitor.storage.journal import Journal

_COPY_RE = re.compile(r"^(?P<name>.+?)(?:\.(?P<k>[1-9][0-9]*))?$")


def _checkpoint_number(name: str) -> int | None:
    m = (
        BIG_RE.match(name)
        or LIGHTNING_RE.match(name)
        or HF_CHECKPOINT_RE.match(name)
        or DEEPSPEED_TAG_RE.match(name)
    )
    if m:
        return int(m["num"])
    last = LIGHTNING_LAST_RE.match(name)
    return LATEST_BASE + int(last["num"] or 0) if last else None


def _split_trash_name(trash_name: str) -> tuple[str, int, int | None]:
    """(original file name, copy number, checkpoint number) of a file in a run's trash."""
    m = _COPY_RE.match(trash_name)
    name, k = m["name"], int(m["k"] or 0)
    number = _checkpoint_number(name)
    if number is None:  # not a checkpoint name with a copy suffix: the whole name is the name
        return trash_name, 0, _checkpoint_number(trash_name)
    return name, k, number


def _copy_id(number: int | None, k: int, trash_name: str) -> str:
    return f"{number}#{k + 1}" if number is not None else trash_name


class RunTrash:
    """A run's trash folder as one prune fills it (under the run's lock: nothing else
    writes there meanwhile): listed once, then kept up to date with each copy handed out,
    so that a prune of thousands of sets lists it once, not once per set."""

    def __init__(self, fs: FileSystem, run_path: str) -> None:
        self.folder = layout.trash_dir(run_path)
        fs.makedirs(self.folder)
        self.copies: dict[int | None, dict[int, set[str]]] = {}  # step -> copy -> names
        for e in fs.listdir(self.folder):
            name, k, number = _split_trash_name(e.name)
            self.copies.setdefault(number, {}).setdefault(k, set()).add(name)

    def destinations(self, s: CheckpointSet, resume: bool = False) -> tuple[dict[str, str], str]:
        """Trash paths for a set's files and the copy's id: one copy number for all of
        them, above every copy of the same step already in the trash; or, ``resume``-ing an
        interrupted removal, the newest copy (which holds the files moved before the stop)."""
        copies = self.copies.setdefault(s.number, {})
        names = {s.name} if s.folder else {f.name for f in s.files}  # a folder moves whole
        newest = max(copies, default=-1)
        k = newest if resume and newest >= 0 and not names & copies[newest] else newest + 1
        copies.setdefault(k, set()).update(names)
        dests = {n: os.path.join(self.folder, n if k == 0 else f"{n}.{k}") for n in names}
        return dests, _copy_id(s.number, k, "")


def parse_time(text: object) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def trash_records(state_dir: str, fs: FileSystem = LOCAL) -> dict[str, dict]:
    """Trash path -> the journal's last ``trash`` record for it (paths are reused once a copy
    is restored or emptied; the last record describes the file there now)."""
    out: dict[str, dict] = {}
    for r in Journal(state_dir, fs).read().records:
        if r.get("event") == "trash" and isinstance(r.get("trash_path"), str):
            out[r["trash_path"]] = r
    return out


def trash_contents(
    run_path: str, fs: FileSystem = LOCAL, records: dict[str, dict] | None = None
) -> list[TrashedFile]:
    """Every file in the run's trash, oldest copy of each step first."""
    try:
        entries = fs.listdir(layout.trash_dir(run_path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    if records is None:
        records = trash_records(layout.state_dir(run_path), fs)
    out: list[TrashedFile] = []
    for e in entries:
        name, k, number = _split_trash_name(e.name)
        if e.kind != "file" and not (e.kind == "dir" and number is not None):
            continue  # a checkpoint folder (HF, DeepSpeed) is trashed whole, as one entry
        r = records.get(e.path)
        if r is not None and os.path.basename(str(r.get("path", ""))) != name:
            r = None  # a record that does not describe this file
        when = parse_time(r.get("time")) if r else None
        step = r.get("step") if r else number
        out.append(
            TrashedFile(
                run_path, name, e.path, _copy_id(number, k, e.name), k, number,
                step if isinstance(step, int) else None,
                r["size"] if e.kind == "dir" and r and isinstance(r.get("size"), int) else e.size,
                when if when is not None else e.ctime, r is not None,
            )
        )  # fmt: skip
    out.sort(key=lambda f: (f.number is None, f.number or 0, f.copy_number, f.name))
    return out


def trash_copies(files: list[TrashedFile]) -> list[TrashCopy]:
    """Files grouped by copy, in the order of ``files``."""
    groups: dict[str, list[TrashedFile]] = {}
    for f in files:
        groups.setdefault(f.copy, []).append(f)
    return [TrashCopy(copy, tuple(fs_)) for copy, fs_ in groups.items()]


def trash_runs(logs_root: str, fs: FileSystem = LOCAL) -> list[str]:
    """Run paths (``<logs_root>/<name>``) that have a folder in the logs root's trash."""
    trash = layout.trash_root(logs_root)
    try:
        entries = fs.listdir(trash)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(os.path.join(logs_root, e.name) for e in entries if e.kind == "dir")


def gone_runs(logs_root: str, fs: FileSystem = LOCAL) -> list[str]:
    """Run paths with a folder in the logs root's trash whose run folder is gone (deleted or
    renamed since)."""
    return [r for r in trash_runs(logs_root, fs) if not fs.is_dir(r)]


def gone_runs_trash(
    paths: Sequence[str], runs: Container[str], fs: FileSystem = LOCAL
) -> tuple[GoneRunTrash, ...]:
    """The trash of runs that are gone, in the logs roots of ``paths`` (each path, and the
    parent of a path that is a run folder, one of ``runs``): not a training run any more,
    but its copies are still on disk."""
    roots = {p: None for path in paths for p in (path, layout.logs_root(path)) if
             p == path or path in runs}  # fmt: skip
    found: dict[str, GoneRunTrash] = {}
    for root in roots:
        try:
            runs = gone_runs(root, fs)
            records = trash_records(layout.state_dir_of_root(root), fs) if runs else {}
            contents = {run: trash_contents(run, fs, records) for run in runs}
        except OSError:  # an unreadable .janitor: the scan reports the folders it cannot read
            continue
        for run, files in contents.items():
            if files:  # an emptied trash folder holds nothing to tell
                found[run] = GoneRunTrash(
                    run, layout.trash_dir(run), len(files), sum(f.size for f in files)
                )
    return tuple(found[r] for r in sorted(found))
